"""The orphan sweep against a real emulator and real run records (shared/pipeline/sweep.py).

Leftovers are made the way a killed worker makes them (a second upload of a part whose first
upload was never recorded; jobs nobody deletes), next to things of other clients: files
uploaded with the google-genai SDK and with raw HTTP under other display names, a foreign
batch job with its output file, and files named like ours whose run this registry does not
know (another deployment sharing the key).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.pipeline.create import create_attempt
from shared.pipeline.plan import plan_run
from shared.pipeline.reconcile import reconcile
from shared.pipeline.sweep import SWEEP_GRACE, sweep_orphans
from shared.pipeline.upload import upload_attempt
from shared.run import layout
from tests.emulator.raw_api import create_file_batch, create_inline_batch, jsonl, request
from tests.fixtures.emulator import EmulatorHandle
from tests.shared.pipeline.conftest import Harness

FOREIGN_RUN = "20990101-000000-deadbeef"


def raw_upload(emulator: EmulatorHandle, display_name: str, data: bytes = b"") -> str:
    """Upload like any client would, under ``display_name``; the file's name."""
    data = data or jsonl([{"key": "a", "request": request("hello")}])
    with emulator.http() as client:
        started = client.post(
            "/upload/v1beta/files",
            json={"file": {"display_name": display_name}},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": str(len(data)),
            },
        )
        done = httpx.post(
            started.headers["x-goog-upload-url"],
            content=data,
            headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
        )
        name: str = done.json()["file"]["name"]
        return name


def foreign_things(emulator: EmulatorHandle, tmp_path: Any) -> set[str]:
    """Files and jobs of other clients; their names."""
    source = tmp_path / "sdk.jsonl"
    source.write_bytes(jsonl([{"key": "a", "request": request("hi")}]))
    sdk = emulator.genai()
    sdk_file = sdk.files.upload(
        file=str(source), config={"display_name": "my-batch-requests", "mime_type": "jsonl"}
    ).name
    raw = raw_upload(emulator, "notes")
    other_deployment = raw_upload(emulator, layout.display_name(FOREIGN_RUN, 0, 1, 0))
    with emulator.http() as client:
        job = create_file_batch(client, raw, display_name="nightly").json()["name"]
    output = emulator.wait_job(job)["outputFile"]
    assert output is not None  # a generated file: no display name, made by a foreign job
    with emulator.http() as client:
        named_job = create_inline_batch(
            client, ["y"], display_name=layout.display_name(FOREIGN_RUN, 0, 1, 0)
        ).json()["name"]
    return {sdk_file, raw, other_deployment, job, output, named_job}


def provider_names(emulator: EmulatorHandle) -> set[str]:
    return {f["name"] for f in emulator.files()} | {j["name"] for j in emulator.jobs()}


def emulated_now(emulator: EmulatorHandle) -> datetime:
    return datetime.fromtimestamp(emulator.advance(0)["timestamp"], UTC)


def test_a_merged_run_leaves_nothing_and_others_keep_everything(
    harness: Harness, emulator: EmulatorHandle, tmp_path: Any
) -> None:
    ctx = harness.start(10, shard_max_requests=5)
    harness.run(ctx)
    # A worker killed after its upload was finalized, before recording it: the part was
    # uploaded again, and the first file is named in no record.
    leaked = raw_upload(emulator, layout.display_name(ctx.run_id, 0, 1, 0), b"x" * 1000)
    foreign = foreign_things(emulator, tmp_path)
    ours = provider_names(emulator) - foreign
    jobs = {j["name"] for j in emulator.jobs()} - foreign
    assert leaked in ours and len(jobs) == 2  # one job per shard, finished

    dry = sweep_orphans(harness.settings, dry_run=True)
    assert provider_names(emulator) == ours | foreign  # a dry run changes nothing
    assert [(a.kind, a.name) for a in dry.actions] == [("delete_file", leaked)]
    assert not any(a.done for a in dry.actions) and dry.bytes_freed == 0

    report = sweep_orphans(harness.settings)
    # the run's own finished jobs stay: no quota, the provider's record of the run
    assert provider_names(emulator) == foreign | jobs
    assert (report.files_deleted, report.bytes_freed) == (1, 1000)
    assert (report.jobs_deleted, report.jobs_cancelled, report.errors) == (0, 0, [])
    assert report.kept == {"not shardline's": 4, "part final": 2, "run unregistered": 2}
    assert sweep_orphans(harness.settings).actions == []  # nothing left to do


def test_a_live_run_keeps_what_its_records_name(
    harness: Harness, emulator: EmulatorHandle
) -> None:
    ctx = harness.start(5)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_attempt(ctx, 0, 1)
    recorded = ctx.store.upload(0, 1, 0)
    job = ctx.store.job(0, 1, 0)
    assert recorded is not None and recorded.file_name and job is not None and job.job_name
    second = raw_upload(emulator, layout.display_name(ctx.run_id, 0, 1, 0))
    no_record = raw_upload(emulator, layout.display_name(ctx.run_id, 7, 1, 0))
    now = emulated_now(emulator)

    report = sweep_orphans(harness.settings, now=now)
    assert report.actions == []  # inside the grace period: a record may be on its way
    assert report.kept["duplicate, in grace"] == 1
    assert report.kept["part missing, in grace"] == 1

    report = sweep_orphans(harness.settings, now=now + SWEEP_GRACE + timedelta(seconds=1))
    assert {(a.kind, a.name, a.reason) for a in report.actions} == {
        ("delete_file", second, "a second upload of the part"),
        ("delete_file", no_record, "part has no record"),
    }
    output = emulator.job(job.job_name)["outputFile"]  # not collected yet: kept
    assert {f["name"] for f in emulator.files()} == {recorded.file_name, output} - {None}


def test_the_reconciler_sweeps_and_a_cancelled_run_loses_its_live_jobs(
    harness: Harness, emulator: EmulatorHandle
) -> None:
    emulator.set_faults({"jobs": [{"pending_seconds": 1e6}]})  # jobs stay live
    ctx = harness.start(5)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_attempt(ctx, 0, 1)
    job = ctx.store.job(0, 1, 0)
    assert job is not None and job.job_name
    ctx.store.request_cancel()
    report = reconcile(
        harness.settings,
        restart_chain=lambda *_: None,
        restart_merge=lambda *_: None,
        restart_plan=lambda *_: None,
        sweep=True,
    )
    assert report.sweep is not None and report.sweep.jobs_cancelled == 1
    assert emulator.wait_job(job.job_name)["state"] == "BATCH_STATE_CANCELLED"
    assert report.sweep.kept["part cancelled"] == 1  # its input file waits for the cancel
