"""The official ``anthropic`` SDK runs the Message Batches guide's examples unmodified against
the emulator (only ``base_url`` differs): create, poll, stream results, list, cancel, delete."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages.batch_create_params import Request

from tests.fixtures.emulator import EmulatorHandle


def _ended(client: Any, batch_id: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        message_batch = client.messages.batches.retrieve(batch_id)
        if message_batch.processing_status == "ended":
            return message_batch
        assert time.monotonic() < deadline, f"{batch_id} still {message_batch.processing_status}"
        time.sleep(0.05)


def test_guide_example(emulator: EmulatorHandle) -> None:
    client = emulator.anthropic()

    message_batch = client.messages.batches.create(
        requests=[
            Request(
                custom_id="my-first-request",
                params=MessageCreateParamsNonStreaming(
                    model="claude-opus-4-1",
                    max_tokens=1024,
                    messages=[{"role": "user", "content": "Hello, world"}],
                ),
            ),
            Request(
                custom_id="my-second-request",
                params=MessageCreateParamsNonStreaming(
                    model="claude-opus-4-1",
                    max_tokens=1024,
                    messages=[{"role": "user", "content": "Hi again, friend"}],
                ),
            ),
        ]
    )
    assert message_batch.processing_status == "in_progress"
    assert message_batch.id.startswith("msgbatch_")
    ended = _ended(client, message_batch.id)
    assert ended.request_counts.succeeded == 2 and ended.results_url

    seen = {}
    for result in client.messages.batches.results(message_batch.id):
        match result.result.type:
            case "succeeded":
                seen[result.custom_id] = result.result.message
            case _:
                pytest.fail(f"{result.custom_id}: {result.result.type}")
    assert set(seen) == {"my-first-request", "my-second-request"}
    message = seen["my-first-request"]
    assert message.content[0].text.startswith("Echo: Hello, world")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    assert [b.id for b in client.messages.batches.list(limit=20)] == [message_batch.id]
    deleted = client.messages.batches.delete(message_batch.id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(message_batch.id)


def _request(n: int) -> dict[str, Any]:
    return {"custom_id": f"r-{n}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": f"question {n}"}]}}


def test_errored_results_keep_the_error_type(emulator: EmulatorHandle) -> None:
    emulator.set_faults({"seed": 4, "jobs": [{"request_errors": {"rate": 0.5, "code": 529}}]})
    client = emulator.anthropic()
    batch = client.messages.batches.create(requests=[_request(n) for n in range(30)])
    ended = _ended(client, batch.id)
    results = list(client.messages.batches.results(batch.id))
    errored = [r for r in results if r.result.type == "errored"]
    assert len(results) == 30 and 0 < len(errored) < 30
    assert {r.result.error.error.type for r in errored} == {"overloaded_error"}
    assert ended.request_counts.errored == len(errored)


def test_cancel_and_errors(emulator_factory: Any) -> None:
    emulator = emulator_factory(time_scale=1.0)
    client = emulator.anthropic()
    batch = client.messages.batches.create(requests=[_request(n) for n in range(3)])
    assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 3
    assert {r.result.type for r in client.messages.batches.results(batch.id)} == {"canceled"}
    with pytest.raises(anthropic.AuthenticationError):
        emulator.anthropic(api_key="wrong").messages.batches.list()
    with pytest.raises(anthropic.BadRequestError, match="not unique"):
        client.messages.batches.create(requests=[_request(1), _request(1)])


def test_limits_and_429(emulator_factory: Any) -> None:
    emulator = emulator_factory(anthropic_max_requests_per_batch=2, anthropic_max_body_bytes=3000)
    client = emulator.anthropic()
    with pytest.raises(anthropic.BadRequestError, match="at most 2"):
        client.messages.batches.create(requests=[_request(n) for n in range(3)])
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.batches.create(requests=[
            dict(_request(n), params={**_request(n)["params"], "system": "x" * 2000})
            for n in range(2)])
    assert caught.value.status_code == 413
    emulator.set_faults({"http": [{"endpoint": "anthropic.batches.list", "code": 429,
                                   "times": 1, "retry_delay_seconds": 0.01}]})
    assert list(client.messages.batches.list()) == []  # waited retry-after, tried again
