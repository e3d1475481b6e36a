"""A message that kills every worker that takes it is parked after three deaths, not
delivered forever: real worker processes, each armed to SIGKILL itself at the same point of
the same step, one after another, on the private Redis. The run then ends ``failed`` with
the reason, every line accounted for, and the last worker is still alive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import EmulatorConfig
from tests.chaos.conftest import (
    CHUNK,
    Run,
    Workers,
    assert_accounted,
    chaos_env,
    submit,
    wait_killed,
    wait_redelivery,
    write_input,
)
from tests.fixtures.emulator import FAST_TIME_SCALE, TEST_KEY, EmulatorHandle, running_emulator

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(300)]

LINES = 300  # one shard of ~50 kB: a dozen upload chunks of 4 kB
DEATHS = 3  # SHARDLINE_POISON_MAX_DELIVERIES, the default


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    """An emulator that takes uploads in chunks as small as the workers send."""
    config = EmulatorConfig(api_keys=[TEST_KEY], time_scale=FAST_TIME_SCALE,
                            upload_chunk_granularity=CHUNK)
    with running_emulator(config) as handle:
        yield handle


def kill_three_workers(workers: Workers, env: dict[str, str], failpoint: str, run: Run) -> None:
    for _ in range(DEATHS):
        worker = workers.start(env, failpoints=failpoint)
        wait_redelivery(wait_killed(worker, run))


def test_an_upload_that_kills_its_worker_three_times_is_parked_and_fails_the_run(
    broker: str, workers: Workers, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    env = chaos_env(emulator, tmp_path, broker)
    source = tmp_path / "requests.jsonl"
    write_input(source, LINES)
    run = submit(broker, source, tmp_path / "out", shard_max_requests=1000)

    # Each delivery resumes the upload and dies after its first chunk.
    kill_three_workers(workers, env, "upload.after_chunk=kill", run)
    survivor = workers.start(env, failpoints="upload.after_chunk=kill")
    summary = run.wait_summary(workers=[survivor], reconcile_via=broker)

    assert survivor.alive(), "the fourth delivery ran the poison again"
    assert summary.state == "failed"
    assert summary.error is not None and "shardline.upload was parked" in summary.error
    assert "delivered 3 times" in summary.error
    results, errors = assert_accounted(run, LINES)
    assert results == [] and len(errors) == LINES - 2
    assert all("poison message" in e["error"]["message"] for e in errors)
    [parked] = run.store.parked()
    assert (parked.task, parked.shard, parked.attempt, parked.deliveries) == (
        "shardline.upload", 0, 1, DEATHS)
    assert "poison message" in survivor.log()
    assert emulator.jobs() == []


def test_a_plan_that_kills_its_worker_three_times_fails_the_run(
    broker: str, workers: Workers, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    env = chaos_env(emulator, tmp_path, broker)
    source = tmp_path / "requests.jsonl"
    write_input(source, LINES)
    run = submit(broker, source, tmp_path / "out")

    kill_three_workers(workers, env, "plan.mid_pass=kill", run)
    survivor = workers.start(env, failpoints="plan.mid_pass=kill")
    summary = run.wait_summary(workers=[survivor], reconcile_via=broker)

    assert survivor.alive()
    assert summary.state == "failed"
    assert summary.error is not None and "shardline.plan was parked" in summary.error
    assert run.store.plan() is None and summary.counts.lines == 0
