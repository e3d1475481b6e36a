"""A task that outlives the visibility timeout is delivered a second time while it runs.

The second copy finds the first one's live lease and steps aside: the part is uploaded
once, by one session, and the run ends as usual. This is what lets the visibility timeout
follow the longest countdown instead of the longest task. The timeout is shortened here
(3 s) only to make an upload outlive it quickly; a latency fault on upload chunks makes the
upload take several seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kombu import Connection

from emulator import EmulatorConfig
from shared.liveness import read_lease, shard_subject
from shared.storage import open_storage
from tests.chaos.conftest import (
    CHUNK,
    Workers,
    assert_accounted,
    assert_one_job_per_part,
    chaos_env,
    submit,
    write_input,
)
from tests.fixtures.emulator import FAST_TIME_SCALE, OTHER_KEY, TEST_KEY, running_emulator

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(180)]

LINES = 100  # one shard
VISIBILITY = 3


def test_a_second_delivery_of_a_running_upload_steps_aside(
        broker: str, workers: Workers, tmp_path: Path) -> None:
    config = EmulatorConfig(api_keys=[TEST_KEY, OTHER_KEY], time_scale=FAST_TIME_SCALE,
                            upload_chunk_granularity=CHUNK)
    with running_emulator(config) as emulator:
        emulator.set_faults({"latency": [{"endpoint": "files.upload.chunk", "seconds": 4.0}]})
        env = chaos_env(emulator, tmp_path, broker, visibility_timeout_seconds=str(VISIBILITY))
        source = tmp_path / "requests.jsonl"
        write_input(source, LINES)
        first = workers.start(env)
        run = submit(broker, source, tmp_path / "out")
        storage = open_storage(str(run.output))
        deadline = time.monotonic() + 60
        while True:
            lease = read_lease(storage, shard_subject(0)) if storage.exists(
                "_shardline/run.json") else None
            if lease is not None and lease.state == "running" and lease.step == "upload":
                break
            assert time.monotonic() < deadline, first.log()[-3000:]
            time.sleep(0.05)
        # The upload message is now older than the visibility timeout. kombu puts such
        # messages back on the queue from a sweep every ~100 s; do that sweep now.
        time.sleep(VISIBILITY + 1.0)
        with Connection(broker, transport_options={"visibility_timeout": VISIBILITY}) as conn:
            conn.default_channel.qos.restore_visible(num=100, interval=1)

        run.wait_summary(timeout=120, workers=workers.started)

        log = first.log()
        assert log.count("Task shardline.upload[") >= 3, "the upload was not delivered again"
        assert "upload steps aside" in log
        assert emulator.stats()["requests"].get("files.upload.start") == 1
        assert_accounted(run, LINES)
        assert_one_job_per_part(emulator, run)
