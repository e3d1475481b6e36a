"""A stage delivered twice and run at the same time: what a crash between a task's retry (or
its chain's next step) being published and its own message being acknowledged produces.
Both copies run; the outcome must be what one copy would have made.

Stage functions are called from two threads against the real emulator (no Celery): a
latency fault on the upload chunks keeps both copies inside the stage together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.coordination import coordination_redis
from shared.pipeline.collect import collect_attempt
from shared.pipeline.context import RunContext
from shared.pipeline.create import create_attempt
from shared.pipeline.plan import plan_run
from shared.pipeline.poll import poll_attempt
from shared.pipeline.start import register_run
from shared.pipeline.upload import upload_attempt, upload_part
from shared.run import layout
from shared.run.spec import RunSpec
from shared.settings import Settings
from tests.chaos.conftest import write_input
from tests.fixtures.emulator import EmulatorHandle

pytestmark = pytest.mark.chaos


def twice(stage: Callable[[], Any]) -> list[Any]:
    """Run ``stage`` in two threads released together; both results (or exceptions)."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def body(slot: int) -> None:
        barrier.wait()
        try:
            results[slot] = stage()
        except Exception as exc:
            results[slot] = exc

    threads = [threading.Thread(target=body, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_a_part_uploaded_twice_at_once_leaves_one_provider_file(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    settings = Settings(
        api_key=emulator.api_key, api_base_url=emulator.base_url,
        state_uri=str(tmp_path / "state"), upload_chunk_bytes=8 * 1024 * 1024,
    )
    coordination_redis(settings).flushall()
    source = tmp_path / "requests.jsonl"
    write_input(source, 50)
    spec = RunSpec(input_uri=str(source), output_uri=str(tmp_path / "out"))
    started = register_run(settings, spec)
    ctx = RunContext(settings, started.run_id, started.output_uri)
    plan_run(ctx)
    part = ctx.store.attempt(0, 1).parts[0]  # type: ignore[union-attr]
    emulator.set_faults({"latency": [{"endpoint": "files.upload.chunk", "seconds": 0.5}]})

    def upload() -> Any:
        copy = RunContext(settings, started.run_id, started.output_uri)
        try:
            return upload_part(copy, 0, 1, part)
        finally:
            copy.close()

    first, second = twice(upload)

    assert not isinstance(first, Exception) and not isinstance(second, Exception)
    record = ctx.store.upload(0, 1, part.part)
    assert record is not None and record.file_name is not None
    assert first.file_name == second.file_name == record.file_name
    display = layout.display_name(started.run_id, 0, 1, part.part)
    held = [f["name"] for f in emulator.files() if f["displayName"] == display]
    assert held == [record.file_name], "the copy that lost left its file at the provider"


def test_a_part_collected_twice_at_once_is_not_given_up(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The copy that finishes first deletes the provider's responses file; the other, whose
    download is answered later, gets a 404 for it. That must not abandon the shard (every
    retryable line would end as a final error, the staged next attempt never sent)."""
    settings = Settings(
        api_key=emulator.api_key, api_base_url=emulator.base_url,
        state_uri=str(tmp_path / "state"), http_max_retries=0,
    )
    coordination_redis(settings).flushall()
    source = tmp_path / "requests.jsonl"
    write_input(source, 50)
    spec = RunSpec(input_uri=str(source), output_uri=str(tmp_path / "out"))
    started = register_run(settings, spec)
    ctx = RunContext(settings, started.run_id, started.output_uri)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_attempt(ctx, 0, 1)
    deadline = time.monotonic() + 30
    while not poll_attempt(ctx, 0, 1):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Whichever download reaches the emulator second is served a second later.
    emulator.set_faults({"latency": [{"endpoint": "files.download", "skip": 1, "seconds": 1.0}]})

    def collect() -> Any:
        copy = RunContext(settings, started.run_id, started.output_uri)
        try:
            return collect_attempt(copy, 0, 1)
        finally:
            copy.close()

    first, second = twice(collect)

    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert first == second
    assert emulator.stats()["responses"].get("files.download 404", 0) >= 1, "no race happened"
