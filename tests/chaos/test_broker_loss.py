"""The broker loses everything mid-run (FLUSHALL, or a restart without persistence): queued
and unacknowledged messages, the chord's counter, the admission ledger. The run's records
in storage are intact, so ``shardline resume RUN_ID --detach`` sets it going again: it ends
with every line accounted for once and exactly one batch job per part.

The emulator runs slower here (a job takes about 2 s) so that jobs are live when the broker
goes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import EmulatorConfig
from tests.chaos.conftest import (
    CHUNK,
    RedisServer,
    Run,
    Workers,
    assert_accounted,
    assert_one_job_per_part,
    chaos_env,
    submit,
    wait_input_files_deleted,
    write_input,
)
from tests.fixtures.emulator import OTHER_KEY, TEST_KEY, EmulatorHandle, running_emulator
from tests.fixtures.services import WorkerProcess
from tests.integration.conftest import shardline

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

LINES = 600


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(api_keys=[TEST_KEY, OTHER_KEY], time_scale=60,
                            upload_chunk_granularity=CHUNK)
    with running_emulator(config) as handle:
        yield handle


def wait_live_jobs(run: Run, emulator: EmulatorHandle, timeout: float = 60.0) -> None:
    """Until some jobs are created and none is finished: the moment to lose the broker."""
    deadline = time.monotonic() + timeout
    prefix = f"shardline-{run.run_id}-"
    while time.monotonic() < deadline:
        jobs = [j for j in emulator.jobs() if j["displayName"].startswith(prefix)]
        if len(jobs) >= 2:
            assert all(j["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")
                       for j in jobs), "too late: a job finished before the broker loss"
            return
        time.sleep(0.05)
    raise AssertionError("no live jobs")


def reconnected(worker: WorkerProcess, timeout: float = 30.0) -> bool:
    """After a broker restart: True once the worker is connected again, False if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            return False
        if worker.log().count("Connected to redis") >= 2:
            return True
        time.sleep(0.1)
    raise AssertionError(f"worker neither reconnected nor exited:\n{worker.log()[-3000:]}")


def resume(run: Run, env: dict[str, str]) -> None:
    result = shardline("resume", run.run_id, "--detach", env=env)
    assert result.stdout.strip() == run.run_id


def test_flushall_mid_run_then_resume(
    slow_emulator: EmulatorHandle, broker: str, chaos_redis: RedisServer, workers: Workers,
    tmp_path: Path,
) -> None:
    env = chaos_env(slow_emulator, tmp_path, broker)
    workers.start(env)
    source = tmp_path / "requests.jsonl"
    write_input(source, LINES)
    run = submit(broker, source, tmp_path / "out")
    wait_live_jobs(run, slow_emulator)

    chaos_redis.client().flushall()
    resume(run, env)

    run.wait_summary(workers=workers.started, reconcile_via=broker)
    assert_accounted(run, LINES)
    assert_one_job_per_part(slow_emulator, run)
    wait_input_files_deleted(slow_emulator, run)


def test_flushall_mid_run_recovers_without_resume(
    slow_emulator: EmulatorHandle, broker: str, chaos_redis: RedisServer, workers: Workers,
    tmp_path: Path,
) -> None:
    """Nobody runs ``resume``: the deadline check finds its index gone (the ``~built``
    marker with it), rebuilds it from the lease records in storage, and restarts every
    subject whose message went with the broker."""
    env = chaos_env(slow_emulator, tmp_path, broker)
    workers.start(env)
    source = tmp_path / "requests.jsonl"
    write_input(source, LINES)
    run = submit(broker, source, tmp_path / "out")
    wait_live_jobs(run, slow_emulator)

    chaos_redis.client().flushall()

    run.wait_summary(workers=workers.started)
    assert "deadline index rebuilt from storage" in workers.started[0].log()
    assert_accounted(run, LINES)
    assert_one_job_per_part(slow_emulator, run)
    wait_input_files_deleted(slow_emulator, run)


def test_redis_restarted_mid_run_then_resume(
    slow_emulator: EmulatorHandle, workers: Workers, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        env = chaos_env(slow_emulator, tmp_path, server.url())
        worker = workers.start(env)
        source = tmp_path / "requests.jsonl"
        write_input(source, LINES)
        run = submit(server.url(), source, tmp_path / "out")
        wait_live_jobs(run, slow_emulator)

        server.restart()  # SIGKILL and start again: no persistence, everything is gone
        if not reconnected(worker):
            # kombu 5.7 can die on the lost connection ("Unrecoverable error: AttributeError
            # ... 'hostname'" while restoring unacked messages); it exits non-zero, and the
            # supervisor (systemd Restart=on-failure, Kubernetes, compose) starts it again.
            assert worker.process.returncode not in (0, None)
            workers.start(env)
        resume(run, env)

        run.wait_summary(workers=workers.started, reconcile_via=server.url())
        assert_accounted(run, LINES)
        assert_one_job_per_part(slow_emulator, run)
        wait_input_files_deleted(slow_emulator, run)
    finally:
        workers.close()
        server.stop()
