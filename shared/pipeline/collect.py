"""Stage 6: turn each finished job into sorted outcome files, then decide what comes next.

For every part of the attempt: the provider's responses file is streamed into the run's
storage, classified into results and per-request errors (errors keep the provider's code,
status and message), and the provider's copies of the input and output files are deleted.
A job that failed, expired, vanished or was cancelled makes every line of its part an
error. Lines whose error is retryable, while attempts remain, become the next attempt
(an expired job's lines in parts half the size); otherwise the shard is finished
(:mod:`shared.pipeline.finish`).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, suppress
from typing import Any, BinaryIO

from pydantic import BaseModel

from shared import names
from shared.errors import NotFoundError, ProviderError, RunError
from shared.failpoints import failpoint
from shared.jsonl import (
    OutcomeStats,
    OutOfOrder,
    classify_output,
    fail_all,
    is_retryable,
    retryable_lines,
    stage_parts,
)
from shared.pipeline.cleanup import delete_part_file
from shared.pipeline.context import RunContext
from shared.pipeline.finish import finish_shard
from shared.run import layout
from shared.run.records import (
    AttemptReason,
    AttemptRecord,
    CollectedRecord,
    JobRecord,
    PartPlan,
    ShardOutcome,
)
from shared.run.states import BatchState, PartFate, ShardState


class CollectStep(BaseModel):
    """What the collect task does next: another attempt, or nothing (the shard is final)."""

    shard: int
    attempt: int
    next_attempt: int | None = None
    state: ShardState | None = None


def collect_attempt(ctx: RunContext, shard: int, attempt: int) -> CollectStep:
    outcome = ctx.store.outcome(shard)
    if outcome is not None:
        return CollectStep(shard=shard, attempt=attempt, state=outcome.state)
    record = ctx.store.require_attempt(shard, attempt)
    cancelled = ctx.store.cancel_requested()
    collected = [collect_part(ctx, shard, attempt, part, cancelled) for part in record.parts]
    failpoint("collect.after_parts")
    if ctx.store.attempt(shard, attempt + 1) is not None:
        return CollectStep(shard=shard, attempt=attempt, next_attempt=attempt + 1)
    retry = sum(c.retryable for c in collected)
    limit = max(ctx.manifest.max_request_attempts, ctx.manifest.max_job_attempts)
    if retry and not cancelled and attempt < limit:
        expired = any(c.job_state is BatchState.EXPIRED for c in collected)
        stage_next_attempt(ctx, record, retry, "expired" if expired else "retry")
        failpoint("collect.after_staging")
        return CollectStep(shard=shard, attempt=attempt, next_attempt=attempt + 1)
    final = finish_shard(ctx, shard)
    return CollectStep(shard=shard, attempt=attempt, state=final.state)


def collect_part(
    ctx: RunContext, shard: int, attempt: int, part: PartPlan, cancelled: bool
) -> CollectedRecord:
    existing = ctx.store.collected(shard, attempt, part.part)
    if existing is not None:
        return existing
    started = time.monotonic()
    job = ctx.store.job(shard, attempt, part.part)
    manifest = ctx.manifest
    if job is None or job.job_name is None:
        if not cancelled:
            raise RunError(f"run {ctx.run_id}: shard {shard}/a{attempt}/p{part.part} has no job")
        error = {
            "code": None,
            "status": "CANCELLED",
            "message": "the run was cancelled before this request was submitted",
        }
        record = _fail_part(
            ctx, shard, attempt, part, error, PartFate.NOT_SUBMITTED, retryable=False
        )
    elif not job.is_final or job.state is None:
        raise RunError(f"run {ctx.run_id}: job {job.job_name} is not final ({job.state})")
    elif job.state is BatchState.SUCCEEDED:
        record = _collect_output(ctx, shard, attempt, part, job, cancelled)
    else:
        retry = not cancelled and attempt < manifest.max_job_attempts
        record = _fail_part(
            ctx, shard, attempt, part, _job_error(job, cancelled), job.state, retry
        )
    record.seconds = time.monotonic() - started
    ctx.store.write_collected(shard, attempt, part.part, record)
    _free_provider_files(ctx, shard, attempt, part.part, job)
    if job is not None:
        ctx.admission.release_job(
            job.key_fingerprint, names.redis_holder(ctx.run_id, shard, attempt, part.part)
        )
    return record


def _collect_output(
    ctx: RunContext, shard: int, attempt: int, part: PartPlan, job: JobRecord, cancelled: bool
) -> CollectedRecord:
    storage = ctx.storage
    output_key = layout.part_output(shard, attempt, part.part)
    if not storage.exists(output_key):
        assert job.responses_file is not None
        try:
            with (
                ctx.provider(job.key_fingerprint).open_output(job.responses_file) as chunks,
                storage.open_write(output_key) as out,
            ):
                for chunk in chunks:
                    out.write(chunk)
                    failpoint("collect.mid_download")
        except NotFoundError:
            # A concurrent delivery of this task copied it first and then freed the
            # provider's copy (only ever after ours is committed): read that one.
            if not storage.exists(output_key):
                raise
    failpoint("collect.after_download")
    may_retry = not cancelled and attempt < ctx.manifest.max_request_attempts

    def retryable(error: Mapping[str, Any]) -> bool:
        return may_retry and is_retryable(error)

    def classify(in_order: bool) -> OutcomeStats:
        with (
            storage.open_read(output_key) as output,
            storage.open_read(part.input_key) as part_input,
            storage.open_write(layout.part_results(shard, attempt, part.part)) as results,
            storage.open_write(layout.part_errors(shard, attempt, part.part)) as errors,
        ):
            return classify_output(
                output, part_input, results, errors, retryable=retryable, in_order=in_order
            )

    try:  # the provider documents output in input order: join as it comes, no sort
        stats = classify(in_order=True)
    except OutOfOrder:  # the writers left nothing behind; sort this one
        stats = classify(in_order=False)
    return CollectedRecord(
        job_state=BatchState.SUCCEEDED,
        responses=stats.responses,
        errors=stats.errors,
        retryable=stats.retryable if may_retry else 0,
        missing=stats.missing,
        strays=stats.strays,
        duplicates=stats.duplicates,
        tokens=stats.tokens,
    )


def _job_error(job: JobRecord, cancelled: bool) -> dict[str, Any]:
    """The error every line of a job that produced no output gets."""
    if job.state is BatchState.EXPIRED:
        return {
            "code": None,
            "status": "EXPIRED",
            "message": "the batch job expired (not finished within 48 h) and gave no results",
        }
    if job.state is BatchState.CANCELLED and cancelled:
        return {"code": None, "status": "CANCELLED", "message": "the run was cancelled"}
    if job.state is BatchState.VANISHED:
        base: dict[str, Any] = {"status": "NOT_FOUND", "message": "the batch job disappeared"}
    elif job.state is BatchState.CANCELLED:
        base = {"status": "CANCELLED", "message": "the batch job was cancelled outside Shardline"}
    else:
        base = {"status": "FAILED", "message": "the batch job failed"}
    provided = job.error or {}
    return {
        "code": provided.get("code"),
        "status": provided.get("status") or base["status"],
        "message": provided.get("message") or base["message"],
    }


def _fail_part(
    ctx: RunContext,
    shard: int,
    attempt: int,
    part: PartPlan,
    error: Mapping[str, Any],
    job_state: BatchState | PartFate,
    retryable: bool,
) -> CollectedRecord:
    storage = ctx.storage
    with (
        storage.open_read(part.input_key) as part_input,
        storage.open_write(layout.part_results(shard, attempt, part.part)),
        storage.open_write(layout.part_errors(shard, attempt, part.part)) as errors,
    ):
        count = fail_all(part_input, errors, error, retryable)
    return CollectedRecord(job_state=job_state, errors=count, retryable=count if retryable else 0)


def _free_provider_files(
    ctx: RunContext, shard: int, attempt: int, part: int, job: JobRecord | None
) -> None:
    """The job is over: its files only count against the provider's 20 GB quota now."""
    delete_part_file(ctx, shard, attempt, part)
    if job is not None and job.responses_file:
        # Best effort: generated files expire after 48 h anyway.
        with suppress(ProviderError):
            ctx.provider(job.key_fingerprint).delete_file(job.responses_file)


