"""--data-dir persistence and the emulator as a separate process (emulator/store.py, cli)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.emulator.raw_api import (
    create_file_batch,
    create_inline_batch,
    download,
    jsonl,
    request,
    upload,
    wait_done,
)
from tests.fixtures.emulator import TEST_KEY, _test_config, running_emulator


def test_files_and_jobs_survive_a_restart(emulator_process_factory, tmp_path: Path):
    args = ("--data-dir", str(tmp_path), "--time-scale", "1", "--api-key", TEST_KEY)
    first = emulator_process_factory(*args)
    with first.handle.http() as client:
        file = upload(
            client, jsonl([{"key": f"k{i}", "request": request(str(i))} for i in range(5)])
        )
        job = create_file_batch(client, file["name"], display_name="persisted").json()
        inline = create_inline_batch(client, ["a", "b"]).json()
    before = first.handle._call("GET", "clock")["timestamp"]
    assert first.stop() == 0

    second = emulator_process_factory(*args, port=first.port)
    assert second.handle._call("GET", "clock")["timestamp"] >= before
    with second.handle.http() as client:
        assert client.get(f"/v1beta/{file['name']}").json() == file
        again = client.get(f"/v1beta/{job['name']}").json()
        assert again["metadata"]["state"] == "BATCH_STATE_PENDING"
        assert again["metadata"]["displayName"] == "persisted"
        second.handle.advance(200)
        done = wait_done(client, job["name"])
        assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
        lines = download(client, done["response"]["responsesFile"])
        assert sorted(line["key"] for line in lines) == [f"k{i}" for i in range(5)]
        assert wait_done(client, inline["name"])["metadata"]["batchStats"]["requestCount"] == "2"


def test_a_killed_emulator_keeps_what_it_had_written(emulator_process_factory, tmp_path: Path):
    args = ("--data-dir", str(tmp_path), "--api-key", TEST_KEY)
    first = emulator_process_factory(*args)
    with first.handle.http() as client:
        file = upload(client, b"kept\n")
    first.kill()
    second = emulator_process_factory(*args)
    with second.handle.http() as client:
        assert client.get(f"/v1beta/{file['name']}").json()["sizeBytes"] == "5"


def test_unfinished_work_is_redone_after_a_restart(tmp_path: Path):
    config = _test_config(data_dir=tmp_path, time_scale=0.001)
    with running_emulator(config) as emulator, emulator.http() as client:
        file = upload(client, jsonl([{"key": "a", "request": request("again")}]))
        name = create_file_batch(client, file["name"]).json()["name"]
        for _ in range(1000):
            if emulator.job(name)["outputFile"]:
                break
    job_id = name.split("/")[1]
    record_path = tmp_path / "meta" / "jobs" / f"{job_id}.json"
    record = json.loads(record_path.read_text())
    record.update(work_done=False, work_done_at=None, processed=0, output_file=None)
    record_path.write_text(json.dumps(record))  # as if the process died mid-work
    (tmp_path / "meta" / "files" / f"batch-{job_id}.json").unlink()
    (tmp_path / "blobs" / f"batch-{job_id}").unlink()

    with running_emulator(config) as emulator, emulator.http() as client:
        emulator.advance(200)
        done = wait_done(client, name)
        (line,) = download(client, done["response"]["responsesFile"])
    assert line["key"] == "a"


def test_temp_data_dir_is_removed_at_exit(emulator_process_factory):
    proc = emulator_process_factory("--api-key", TEST_KEY)
    data_dir = Path(proc.handle._call("GET", "health")["dataDir"])
    with proc.handle.http() as client:
        upload(client, b"bytes")
    assert data_dir.is_dir()
    assert proc.stop() == 0
    assert not data_dir.exists()


def test_process_reads_faults_from_the_environment(emulator_process_factory):
    faults = {"http": [{"endpoint": "files.list", "code": 503}]}
    proc = emulator_process_factory(
        "--api-key", TEST_KEY, env={"EMULATOR_FAULTS": json.dumps(faults)}
    )
    response = httpx.get(f"{proc.handle.base_url}/v1/files", headers={"x-goog-api-key": TEST_KEY})
    assert response.status_code == 503


def test_temp_dir_of_a_killed_emulator_is_removed_by_the_next_one(emulator_process_factory):
    killed = emulator_process_factory("--api-key", TEST_KEY)
    stale = Path(killed.handle._call("GET", "health")["dataDir"])
    killed.kill()
    assert stale.is_dir()  # SIGKILL: no cleanup on the way out
    emulator_process_factory("--api-key", TEST_KEY)
    assert not stale.exists()
