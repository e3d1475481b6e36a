"""The orphan sweep after real crashes: whatever a SIGKILLed worker leaves at the provider is
gone once the run is merged and beat's reconciler has passed, and things of other clients
(the google-genai SDK, raw HTTP, another deployment's runs) are all still there.

- ``upload.after_finalize``: the file exists, the upload record does not name it yet (the
  redelivered upload finds the finalized session and adopts the file);
  ``upload.after_chunk``: killed in the middle of the bytes (the session is resumed).
- ``upload.after_finalize``, then the run is cancelled before a worker comes back: the
  upload is never resumed, so no record ever names the file the dead worker made; the
  cancelled run merges and deletes the files its records name. Only the sweep frees that one
  (the kind of leak issue #11 saw).
- ``create.after_call``, then the run is cancelled, with jobs that stay pending: the job the
  dead worker made is named by no record and nothing would ever cancel it; the sweep does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from emulator import EmulatorConfig
from shared import names
from tests.chaos.conftest import (
    CHUNK,
    RECONCILE_EVERY,
    Run,
    Workers,
    assert_accounted,
    assert_one_job_per_part,
    chaos_env,
    run_jobs,
    submit,
    wait_killed,
    wait_redelivery,
    write_input,
)
from tests.fixtures.emulator import (
    FAST_TIME_SCALE,
    OTHER_KEY,
    TERMINAL_STATES,
    TEST_KEY,
    EmulatorHandle,
    running_emulator,
)
from tests.shared.pipeline.test_sweep import foreign_things, provider_names

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

LINES = 200  # 2 shards of <= 100 requests


def run_files(emulator: EmulatorHandle, run: Run) -> set[str]:
    """Files of the run at the provider: inputs by display name, outputs through its jobs."""
    prefix = f"shardline-{run.run_id}-"
    outputs = {job["outputFile"] for job in run_jobs(emulator, run)}
    return {
        f["name"]
        for f in emulator.files()
        if (f["displayName"] or "").startswith(prefix) or f["name"] in outputs
    }


def live_jobs(emulator: EmulatorHandle, run: Run) -> list[str]:
    return [j["name"] for j in run_jobs(emulator, run) if j["state"] not in TERMINAL_STATES]


def play_beat_until(
    broker: str, done: Callable[[], bool], left: Callable[[], str], timeout: float = 60.0
) -> None:
    """Send ``shardline.reconcile`` every few seconds, as beat does, until ``done()``."""
    client = Celery("chaos-beat", broker=broker, set_as_current=False)
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic()
    try:
        while not done():
            assert time.monotonic() < deadline, f"the sweep never finished: {left()} left"
            if time.monotonic() >= next_tick:
                client.send_task(names.TASK_RECONCILE, queue=names.QUEUE)
                next_tick = time.monotonic() + RECONCILE_EVERY
            time.sleep(0.2)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("failpoints", "cancel"),
    [
        ("upload.after_finalize=kill", False),
        ("upload.after_chunk=kill@2", False),
        ("upload.after_finalize=kill", True),
        ("create.after_call=kill", True),
    ],
)
def test_a_killed_worker_leaks_nothing(
    failpoints: str, cancel: bool, broker: str, workers: Workers, tmp_path: Path
) -> None:
    config = EmulatorConfig(
        api_keys=[TEST_KEY, OTHER_KEY], time_scale=FAST_TIME_SCALE, upload_chunk_granularity=CHUNK,
        # jobs of a cancelled run stay live until cancelled
        faults={"jobs": [{"display_name_contains": "shardline-", "pending_seconds": 1e7}]}
        if cancel else {},
    )
    with running_emulator(config) as emulator:
        foreign = foreign_things(emulator, tmp_path)
        env = chaos_env(emulator, tmp_path, broker)
        armed = workers.start(env, failpoints)
        source = tmp_path / "requests.jsonl"
        write_input(source, LINES)
        run = submit(broker, source, tmp_path / "out")
        killed_at = wait_killed(armed, run)
        left_by_the_crash = run_files(emulator, run)
        if cancel:
            run.store.request_cancel()  # what `shardline cancel` records first
        wait_redelivery(killed_at)
        workers.start(env)
        summary = run.wait_summary(workers=workers.started, reconcile_via=broker)
        assert summary.accounted
        if cancel:
            assert summary.state == "cancelled"
            # The file the dead worker finalized is named by no record: no step of the
            # pipeline can delete it, only the sweep can.
            orphans = left_by_the_crash - _recorded_files(run)
            assert orphans, f"the crash should leave a file no record names: {left_by_the_crash}"
        else:
            assert_accounted(run, LINES)
            assert_one_job_per_part(emulator, run)
        play_beat_until(
            broker,
            lambda: not run_files(emulator, run) and not live_jobs(emulator, run),
            lambda: f"files {run_files(emulator, run)}, live jobs {live_jobs(emulator, run)}",
        )
        assert foreign <= provider_names(emulator), "a foreign file or job was touched"
        clean = workers.started[-1]
        failed = [line for line in clean.log().splitlines()
                  if "shardline.reconcile[" in line and "raised unexpected" in line]
        assert not failed, failed[0]


def _recorded_files(run: Run) -> set[str]:
    """Every provider file name the run's upload records hold."""
    store = run.store
    plan = store.plan()
    assert plan is not None
    found: set[str] = set()
    for shard in plan.shards:
        for ref in store.parts(shard.index):
            upload = store.upload(ref.shard, ref.attempt, ref.part)
            if upload is not None and upload.file_name is not None:
                found.add(upload.file_name)
    return found
