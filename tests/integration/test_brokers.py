"""The same run on both supported brokers: Redis, and RabbitMQ with a Redis result backend.

A worker process, the emulator as a process with 503 faults on first attempts (so retries,
countdown polls and a chord go through each broker), and the output checks of
``test_pipeline``. The ``shardline`` queue is purged first: a message left by another run
must not reach this worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.services import purge_queue
from tests.integration.conftest import (
    API_KEY,
    FAULTS,
    check_output,
    part_count,
    shardline,
    wait_summary,
    write_input,
)

pytestmark = pytest.mark.integration

LINES = 400


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, redis_url: str) -> tuple[str, str | None]:
    """(broker URL, result backend): RabbitMQ needs Redis to count the chord."""
    if request.param == "redis":
        return redis_url, None
    rabbitmq_url: str = request.getfixturevalue("rabbitmq_url")
    return rabbitmq_url, redis_url


def test_a_run_on_each_broker(
    broker: tuple[str, str | None], emulator_process_factory, worker_factory, pipeline_env,
    tmp_path: Path,
) -> None:
    broker_url, backend = broker
    purge_queue(broker_url)
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=broker_url,
                       backend=backend)
    worker = worker_factory(env)
    source, out = tmp_path / "requests.jsonl", tmp_path / "out"
    expected = write_input(source, LINES)

    run_id = shardline("submit", str(source), "--out", str(out), "--shard-max-requests", "100",
                       env=env).stdout.strip()
    summary = wait_summary(out, timeout=120)

    assert summary.run_id == run_id
    check_output(out, expected)
    assert summary.shards == 4
    jobs = [j for j in emulator.handle.jobs() if j["displayName"].startswith(f"shardline-{run_id}")]
    names = [j["displayName"] for j in jobs]
    assert len(names) == len(set(names)), "a part was created twice"
    assert len(jobs) == part_count(out) == len(summary.jobs)
    assert len(jobs) > summary.shards, "the 503s should have caused retry attempts"
    scheme = broker_url.split("://", 1)[0]
    assert f".> transport:   {scheme}://" in worker.log(), "the worker used another broker"
