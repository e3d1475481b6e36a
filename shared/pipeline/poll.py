"""Stage 5: look at every job of an attempt once; the task re-schedules while any is live.

A job the provider no longer knows (404) is recorded as ``VANISHED`` and treated like a
failed job. A user cancel is forwarded to live jobs here, once per job.
"""

from __future__ import annotations

from shared import names
from shared.errors import NotFoundError, RunError
from shared.failpoints import failpoint
from shared.pipeline.context import RunContext
from shared.provider import ProviderJob
from shared.run.records import JobRecord, utcnow
from shared.run.states import BatchState


def poll_attempt(ctx: RunContext, shard: int, attempt: int) -> bool:
    """Refresh every job of the attempt; True when none is live any more."""
    record = ctx.store.require_attempt(shard, attempt)
    cancelled = ctx.store.cancel_requested()
    done = True
    for part in record.parts:
        job = ctx.store.job(shard, attempt, part.part)
        if job is None or job.job_name is None:
            if cancelled:
                continue  # never created: collect accounts its lines as cancelled
            raise RunError(f"run {ctx.run_id}: shard {shard}/a{attempt}/p{part.part} has no job")
        if job.is_final:
            continue
        if not poll_job(ctx, shard, attempt, part.part, job, cancel=cancelled):
            done = False
    return done


def poll_job(
    ctx: RunContext, shard: int, attempt: int, part: int, job: JobRecord, *, cancel: bool
) -> bool:
    """One GET of one job, recorded; True when the job is final."""
    assert job.job_name is not None
    provider = ctx.provider(job.key_fingerprint)
    holder = names.redis_holder(ctx.run_id, shard, attempt, part)
    try:
        found = provider.get_job(job.job_name)
    except NotFoundError as exc:
        job.state = BatchState.VANISHED
        job.error = {"code": exc.code, "status": exc.status, "message": exc.message}
        ctx.store.write_job(shard, attempt, part, job)
        ctx.admission.release_job(job.key_fingerprint, holder)
        return True
    failpoint("poll.after_get")
    if cancel and found.is_live and not job.cancel_sent:
        provider.cancel_job(job.job_name)
        job.cancel_sent = True
    _apply(job, found)
    ctx.store.write_job(shard, attempt, part, job)
    if found.state.terminal:  # no longer counts at the provider, output or not
        ctx.admission.release_job(job.key_fingerprint, holder)
    return job.is_final


def _apply(job: JobRecord, found: ProviderJob) -> None:
    job.state = found.state
    job.polled_at = utcnow()
    job.polls += 1
    counts = found.counts
    job.request_count = counts.request_count or job.request_count
    job.succeeded_count = counts.succeeded_count
    job.failed_count = counts.failed_count
    job.pending_count = counts.pending_count
    job.responses_file = found.output
    if found.error is not None:
        job.error = found.error