def stage_next_attempt(
    ctx: RunContext, record: AttemptRecord, count: int, reason: AttemptReason
) -> AttemptRecord:
    """Write the retried lines of ``record`` as the parts of the next attempt."""
    shard, attempt = record.shard, record.attempt + 1
    storage = ctx.storage
    with ExitStack() as stack:
        errors = [
            stack.enter_context(
                storage.open_read(layout.part_errors(shard, record.attempt, p.part))
            )
            for p in record.parts
        ]
        sources = [stack.enter_context(storage.open_read(p.input_key)) for p in record.parts]
        wanted = _merged_lines(errors)
        staged = stage_parts(
            sources,
            wanted,
            lambda index: storage.open_write(layout.part_input(shard, attempt, index)),
            max_bytes=ctx.manifest.shard_max_bytes,
            max_requests=ctx.manifest.shard_max_requests,
            min_parts=2 if reason == "expired" else 1,
            total=count,
        )
    next_record = AttemptRecord(
        shard=shard,
        attempt=attempt,
        reason=reason,
        parts=[
            PartPlan(
                part=part.index,
                input_key=layout.part_input(shard, attempt, part.index),
                requests=part.requests,
                bytes=part.bytes,
                estimated_tokens=part.estimated_tokens,
            )
            for part in staged
        ],
    )
    return ctx.store.settle_attempt(next_record)


def _merged_lines(errors: list[BinaryIO]) -> Iterator[int]:
    return heapq.merge(*(retryable_lines(reader) for reader in errors))


def abandon_attempt(
    ctx: RunContext, shard: int, attempt: int, exc: BaseException
) -> ShardOutcome:
    """Give up on an attempt after repeated failures: its lines become errors, the shard ends.

    A live job is cancelled first (best effort) so that nothing keeps running unpaid-for
    attention; the lines it held are reported with the error that made us give up.
    """
    existing = ctx.store.outcome(shard)
    if existing is not None:
        return existing
    record = ctx.store.require_attempt(shard, attempt)
    error: dict[str, Any] = {
        "code": getattr(exc, "code", None),
        "status": getattr(exc, "status", None) or "ABANDONED",
        "message": f"Shardline gave up on this request: {exc}",
    }
    for part in record.parts:
        if ctx.store.collected(shard, attempt, part.part) is not None:
            continue
        job = ctx.store.job(shard, attempt, part.part)
        if job is not None and job.job_name and not job.is_final:
            with suppress(ProviderError):
                ctx.provider(job.key_fingerprint).cancel_job(job.job_name)
        collected = _fail_part(
            ctx, shard, attempt, part, error, PartFate.ABANDONED, retryable=False
        )
        ctx.store.write_collected(shard, attempt, part.part, collected)
        if job is not None:
            ctx.admission.release_job(
                job.key_fingerprint, names.redis_holder(ctx.run_id, shard, attempt, part.part)
            )
    return finish_shard(ctx, shard)
