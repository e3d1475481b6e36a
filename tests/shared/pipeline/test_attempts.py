"""Retries as new attempts, failed and expired jobs, cancel, and the at-most-once create."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import RateLimitError, RetryLater
from shared.pipeline.cancel import cancel_run
from shared.pipeline.create import create_part
from shared.pipeline.plan import plan_run
from shared.pipeline.upload import upload_attempt, upload_part
from shared.run import layout
from shared.run.records import JobRecord


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rule(**rule) -> dict:
    return {"seed": 3, "jobs": [rule]}


def test_retryable_request_errors_become_a_new_attempt(harness) -> None:
    harness.emulator.set_faults(_rule(display_name_contains="-a01-", request_errors={
        "rate": 0.3, "code": 503, "status": "UNAVAILABLE", "message": "overloaded"}))
    ctx = harness.start(40)
    plan_run(ctx)
    steps = harness.drive_shard(ctx, 0)
    assert [s.next_attempt for s in steps] == [2, None]
    retried = ctx.store.attempt(0, 2)
    assert retried is not None and retried.reason == "retry"
    first = ctx.store.collected(0, 1, 0)
    assert first is not None and retried.parts[0].requests == first.retryable > 0
    summary = harness.run(ctx)
    assert summary.counts.results == 40 and summary.counts.errors == 0
    assert len(summary.jobs) == 2


def test_final_request_errors_keep_the_provider_answer(harness) -> None:
    harness.emulator.set_faults(_rule(request_errors={
        "rate": 0.25, "code": 400, "status": "INVALID_ARGUMENT", "message": "bad field"}))
    ctx = harness.start(40)
    summary = harness.run(ctx)
    errors = _lines(Path(ctx.output_uri) / layout.ERRORS)
    assert errors and summary.counts.errors == len(errors)
    assert summary.counts.results + len(errors) == 40 and summary.state == "partial"
    for line in errors:
        assert line["error"] == {"code": 400, "message": "bad field", "status": "INVALID_ARGUMENT"}
        assert line["attempts"] == 1 and line["n"] == int(line["key"][1:])


def test_retries_stop_at_the_limit(harness) -> None:
    harness.emulator.set_faults(_rule(request_errors={
        "rate": 1.0, "code": 500, "status": "INTERNAL", "message": "boom"}))
    ctx = harness.start(6, max_request_attempts=2, max_job_attempts=1)
    summary = harness.run(ctx)
    errors = _lines(Path(ctx.output_uri) / layout.ERRORS)
    assert summary.counts.errors == 6 and {e["attempts"] for e in errors} == {2}
    assert len(summary.jobs) == 2


def test_a_failed_job_is_retried_then_reported(harness) -> None:
    harness.emulator.set_faults(_rule(fail={"code": 13, "message": "backend exploded"}))
    ctx = harness.start(5, max_job_attempts=2)
    summary = harness.run(ctx)
    assert summary.counts.errors == 5 and len(summary.jobs) == 2
    errors = _lines(Path(ctx.output_uri) / layout.ERRORS)
    assert {(e["error"]["code"], e["error"]["message"], e["attempts"]) for e in errors} == {
        (13, "backend exploded", 2)}


def test_a_failed_job_then_a_good_one(harness) -> None:
    harness.emulator.set_faults(_rule(display_name_contains="-a01-", fail={"code": 13}))
    ctx = harness.start(5)
    summary = harness.run(ctx)
    assert summary.counts.results == 5 and summary.state == "succeeded"


def test_an_expired_job_is_resubmitted_in_halves(harness) -> None:
    harness.emulator.set_faults(_rule(display_name_contains="-a01-", expire=True))
    ctx = harness.start(9)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_part(ctx, 0, 1, ctx.store.attempt(0, 1).parts[0])
    harness.emulator.advance(49 * 3600)  # past the provider's 48 h limit
    harness.drive_shard(ctx, 0)
    second = ctx.store.attempt(0, 2)
    assert second is not None and second.reason == "expired"
    assert [p.requests for p in second.parts] == [5, 4]
    summary = harness.run(ctx)
    assert summary.counts.results == 9 and len(summary.jobs) == 3


def test_cancel_before_submission_accounts_every_line(harness) -> None:
    ctx = harness.start(8, shard_max_requests=4)
    plan_run(ctx)
    harness.drive_shard(ctx, 0)
    cancel_run(ctx)
    summary = harness.run(ctx)
    assert summary.state == "cancelled"
    assert (summary.counts.results, summary.counts.errors) == (4, 4)
    errors = _lines(Path(ctx.output_uri) / layout.ERRORS)
    assert {e["error"]["status"] for e in errors} == {"CANCELLED"}


def test_cancel_stops_live_jobs(harness) -> None:
    harness.emulator.set_faults(_rule(pending_seconds=3600))
    ctx = harness.start(4)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    attempt = ctx.store.attempt(0, 1)
    create_part(ctx, 0, 1, attempt.parts[0])
    assert cancel_run(ctx)["cancelled_jobs"] == 1
    summary = harness.run(ctx)
    assert summary.state == "cancelled" and summary.counts.errors == 4
    assert [j["state"] for j in harness.emulator.jobs()] == ["BATCH_STATE_CANCELLED"]


def _uploaded(harness):
    ctx = harness.start(3)
    plan_run(ctx)
    part = ctx.store.attempt(0, 1).parts[0]
    upload_part(ctx, 0, 1, part)
    return ctx, part


def test_create_adopts_a_job_whose_record_was_lost(harness) -> None:
    ctx, part = _uploaded(harness)
    upload = ctx.store.upload(0, 1, 0)
    display = layout.display_name(ctx.run_id, 0, 1, 0)
    # A worker sent the create and died before recording the job it got.
    intent = JobRecord(display_name=display, key_fingerprint=upload.key_fingerprint,
                       model=ctx.manifest.model, file_name=upload.file_name)
    ctx.store.create_job(0, 1, 0, intent)
    made = ctx.provider(upload.key_fingerprint).create_job(
        model=ctx.manifest.model, kind="generate", display_name=display,
        file_name=upload.file_name)
    job = create_part(ctx, 0, 1, part)
    assert job.job_name == made.name
    assert [j["name"] for j in harness.emulator.jobs()] == [made.name]


def test_create_waits_while_another_may_be_creating(harness) -> None:
    ctx, part = _uploaded(harness)
    upload = ctx.store.upload(0, 1, 0)
    intent = JobRecord(display_name=layout.display_name(ctx.run_id, 0, 1, 0),
                       key_fingerprint=upload.key_fingerprint, model=ctx.manifest.model,
                       file_name=upload.file_name)
    ctx.store.create_job(0, 1, 0, intent)
    with pytest.raises(RetryLater, match="may be in flight"):
        create_part(ctx, 0, 1, part)
    assert harness.emulator.jobs() == []


def test_create_refused_by_quota_can_go_again_at_once(harness) -> None:
    harness.emulator.set_faults({"http": [{"endpoint": "batches.create", "code": 429,
                                           "times": 10, "retry_delay_seconds": 47}]})
    ctx, part = _uploaded(harness)
    with pytest.raises(RateLimitError) as caught:
        create_part(ctx, 0, 1, part)
    assert caught.value.retry_delay == pytest.approx(47, abs=1)
    record = ctx.store.job(0, 1, 0)
    assert record is not None and not record.create_in_flight and record.job_name is None
    harness.emulator.set_faults({})
    assert create_part(ctx, 0, 1, part).job_name is not None
    assert len(harness.emulator.jobs()) == 1


def test_upload_resumes_from_the_server_offset(harness) -> None:
    harness.settings.upload_chunk_bytes = 1024
    harness.emulator.set_faults({"drops": [{"endpoint": "files.upload.chunk",
                                            "after_bytes": 3000, "times": 1}]})
    ctx = harness.start(400)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    record = ctx.store.upload(0, 1, 0)
    assert record is not None and record.file_name is not None
    files = {f.name: f for f in ctx.provider(record.key_fingerprint).list_files()}
    assert files[record.file_name].size_bytes == record.size
