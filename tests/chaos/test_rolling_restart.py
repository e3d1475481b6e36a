"""A rolling update: every worker in turn is stopped politely (SIGTERM) mid-run while its
successor is already up. Each stopping worker hands the countdown messages it holds (the
shards' polls) back to the queue at once, so the successor polls on at the next due time:
the run is delayed by seconds, and nothing waits for the visibility timeout (shipped
default) or for the deadline check to notice.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from emulator import EmulatorConfig
from shared.settings import Settings
from tests.chaos.conftest import (
    CHUNK,
    Workers,
    assert_accounted,
    assert_one_job_per_part,
    submit,
    wait_input_files_deleted,
    write_input,
)
from tests.chaos.test_broker_loss import wait_live_jobs
from tests.fixtures.emulator import OTHER_KEY, TEST_KEY, running_emulator
from tests.fixtures.services import pipeline_environment

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

LINES = 300  # 3 shards
HANDED = re.compile(r"handed (\d+) scheduled message\(s\) back")


def test_a_rolling_restart_of_every_worker_hands_held_polls_back(
        broker: str, workers: Workers, tmp_path: Path) -> None:
    # A job takes about 20 s (120 emulated seconds at 6x), so polls are held while it runs.
    config = EmulatorConfig(api_keys=[TEST_KEY, OTHER_KEY], time_scale=6,
                            upload_chunk_granularity=CHUNK)
    with running_emulator(config) as emulator:
        env = pipeline_environment(emulator.base_url, emulator.api_key, tmp_path,
                                   broker=broker, poll_initial_seconds="4",
                                   poll_max_seconds="6", upload_chunk_bytes=str(CHUNK))
        del env["SHARDLINE_VISIBILITY_TIMEOUT_SECONDS"]  # the shipped default
        source = tmp_path / "requests.jsonl"
        write_input(source, LINES)
        current = workers.start(env)
        run = submit(broker, source, tmp_path / "out")
        wait_live_jobs(run, emulator)
        time.sleep(1.0)  # the first polls are scheduled and held
        handed = []
        for _ in range(2):
            successor = workers.start(env)
            current.stop(timeout=60)
            assert current.process.returncode == 0, current.log()[-3000:]
            handed.append(sum(int(n) for n in HANDED.findall(current.log())))
            current = successor
        last_stop = time.monotonic()

        run.wait_summary(workers=workers.started)

        assert handed[0] >= 1, "the first worker held polls and handed none back"
        # Moved on by the handed-back messages, long before a redelivery could have done it.
        assert time.monotonic() - last_stop < Settings().visibility_timeout_seconds
        logs = "".join(w.log() for w in workers.started)
        assert "restarting from its records" not in logs
        assert_accounted(run, LINES)
        assert_one_job_per_part(emulator, run)
        wait_input_files_deleted(emulator, run)
