"""The orphan sweep's decisions (shared/pipeline/sweep.py), as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.pipeline.sweep import (
    SWEEP_GRACE,
    PartId,
    PartStatus,
    PartView,
    owned_parts,
    parse_display_name,
    plan_sweep,
)
from shared.provider import ProviderFile, ProviderJob
from shared.run import layout
from shared.run.states import BatchState

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OLD = NOW - SWEEP_GRACE - timedelta(seconds=1)
NEW = NOW - timedelta(seconds=30)
RUN = "20261202-110000-1a2b3c4d"
REF = PartId(RUN, 3, 1, 0)
NAME = f"shardline-{RUN}-s00003-a01-p000"


def File(  # noqa: N802 (reads like the model it builds)
    name: str,
    display_name: str | None = NAME,
    size_bytes: int | None = 100,
    create_time: datetime | None = OLD,
) -> ProviderFile:
    return ProviderFile(
        name=name, display_name=display_name, size_bytes=size_bytes, create_time=create_time,
        generated=name.startswith("files/batch-"),
    )


def Job(  # noqa: N802
    name: str,
    display_name: str | None = NAME,
    create_time: datetime | None = OLD,
    output: str | None = None,
    is_live: bool = False,
) -> ProviderJob:
    state = BatchState.RUNNING if is_live else BatchState.SUCCEEDED
    if not is_live and output is None:
        state = BatchState.CANCELLED
    job = ProviderJob(
        name=name, display_name=display_name, create_time=create_time, output=output, state=state
    )
    assert job.is_live is is_live
    return job


def decide(files=(), jobs=(), view: PartView | None = None, **kwargs):
    views = {} if view is None else {REF: view}
    plan = plan_sweep(files, jobs, views, now=NOW, **kwargs)
    return [(a.kind, a.name) for a in plan.actions], plan


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (NAME, REF),
        (
            "shardline-k-0123456789abcdef0123-s00000-a02-p010",
            PartId("k-0123456789abcdef0123", 0, 2, 10),
        ),
        ("shardline-x-s1-a01-p000", None),  # too few digits: not ours
        ("shardline--s00001-a01-p000", None),
        ("my-shardline-r-s00001-a01-p000", None),
        ("input", None),
        (None, None),
    ],
)
def test_display_names(name, expected):
    assert parse_display_name(name) == expected


def test_display_names_round_trip():
    assert parse_display_name(layout.display_name(*REF)) == REF
    assert layout.display_name(*REF) == NAME


def test_owned_parts_come_from_display_names_only():
    files = [File("files/a"), File("files/b", display_name="notes"), File("files/batch-1", None)]
    jobs = [Job("batches/1", output="files/batch-1"), Job("batches/2", display_name="x")]
    assert owned_parts(files, jobs) == {REF}


def test_a_final_part_frees_its_files_at_once_and_keeps_its_finished_job():
    view = PartView(PartStatus.FINAL, file_name="files/in", job_name="batches/1")
    files = [File("files/in", create_time=NEW), File("files/batch-1", None, 500, NEW)]
    jobs = [Job("batches/1", output="files/batch-1", create_time=NEW)]
    actions, plan = decide(files, jobs, view)
    assert actions == [("delete_file", "files/in"), ("delete_file", "files/batch-1")]
    assert sum(a.size_bytes for a in plan.actions) == 600
    assert plan.kept["part final"] == 1  # the job: no quota, the provider's record


def test_another_finished_job_of_a_final_part_goes_after_its_output_file():
    view = PartView(PartStatus.FINAL, file_name="files/in", job_name="batches/1")
    files = [File("files/batch-2", None, 500)]
    jobs = [Job("batches/1"), Job("batches/2", output="files/batch-2"),
            Job("batches/3", create_time=NEW)]
    actions, plan = decide(files, jobs, view)
    assert actions == [("delete_file", "files/batch-2"), ("delete_job", "batches/2")]
    assert plan.actions[1].after == "files/batch-2"  # never orphan the output file
    unrecorded = decide(jobs=[Job("batches/9")], view=PartView(PartStatus.FINAL))[0]
    assert unrecorded == [("delete_job", "batches/9")]


def test_a_live_job_of_a_final_part_is_cancelled_not_deleted():
    actions, _ = decide(jobs=[Job("batches/1", is_live=True)], view=PartView(PartStatus.FINAL))
    assert actions == [("cancel_job", "batches/1")]


def test_a_live_part_keeps_what_its_records_name_and_what_they_do_not_name_yet():
    view = PartView(PartStatus.LIVE, file_name="files/in", job_name="batches/1")
    files = [File("files/in"), File("files/batch-1", None)]
    jobs = [Job("batches/1", output="files/batch-1")]
    actions, plan = decide(files, jobs, view)
    assert actions == [] and plan.kept["part live"] == 3
    # an upload or create in flight: nothing recorded yet, nothing touched however old
    actions, _ = decide([File("files/in")], [Job("batches/1", is_live=True)],
                        PartView(PartStatus.LIVE))
    assert actions == []


def test_a_second_upload_or_job_of_a_live_part_goes_after_the_grace_period():
    view = PartView(PartStatus.LIVE, file_name="files/kept", job_name="batches/kept")
    files = [File("files/kept"), File("files/leak"), File("files/young", create_time=NEW),
             File("files/batch-dup", None)]
    jobs = [Job("batches/kept", is_live=True), Job("batches/dup", output="files/batch-dup"),
            Job("batches/dup-live", is_live=True), Job("batches/dup-young", create_time=NEW)]
    actions, plan = decide(files, jobs, view)
    assert actions == [
        ("delete_file", "files/leak"),
        ("delete_file", "files/batch-dup"),
        ("delete_job", "batches/dup"),
        ("cancel_job", "batches/dup-live"),
    ]
    assert plan.kept["duplicate, in grace"] == 1


def test_a_cancelled_run_cancels_live_jobs_and_waits_with_the_rest():
    view = PartView(PartStatus.CANCELLED, file_name="files/in", job_name="batches/1")
    files = [File("files/in"), File("files/batch-1", None)]
    jobs = [Job("batches/1", output="files/batch-1"), Job("batches/2", is_live=True)]
    actions, plan = decide(files, jobs, view)
    # the recorded job finished: the cancel collects it; a live one is stopped
    assert actions == [("cancel_job", "batches/2")]
    assert plan.kept["part cancelled"] == 3


def test_a_part_without_records_is_freed_after_the_grace_period():
    view = PartView(PartStatus.MISSING)
    files = [File("files/old"), File("files/new", create_time=NEW)]
    jobs = [Job("batches/old", is_live=True), Job("batches/new", create_time=NEW, is_live=True)]
    actions, _ = decide(files, jobs, view)
    assert actions == [("delete_file", "files/old"), ("cancel_job", "batches/old")]


@pytest.mark.parametrize("status", [PartStatus.UNREGISTERED, PartStatus.UNREADABLE, None])
def test_runs_this_registry_does_not_know_or_cannot_read_are_never_touched(status):
    view = None if status is None else PartView(status)
    files = [File("files/in"), File("files/batch-1", None)]
    jobs = [Job("batches/1", output="files/batch-1"), Job("batches/2", is_live=True)]
    actions, plan = decide(files, jobs, view)
    assert actions == []
    assert sum(plan.kept.values()) == 4


def test_files_and_jobs_of_anyone_else_are_never_touched():
    files = [
        File("files/sdk", display_name="my-batch-requests"),
        File("files/raw", display_name=None),  # not the output of a job of ours
        File("files/almost", display_name=f"shardline-{RUN}-s3-a1-p0"),
        File("files/batch-9", display_name=None),  # output of a foreign job
    ]
    jobs = [Job("batches/9", display_name="nightly", output="files/batch-9", is_live=True)]
    every_status = {REF: PartView(PartStatus.FINAL)}
    plan = plan_sweep(files, jobs, every_status, now=NOW)
    assert plan.actions == [] and plan.kept["not shardline's"] == 5
