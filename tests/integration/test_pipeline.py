"""End to end on real parts: a Celery worker process, Redis, the emulator as a process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

LINES = 3000
SHARD_REQUESTS = "500"


def test_redis_worker_process(
    emulator_process_factory, redis_url, worker_factory, pipeline_env, tmp_path: Path
) -> None:
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=redis_url)
    worker_factory(env)
    source, out = tmp_path / "requests.jsonl", tmp_path / "out"
    expected = write_input(source, LINES)

    submitted = shardline(
        "submit", str(source), "--out", str(out), "--shard-max-requests", SHARD_REQUESTS,
        env=env,
    )
    run_id = submitted.stdout.strip()
    summary = wait_summary(out)

    assert summary.run_id == run_id
    check_output(out, expected)
    assert summary.shards >= 5
    jobs = [j for j in emulator.handle.jobs() if j["displayName"].startswith(f"shardline-{run_id}")]
    names = [j["displayName"] for j in jobs]
    assert len(names) == len(set(names)), "a part was created twice"
    assert len(jobs) == part_count(out) == len(summary.jobs)
    assert len(jobs) > summary.shards, "the 503s should have caused retry attempts"
    status = shardline("status", run_id, "--json", env=env)
    assert json.loads(status.stdout)["state"] == summary.state


def test_embedded_default(emulator_process_factory, pipeline_env, tmp_path: Path) -> None:
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=None)
    source, out = tmp_path / "requests.jsonl", tmp_path / "out"
    expected = write_input(source, LINES)

    result = shardline(
        "run", str(source), "--out", str(out), "--shard-max-requests", SHARD_REQUESTS,
        "--json", env=env,
    )

    summary = check_output(out, expected)
    assert json.loads(result.stdout)["run_id"] == summary.run_id
    assert summary.shards >= 5
    assert len(emulator.handle.jobs()) == part_count(out)
