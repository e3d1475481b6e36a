"""End to end on object storage: input, output and run registry on a real S3 server.

SeaweedFS on 127.0.0.1 (the ``s3_storage`` fixture sets the standard ``AWS_*`` variables in
this process; the worker and CLI processes inherit them), a worker process on Redis, the
emulator as a process with 503 faults on first attempts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shared.run import layout
from shared.storage import Storage
from tests.fixtures.services import purge_queue
from tests.fixtures.storage import S3Server
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
OUTPUTS = (layout.RESULTS, layout.ERRORS, layout.REJECTED, layout.SUMMARY)


def upload(path: Path, storage: Storage, key: str) -> str:
    with path.open("rb") as source, storage.open_write(key) as target:
        shutil.copyfileobj(source, target, 1 << 20)
    return f"{storage.uri}/{key}"


def download(storage: Storage, keys: tuple[str, ...], into: Path) -> Path:
    into.mkdir(parents=True)
    for key in keys:
        with storage.open_read(key) as source, (into / key).open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    return into


def test_input_output_and_registry_on_s3(
    emulator_process_factory, redis_url, worker_factory, pipeline_env, s3_server: S3Server,
    s3_storage: Storage, tmp_path: Path,
) -> None:
    purge_queue(redis_url)
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=redis_url,
                       state_uri=f"{s3_storage.uri}/state", input_prefixes=f"{s3_storage.uri}/in",
                       output_prefixes=f"{s3_storage.uri}/out")
    worker_factory(env)
    local = tmp_path / "requests.jsonl"
    expected = write_input(local, LINES)
    source = upload(local, s3_storage, "in/requests.jsonl")
    out = f"{s3_storage.uri}/out"

    run_id = shardline("submit", source, "--out", out, "--shard-max-requests", "100",
                       env=env).stdout.strip()
    summary = wait_summary(out, timeout=120)  # type: ignore[arg-type]

    assert summary.run_id == run_id
    check_output(download(s3_storage.child("out"), OUTPUTS, tmp_path / "out"), expected)
    assert summary.shards == 4
    jobs = [j for j in emulator.handle.jobs() if j["displayName"].startswith(f"shardline-{run_id}")]
    names_ = [j["displayName"] for j in jobs]
    assert len(names_) == len(set(names_)), "a part was created twice"
    assert len(jobs) == part_count(out) == len(summary.jobs)  # type: ignore[arg-type]
    assert len(jobs) > summary.shards, "the 503s should have caused retry attempts"
    assert s3_server.pending_uploads(s3_server.bucket, s3_storage.uri.split("/", 3)[3]) == []
    assert not (tmp_path / "state").exists(), "the registry should be on S3"
    assert s3_storage.exists(f"state/{layout.registry_run(run_id)}")
    status = shardline("status", run_id, "--json", env=env)
    assert json.loads(status.stdout)["state"] == summary.state
