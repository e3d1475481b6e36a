"""Stage 5: look at every job of an attempt once; the task re-schedules while any is live.

A job the provider no longer knows (404) is recorded as ``VANISHED`` and treated like a
failed job. A user cancel is forwarded to live jobs here, once per job.
"""

from __future__ import annotations

from shared import names
from shared.errors import NotFoundError, RunError
from shared.failpoints import failpoint
from shared.pipeline.context import RunContext
from shared.provider import BatchJob
from shared.records import JobRecord, utcnow

VANISHED = "VANISHED"
TERMINAL_STATES = {
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
    VANISHED,
}


def job_is_final(job: JobRecord) -> bool:
    """Final and collectable: a SUCCEEDED job counts only once its output is attached."""
    if job.state == "BATCH_STATE_SUCCEEDED":
        return job.responses_file is not None
    return job.state in TERMINAL_STATES


def poll_attempt(ctx: RunContext, shard: int, attempt: int) -> bool:
    """Refresh every job of the attempt; True when none is live any more."""
    record = ctx.records.require_attempt(shard, attempt)
    cancelled = ctx.records.cancel_requested()
    done = True
    for part in record.parts:
        job = ctx.records.job(shard, attempt, part.part)
        if job is None or job.job_name is None:
            if cancelled:
                continue  # never created: collect accounts its lines as cancelled
            raise RunError(f"run {ctx.run_id}: shard {shard}/a{attempt}/p{part.part} has no job")
        if job_is_final(job):
            continue
        if not poll_job(ctx, shard, attempt, part.part, job, cancel=cancelled):
            done = False
    return done


def poll_job(
    ctx: RunContext, shard: int, attempt: int, part: int, job: JobRecord, *, cancel: bool
) -> bool:
    """One GET of one job, recorded; True when the job is final."""
    assert job.job_name is not None
    client = ctx.client(job.key_fingerprint)
    try:
        batch = client.get_batch(job.job_name)
    except NotFoundError as exc:
        job.state = VANISHED
        job.error = {"code": exc.code, "status": exc.status, "message": exc.message}
        _save(ctx, shard, attempt, part, job)
        ctx.admission.release_job(
            job.key_fingerprint, names.redis_holder(ctx.run_id, shard, attempt, part)
        )
        return True
    failpoint("poll.after_get")
    if cancel and batch.is_live and not job.cancel_sent:
        client.cancel_batch(job.job_name)
        job.cancel_sent = True
    _apply(job, batch)
    _save(ctx, shard, attempt, part, job)
    if job.state in TERMINAL_STATES:  # no longer counts at the provider, output or not
        ctx.admission.release_job(
            job.key_fingerprint, names.redis_holder(ctx.run_id, shard, attempt, part)
        )
    return job_is_final(job)


def _apply(job: JobRecord, batch: BatchJob) -> None:
    job.state = batch.state.value
    job.polled_at = utcnow()
    job.polls += 1
    stats = batch.batch_stats
    job.request_count = stats.request_count or job.request_count
    job.succeeded_count = stats.successful_request_count
    job.failed_count = stats.failed_request_count
    job.pending_count = stats.pending_request_count
    job.responses_file = batch.responses_file
    if batch.error is not None:
        job.error = batch.error.model_dump(exclude_none=True)


def _save(ctx: RunContext, shard: int, attempt: int, part: int, job: JobRecord) -> None:
    ctx.records.write(names.part_job(shard, attempt, part), job)
