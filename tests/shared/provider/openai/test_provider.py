"""OpenAIProvider against the emulator's OpenAI-style API (a real HTTP server in a thread)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import orjson
import pytest
from pydantic import SecretStr

from shared.errors import NotFoundError, ProviderServerError, RateLimitError
from shared.jsonl.records import staged_line
from shared.provider import build_provider
from shared.provider.openai import OpenAIProvider, parse_status
from shared.provider.openai.provider import job_of
from shared.provider.retry import RetryPolicy
from shared.run.states import BatchState
from shared.settings import Settings
from tests.fixtures.emulator import EmulatorHandle

PART = b"".join(
    staged_line(n, orjson.dumps({"messages": [{"role": "user", "content": f"q{n}"}]}))
    for n in range(1, 6)
)


def _provider(emulator: EmulatorHandle, **settings: object) -> OpenAIProvider:
    config = Settings(
        openai_base_url=emulator.openai_base_url, http_max_retries=2, **settings
    )
    provider = build_provider(
        config, SecretStr(emulator.api_key), provider="openai", model="gpt-4o-mini",
        kind="generate",
    )
    assert isinstance(provider, OpenAIProvider)
    provider.client.retry = RetryPolicy(max_attempts=3, base=0.01, cap=0.05)
    return provider


def _source(data: bytes):  # type: ignore[no-untyped-def]
    @contextmanager
    def open_at(offset: int) -> Iterator[BinaryIO]:
        yield io.BytesIO(data[offset:])

    return open_at


def _upload(provider: OpenAIProvider, name: str = "shardline-r-s00001-a01-p01") -> str:
    session = provider.start_upload(len(PART), display_name=name)
    return provider.send_upload(session, _source(PART), len(PART), chunk_size=1 << 20,
                                start_offset=0)


def test_a_part_goes_through(emulator: EmulatorHandle) -> None:
    with _provider(emulator) as provider:
        assert isinstance(provider, OpenAIProvider)
        file_id = _upload(provider)
        job = provider.create_job(model="gpt-4o-mini", kind="generate",
                                  display_name="shardline-r-s00001-a01-p01", file_name=file_id)
        assert job.state is BatchState.PENDING and job.display_name == "shardline-r-s00001-a01-p01"
        assert [j.name for j in provider.find_jobs("shardline-r-s00001-a01-p01")] == [job.name]
        emulator.wait_job(job.name)
        done = provider.get_job(job.name)
        assert done.state is BatchState.SUCCEEDED and done.output is not None
        assert done.counts.request_count == 5 and done.counts.succeeded_count == 5
        with provider.open_output(done) as chunks:
            lines = [orjson.loads(x) for x in b"".join(chunks).splitlines()]
        assert sorted(int(x["key"]) for x in lines) == [1, 2, 3, 4, 5]
        assert all(x["response"]["model"] == "gpt-4o-mini" for x in lines)
        provider.delete_file(done.output)
        with pytest.raises(NotFoundError):
            provider.delete_file(done.output)


def test_errors_land_in_the_error_file_and_both_are_read(emulator: EmulatorHandle) -> None:
    emulator.set_faults({"seed": 1, "jobs": [{"request_errors": {"rate": 0.6, "code": 503}}]})
    with _provider(emulator) as provider:
        job = provider.create_job(model="m", kind="generate", display_name="d",
                                  file_name=_upload(provider))
        emulator.wait_job(job.name)
        done = provider.get_job(job.name)
        assert done.output is not None and "," in done.output
        with provider.open_output(done) as chunks:
            lines = [orjson.loads(x) for x in b"".join(chunks).splitlines()]
        assert len(lines) == 5
        failed = [x for x in lines if "error" in x]
        assert failed and all(x["error"]["code"] == 503 for x in failed)


def test_a_resumed_upload_adopts_the_file_a_lost_answer_made(emulator: EmulatorHandle) -> None:
    with _provider(emulator) as provider:
        first = _upload(provider, "shardline-r-s00002-a01-p01")
        session = provider.start_upload(len(PART), display_name="shardline-r-s00002-a01-p01")
        again = provider.send_upload(session, _source(PART), len(PART), chunk_size=1 << 20,
                                     start_offset=None)
        assert again == first
        assert emulator.stats()["requests"]["openai.files.upload"] == 1


def test_a_429_waits_retry_after_and_a_500_on_create_is_not_resent(
    emulator: EmulatorHandle,
) -> None:
    with _provider(emulator) as provider:
        file_id = _upload(provider)
        emulator.set_faults({"http": [
            {"endpoint": "openai.batches.create", "code": 429, "times": 1,
             "retry_delay_seconds": 0.01},
        ]})
        provider.create_job(model="m", kind="generate", display_name="a", file_name=file_id)
        emulator.set_faults({"http": [
            {"endpoint": "openai.batches.create", "code": 500, "times": 1, "apply_after": True},
        ]})
        with pytest.raises(ProviderServerError):
            provider.create_job(model="m", kind="generate", display_name="b", file_name=file_id)
        # The job was made before the 500: found by its display name, never created twice.
        assert len(provider.find_jobs("b")) == 1
        emulator.set_faults({"http": [{"endpoint": "openai.files.list", "code": 429,
                                       "retry_delay_seconds": 120}]})
        with pytest.raises(RateLimitError) as caught:
            list(provider.list_files())
        assert caught.value.retry_delay == 120


def test_states() -> None:
    assert [parse_status(s) for s in ("validating", "in_progress", "finalizing", "cancelling",
                                      "completed", "failed", "expired", "cancelled", "new")] == [
        BatchState.PENDING, BatchState.RUNNING, BatchState.RUNNING, BatchState.RUNNING,
        BatchState.SUCCEEDED, BatchState.FAILED, BatchState.EXPIRED, BatchState.CANCELLED,
        BatchState.UNSPECIFIED,
    ]
    expired = job_of({"id": "batch_1", "status": "expired", "error_file_id": "file-e"})
    assert expired.state is BatchState.SUCCEEDED and expired.output == "file-e"
    assert job_of({"id": "batch_2", "status": "expired"}).state is BatchState.EXPIRED
    failed = job_of({"id": "batch_3", "status": "failed", "errors": {"data": [
        {"code": "too_many_requests", "message": "limit 50000", "line": None}]}})
    assert failed.error == {"code": None, "status": "too_many_requests", "message": "limit 50000"}
    assert job_of({"id": "b", "status": "completed"}).is_live  # output not attached yet
