"""Drive the stages directly (no Celery): a real emulator server, real local storage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.coordination import coordination_redis
from shared.errors import RetryLater
from shared.pipeline.collect import CollectStep, collect_attempt
from shared.pipeline.context import RunContext
from shared.pipeline.create import create_attempt
from shared.pipeline.merge import merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.poll import poll_attempt
from shared.pipeline.start import register_run
from shared.pipeline.upload import upload_attempt
from shared.run.records import Summary
from shared.run.spec import RunOptions, RunSpec
from shared.settings import Settings
from tests.fixtures.emulator import EmulatorHandle


def write_requests(path: Path, lines: int, *, bad: tuple[int, ...] = ()) -> Path:
    with path.open("w") as out:
        for n in range(1, lines + 1):
            if n in bad:
                out.write("{oops\n")
                continue
            request = {"contents": [{"parts": [{"text": f"prompt {n}"}]}]}
            out.write(json.dumps({"key": f"k{n}", "request": request, "n": n}) + "\n")
    return path


@dataclass
class Harness:
    settings: Settings
    emulator: EmulatorHandle
    tmp: Path

    def start(self, lines: int = 20, *, bad: tuple[int, ...] = (), **options: Any) -> RunContext:
        source = write_requests(self.tmp / f"in-{time.monotonic_ns()}.jsonl", lines, bad=bad)
        spec = RunSpec(
            input_uri=str(source),
            output_uri=str(self.tmp / f"out-{time.monotonic_ns()}"),
            options=RunOptions(**options),
        )
        started = register_run(self.settings, spec)
        return RunContext(self.settings, started.run_id, started.output_uri)

    def wait_jobs(self, ctx: RunContext, shard: int, attempt: int) -> None:
        deadline = time.monotonic() + 30
        while not poll_attempt(ctx, shard, attempt):
            assert time.monotonic() < deadline, "jobs did not finish"
            time.sleep(0.05)

    def drive_shard(self, ctx: RunContext, shard: int) -> list[CollectStep]:
        """upload → create → poll → collect, following new attempts, as the chain would."""
        steps = []
        attempt = 1
        while True:
            upload_attempt(ctx, shard, attempt)
            create_attempt(ctx, shard, attempt)
            self.wait_jobs(ctx, shard, attempt)
            step = collect_attempt(ctx, shard, attempt)
            steps.append(step)
            if step.next_attempt is None:
                return steps
            attempt = step.next_attempt

    def run(self, ctx: RunContext) -> Summary:
        plan = plan_run(ctx)
        for shard in plan.shards:
            self.drive_shard(ctx, shard.index)
        return merge_run(ctx)


@pytest.fixture
def harness(emulator: EmulatorHandle, tmp_path: Path) -> Iterator[Harness]:
    settings = Settings(
        api_key=emulator.api_key,
        api_base_url=emulator.base_url,
        state_uri=str(tmp_path / "state"),
        poll_initial_seconds=0.1,
        poll_max_seconds=0.5,
        http_max_retries=2,
    )
    coordination_redis(settings).flushall()  # the embedded fake is process-wide
    yield Harness(settings, emulator, tmp_path)


@pytest.fixture
def no_wait() -> Callable[[Callable[[], Any]], Any]:
    """Call a stage that may ask to wait; return the RetryLater instead of raising it."""

    def call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RetryLater as exc:
            return exc

    return call
