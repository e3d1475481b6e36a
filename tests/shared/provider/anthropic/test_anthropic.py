"""AnthropicProvider against the emulator's Message Batches API, and its translations."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import orjson
import pytest
from pydantic import SecretStr

from shared.errors import NotFoundError, SpecError
from shared.jsonl import classify_output, is_retryable
from shared.jsonl.records import staged_line
from shared.pipeline.start import effective_manifest
from shared.provider import build_provider
from shared.provider.anthropic import AnthropicProvider, batch_item, translate_result_line
from shared.provider.limits import ANTHROPIC_MAX_BODY_BYTES, shard_limits
from shared.provider.retry import RetryPolicy
from shared.run.spec import RunSpec
from shared.run.states import BatchState
from shared.settings import Settings
from tests.fixtures.emulator import EmulatorHandle

PART = b"".join(
    staged_line(n, orjson.dumps({"max_tokens": 50,
                                 "messages": [{"role": "user", "content": f"q{n}"}]}))
    for n in range(1, 8)
)


def _source(data: bytes):  # type: ignore[no-untyped-def]
    @contextmanager
    def open_at(offset: int) -> Iterator[BinaryIO]:
        yield io.BytesIO(data[offset:])

    return open_at


def _provider(emulator: EmulatorHandle) -> AnthropicProvider:
    settings = Settings(anthropic_base_url=emulator.anthropic_base_url)
    provider = build_provider(settings, SecretStr(emulator.api_key), provider="anthropic",
                              model="claude-haiku-4-5", kind="generate")
    assert isinstance(provider, AnthropicProvider)
    provider.client.retry = RetryPolicy(max_attempts=3, base=0.01, cap=0.05)
    return provider


def test_a_part_goes_through_inline(emulator: EmulatorHandle) -> None:
    with _provider(emulator) as provider:
        assert isinstance(provider, AnthropicProvider)
        session = provider.start_upload(len(PART), display_name="shardline-r-s00001-a01-p01")
        name = provider.send_upload(session, _source(PART), len(PART), chunk_size=4096,
                                    start_offset=0)
        assert name == "inline:shardline-r-s00001-a01-p01"
        assert emulator.stats()["requests"] == {}  # nothing was sent
        job = provider.create_job(model="claude-haiku-4-5", kind="generate",
                                  display_name="d", file_name=name, source=_source(PART))
        assert job.state is BatchState.RUNNING and job.counts.request_count == 7
        emulator.wait_job(job.name)
        done = provider.get_job(job.name)
        assert done.state is BatchState.SUCCEEDED and done.output == job.name
        with provider.open_output(done) as chunks:
            lines = [orjson.loads(x) for x in b"".join(chunks).splitlines()]
        assert sorted(int(x["key"]) for x in lines) == list(range(1, 8))
        assert all(x["response"]["model"] == "claude-haiku-4-5" for x in lines)
        with pytest.raises(NotFoundError):
            provider.delete_file(name)  # our own staged part: nothing held there
        provider.delete_file(done.output)  # the batch, and with it its results
        with pytest.raises(NotFoundError):
            provider.get_job(job.name)
        assert provider.find_jobs("d") == []  # a batch carries no name (documented)
        with pytest.raises(ValueError, match="no embeddings"):
            provider.create_job(model="m", kind="embed", display_name="e", file_name=name,
                                source=_source(PART))


def test_batch_item_and_results() -> None:
    item = orjson.loads(batch_item(staged_line(3, b'{"max_tokens":5,"messages":[]}'),
                                   model="claude-haiku-4-5"))
    assert item == {"custom_id": "3", "params": {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                 "messages": []}}

    def result(kind: str, **fields: Any) -> bytes:
        return orjson.dumps({"custom_id": "1", "result": {"type": kind, **fields}})

    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    error = orjson.loads(translate_result_line(result("errored", error=overloaded)))["error"]
    assert error == {"code": 529, "status": "overloaded_error", "message": "busy"}
    assert is_retryable(error)
    invalid = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    assert not is_retryable(orjson.loads(translate_result_line(
        result("errored", error=invalid)))["error"])
    assert is_retryable(orjson.loads(translate_result_line(result("expired")))["error"])
    assert not is_retryable(orjson.loads(translate_result_line(result("canceled")))["error"])


def test_usage_is_counted() -> None:
    message = {"usage": {"input_tokens": 10, "cache_read_input_tokens": 5,
                         "cache_creation_input_tokens": 1, "output_tokens": 7}}
    output = translate_result_line(orjson.dumps(
        {"custom_id": "1", "result": {"type": "succeeded", "message": message}}))
    stats = classify_output(io.BytesIO(output), io.BytesIO(staged_line(1, b"{}")),
                            io.BytesIO(), io.BytesIO())
    tokens = stats.tokens
    assert (tokens.prompt, tokens.candidates, tokens.cached, tokens.total) == (16, 7, 5, 23)


def test_limits_and_refusals() -> None:
    max_bytes, max_requests = shard_limits("anthropic", model="claude-haiku-4-5",
                                           kind="generate", max_bytes=2_000_000_000,
                                           max_requests=500_000)
    assert max_requests == 100_000
    staged = staged_line(99_999_999, b'{"max_tokens":1,"messages":[]}')
    item = batch_item(staged, model="claude-haiku-4-5")
    lines = min(max_bytes // len(staged), max_requests)
    assert lines * (len(item) + 1) + len(b'{"requests":[]}') <= ANTHROPIC_MAX_BODY_BYTES + 64
    with pytest.raises(SpecError, match="no embeddings"):
        effective_manifest(Settings(), RunSpec(input_uri="i", output_uri="o", kind="embed",
                                               provider="anthropic"), "r")
