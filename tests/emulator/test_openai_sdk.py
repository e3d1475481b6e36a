"""The official ``openai`` SDK runs the Batch API guide's example unmodified against the
emulator (only ``base_url`` differs), plus the guide's retrieve/list/cancel calls."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fixtures.emulator import EmulatorHandle

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: ``batchinput.jsonl`` from the guide (two chat requests).
BATCH_INPUT = [
    {"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-3.5-turbo-0125", "messages": [
         {"role": "system", "content": "You are a helpful assistant."},
         {"role": "user", "content": "Hello world!"}], "max_tokens": 1000}},
    {"custom_id": "request-2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-3.5-turbo-0125", "messages": [
         {"role": "system", "content": "You are an unhelpful assistant."},
         {"role": "user", "content": "Hello world!"}], "max_tokens": 1000}},
]


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _upload(client: Any, path: Path) -> Any:
    with path.open("rb") as handle:
        return client.files.create(file=handle, purpose="batch")


def _wait(client: Any, batch_id: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"{batch_id} still {batch.status}"
        time.sleep(0.05)


def test_guide_example(emulator: EmulatorHandle, tmp_path: Path) -> None:
    client = emulator.openai()
    source = _write(tmp_path / "batchinput.jsonl", BATCH_INPUT)

    # The guide, step by step (base_url is the only change).
    batch_input_file = client.files.create(file=open(source, "rb"), purpose="batch")  # noqa: SIM115
    batch_input_file_id = batch_input_file.id
    created = client.batches.create(
        input_file_id=batch_input_file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"description": "nightly eval job"},
    )
    assert created.status == "validating"
    assert created.metadata == {"description": "nightly eval job"}
    batch = _wait(client, created.id)
    assert batch.status == "completed"
    assert batch.request_counts.total == 2 and batch.request_counts.completed == 2
    assert batch.error_file_id is None
    file_response = client.files.content(batch.output_file_id)
    lines = [json.loads(line) for line in file_response.text.splitlines()]
    answers = {line["custom_id"]: line for line in lines}
    assert set(answers) == {"request-1", "request-2"}
    body = answers["request-1"]["response"]["body"]
    assert answers["request-1"]["response"]["status_code"] == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    listed = client.batches.list(limit=10)
    assert [b.id for b in listed.data] == [created.id]
    assert client.files.retrieve(batch_input_file_id).purpose == "batch"
    assert client.files.delete(batch_input_file_id).deleted


def test_cancel_and_errors(emulator_factory: Any, tmp_path: Path) -> None:
    emulator = emulator_factory(time_scale=1.0)  # jobs stay live long enough to cancel
    client = emulator.openai()
    source = _write(tmp_path / "batchinput.jsonl", BATCH_INPUT)
    uploaded = _upload(client, source)
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status == "cancelling"
    assert client.batches.retrieve(batch.id).status == "cancelled"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.AuthenticationError):
        emulator.openai(api_key="wrong").batches.list()


def test_per_request_errors_go_to_the_error_file(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator.set_faults({"seed": 3, "jobs": [{"request_errors": {"rate": 0.5, "code": 429}}]})
    lines = [dict(BATCH_INPUT[0], custom_id=f"r-{n}") for n in range(40)]
    client = emulator.openai()
    uploaded = _upload(client, _write(tmp_path / "in.jsonl", lines))
    batch = _wait(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)
    assert batch.status == "completed"
    errors = [json.loads(x) for x in client.files.content(batch.error_file_id).text.splitlines()]
    done = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert 0 < len(errors) < 40 and len(errors) + len(done) == 40
    assert {e["response"]["status_code"] for e in errors} == {429}
    assert batch.request_counts.failed == len(errors)


def test_embeddings_batch(emulator: EmulatorHandle, tmp_path: Path) -> None:
    lines = [{"custom_id": f"e-{n}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "text-embedding-3-small", "input": f"text {n}"}} for n in range(3)]
    client = emulator.openai()
    uploaded = _upload(client, _write(tmp_path / "in.jsonl", lines))
    batch = _wait(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h").id)
    answers = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(a["custom_id"] for a in answers) == ["e-0", "e-1", "e-2"]
    assert all(len(a["response"]["body"]["data"][0]["embedding"]) == 1536 for a in answers)


def test_limits(emulator_factory: Any, tmp_path: Path) -> None:
    emulator = emulator_factory(openai_max_requests_per_batch=3, openai_max_file_bytes=4000)
    client = emulator.openai()
    lines = [dict(BATCH_INPUT[0], custom_id=f"r-{n}") for n in range(4)]
    uploaded = _upload(client, _write(tmp_path / "in.jsonl", lines))
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "too_many_requests"
    big = [dict(BATCH_INPUT[0], custom_id=f"r-{n}") for n in range(40)]
    with pytest.raises(openai.BadRequestError, match="too large"):
        _upload(client, _write(tmp_path / "big.jsonl", big))


def test_429_with_retry_after(emulator: EmulatorHandle) -> None:
    emulator.set_faults({"http": [{"endpoint": "openai.batches.list", "code": 429,
                                   "times": 1, "retry_delay_seconds": 0.01}]})
    client = emulator.openai()
    assert client.batches.list().data == []  # the SDK waited Retry-After and tried again
    assert emulator.stats()["responses"]["openai.batches.list 429"] == 1
