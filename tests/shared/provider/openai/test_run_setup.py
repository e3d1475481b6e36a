"""What choosing the OpenAI-style provider changes before any call: limits, model, keys,
admission budgets, validation and the token estimate."""

from __future__ import annotations

import orjson
from pydantic import SecretStr

from shared.jsonl.records import staged_line
from shared.jsonl.validate import Accepted, Rejected, check_line
from shared.pipeline.start import effective_manifest
from shared.provider.limits import OPENAI_MAX_FILE_BYTES, shard_limits
from shared.provider.openai.lines import upload_line
from shared.run.spec import RunOptions, RunSpec
from shared.settings import Settings
from shared.tokens import estimate_tokens


def test_shard_limits_leave_room_for_the_translated_lines() -> None:
    max_bytes, max_requests = shard_limits(
        "openai", model="gpt-4o-mini", kind="generate", max_bytes=2_000_000_000,
        max_requests=100_000,
    )
    assert max_requests == 50_000
    # The worst case: every line as short as a staged line can be, at the request cap.
    body = b'{"messages":[]}'
    staged = staged_line(99_999_999, body)
    lines = max_bytes // len(staged)
    wire = len(upload_line(staged, url="/v1/chat/completions", model="gpt-4o-mini"))
    assert min(lines, max_requests) * wire <= OPENAI_MAX_FILE_BYTES
    assert shard_limits("gemini", model="m", kind="generate", max_bytes=5, max_requests=7) == (5, 7)


def test_the_manifest_takes_the_providers_model_and_limits() -> None:
    settings = Settings(provider="openai")
    spec = RunSpec(input_uri="in.jsonl", output_uri="out", kind="embed",
                   options=RunOptions(shard_max_requests=80_000))
    manifest = effective_manifest(settings, spec, "run-1")
    assert (manifest.provider, manifest.model) == ("openai", "text-embedding-3-small")
    assert manifest.shard_max_requests == 50_000
    assert manifest.shard_max_bytes < OPENAI_MAX_FILE_BYTES
    gemini = effective_manifest(Settings(provider="openai"), spec.model_copy(
        update={"provider": "gemini"}), "run-2")
    assert (gemini.provider, gemini.model) == ("gemini", "gemini-embedding-001")


def test_keys_and_budgets_are_per_provider() -> None:
    settings = Settings(api_key=SecretStr("g"), openai_api_key=SecretStr("o"),
                        openai_api_keys=[SecretStr("o2"), SecretStr("o")])
    assert [k.get_secret_value() for k in settings.key_pool("gemini")] == ["g"]
    assert [k.get_secret_value() for k in settings.key_pool("openai")] == ["o", "o2"]
    assert Settings().key_pool("openai") == []  # a Gemini key is never sent elsewhere
    budget = settings.for_provider("openai").file_storage_budget_bytes
    assert budget == settings.openai_file_storage_budget_bytes != settings.file_storage_budget_bytes


def test_validation_speaks_the_providers_dialect() -> None:
    chat = orjson.dumps({"key": "a", "request": {"messages": [{"role": "user", "content": "x"}]}})
    assert isinstance(check_line(chat, 1, "generate", "openai"), Accepted)
    rejected = check_line(chat, 1, "generate", "gemini")
    assert isinstance(rejected, Rejected) and "contents" in rejected.reason
    bare = orjson.dumps({"input": "some text"})
    assert isinstance(check_line(bare, 2, "embed", "openai"), Accepted)
    empty = check_line(orjson.dumps({"messages": []}), 3, "generate", "openai")
    assert isinstance(empty, Rejected) and "non-empty `messages`" in empty.reason


def test_token_estimate_reads_openai_bodies() -> None:
    chat = {"messages": [{"role": "system", "content": "12345678"},
                         {"role": "user", "content": [{"type": "text", "text": "abcd"}]}]}
    assert estimate_tokens(chat) == 3
    assert estimate_tokens({"input": ["abcd", "abcdefgh"]}) == 3
    anthropic = {"system": "abcdefgh", "max_tokens": 9,
                 "messages": [{"role": "user", "content": "abcd"}]}
    assert estimate_tokens(anthropic) == 3
