"""Stage 6: turn each finished job into sorted outcome files, then decide what comes next.

For every part of the attempt: the provider's responses file is streamed into the run's
storage, split into results and per-request errors (errors keep the provider's code,
status and message), and the provider's copies of the input and output files are deleted.
A job that failed, expired, vanished or was cancelled makes every line of its part an
error. Lines whose error is retryable, while attempts remain, become the next attempt
(an expired job's lines in parts half the size); otherwise the shard is finished: its
attempts are merged into the shard's final, input-ordered results and errors.
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
    CollectStats,
    OutOfOrder,
    collect_output,
    fail_all,
    finish_shard,
    is_retryable,
    retryable_lines,
    stage_parts,
)
from shared.pipeline.context import RunContext
from shared.pipeline.merge import delete_part_file
from shared.pipeline.poll import VANISHED, job_is_final
from shared.records import (
    AttemptReason,
    AttemptRecord,
    CollectedRecord,
    JobRecord,
    PartPlan,
    ShardOutcome,
    ShardState,
    TokenTotals,
)

SUCCEEDED = "BATCH_STATE_SUCCEEDED"
EXPIRED = "BATCH_STATE_EXPIRED"
CANCELLED = "BATCH_STATE_CANCELLED"
NOT_SUBMITTED = "NOT_SUBMITTED"
ABANDONED = "ABANDONED"


class CollectStep(BaseModel):
    """What the collect task does next: another attempt, or nothing (the shard is final)."""

    shard: int
    attempt: int
    next_attempt: int | None = None
    state: ShardState | None = None


def shard_is_final(ctx: RunContext, shard: int) -> bool:
    return ctx.storage.exists(names.shard_outcome(shard))


def collect_attempt(ctx: RunContext, shard: int, attempt: int) -> CollectStep:
    outcome = ctx.records.outcome(shard)
    if outcome is not None:
        return CollectStep(shard=shard, attempt=attempt, state=outcome.state)
    record = ctx.records.require_attempt(shard, attempt)
    cancelled = ctx.records.cancel_requested()
    collected = [collect_part(ctx, shard, attempt, part, cancelled) for part in record.parts]
    failpoint("collect.after_parts")
    if ctx.records.attempt(shard, attempt + 1) is not None:
        return CollectStep(shard=shard, attempt=attempt, next_attempt=attempt + 1)
    retry = sum(c.retryable for c in collected)
    limit = max(ctx.manifest.max_request_attempts, ctx.manifest.max_job_attempts)
    if retry and not cancelled and attempt < limit:
        expired = any(c.job_state == EXPIRED for c in collected)
        stage_next_attempt(ctx, record, retry, "expired" if expired else "retry")
        failpoint("collect.after_staging")
        return CollectStep(shard=shard, attempt=attempt, next_attempt=attempt + 1)
    final = finish(ctx, shard)
    return CollectStep(shard=shard, attempt=attempt, state=final.state)


def collect_part(
    ctx: RunContext, shard: int, attempt: int, part: PartPlan, cancelled: bool
) -> CollectedRecord:
    existing = ctx.records.collected(shard, attempt, part.part)
    if existing is not None:
        return existing
    started = time.monotonic()
    job = ctx.records.job(shard, attempt, part.part)
    manifest = ctx.manifest
    if job is None or job.job_name is None:
        if not cancelled:
            raise RunError(f"run {ctx.run_id}: shard {shard}/a{attempt}/p{part.part} has no job")
        error = {
            "code": None,
            "status": "CANCELLED",
            "message": "the run was cancelled before this request was submitted",
        }
        record = _fail_part(ctx, shard, attempt, part, error, NOT_SUBMITTED, retryable=False)
    elif not job_is_final(job):
        raise RunError(f"run {ctx.run_id}: job {job.job_name} is not final ({job.state})")
    elif job.state == SUCCEEDED:
        record = _collect_output(ctx, shard, attempt, part, job, cancelled)
    else:
        retry = not cancelled and attempt < manifest.max_job_attempts
        record = _fail_part(
            ctx, shard, attempt, part, _job_error(job, cancelled), job.state or "", retry
        )
    record.seconds = time.monotonic() - started
    ctx.records.write(names.part_collected(shard, attempt, part.part), record)
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
    output_key = names.part_output(shard, attempt, part.part)
    if not storage.exists(output_key):
        assert job.responses_file is not None
        try:
            with (
                ctx.client(job.key_fingerprint).download(job.responses_file) as chunks,
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

    def collect(in_order: bool) -> CollectStats:
        with (
            storage.open_read(output_key) as output,
            storage.open_read(part.input_key) as part_input,
            storage.open_write(names.part_results(shard, attempt, part.part)) as results,
            storage.open_write(names.part_errors(shard, attempt, part.part)) as errors,
        ):
            return collect_output(
                output, part_input, results, errors, retryable=retryable, in_order=in_order
            )

    try:  # the provider documents output in input order: join as it comes, no sort
        stats = collect(in_order=True)
    except OutOfOrder:  # the writers left nothing behind; sort this one
        stats = collect(in_order=False)
    return CollectedRecord(
        job_state=SUCCEEDED,
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
    if job.state == EXPIRED:
        return {
            "code": None,
            "status": "EXPIRED",
            "message": "the batch job expired (not finished within 48 h) and gave no results",
        }
    if job.state == CANCELLED and cancelled:
        return {"code": None, "status": "CANCELLED", "message": "the run was cancelled"}
    if job.state == VANISHED:
        base: dict[str, Any] = {"status": "NOT_FOUND", "message": "the batch job disappeared"}
    elif job.state == CANCELLED:
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
    job_state: str,
    retryable: bool,
) -> CollectedRecord:
    storage = ctx.storage
    with (
        storage.open_read(part.input_key) as part_input,
        storage.open_write(names.part_results(shard, attempt, part.part)),
        storage.open_write(names.part_errors(shard, attempt, part.part)) as errors,
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
            ctx.client(job.key_fingerprint).delete_file(job.responses_file)


def stage_next_attempt(
    ctx: RunContext, record: AttemptRecord, count: int, reason: AttemptReason
) -> AttemptRecord:
    """Write the retried lines of ``record`` as the parts of the next attempt."""
    shard, attempt = record.shard, record.attempt + 1
    storage = ctx.storage
    with ExitStack() as stack:
        errors = [
            stack.enter_context(storage.open_read(names.part_errors(shard, record.attempt, p.part)))
            for p in record.parts
        ]
        sources = [stack.enter_context(storage.open_read(p.input_key)) for p in record.parts]
        wanted = _merged_lines(errors)
        staged = stage_parts(
            sources,
            wanted,
            lambda index: storage.open_write(names.part_input(shard, attempt, index)),
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
                input_key=names.part_input(shard, attempt, part.index),
                requests=part.requests,
                bytes=part.bytes,
                estimated_tokens=part.estimated_tokens,
            )
            for part in staged
        ],
    )
    return ctx.records.create_or_read(names.attempt_record(shard, attempt), next_record)


def _merged_lines(errors: list[BinaryIO]) -> Iterator[int]:
    return heapq.merge(*(retryable_lines(reader) for reader in errors))


def finish(ctx: RunContext, shard: int) -> ShardOutcome:
    """Merge every attempt of the shard into its final results and errors, once."""
    existing = ctx.records.outcome(shard)
    if existing is not None:
        return existing
    storage = ctx.storage
    attempts = ctx.records.attempts(shard)
    collected: list[tuple[int, int, CollectedRecord]] = []
    for attempt in attempts:
        for part in attempt.parts:
            record = ctx.records.collected(shard, attempt.attempt, part.part)
            if record is not None:
                collected.append((attempt.attempt, part.part, record))
    with ExitStack() as stack:
        sidecar = stack.enter_context(storage.open_read(names.shard_sidecar(shard)))
        streams = [
            (
                number,
                stack.enter_context(storage.open_read(names.part_results(shard, number, part))),
                stack.enter_context(storage.open_read(names.part_errors(shard, number, part))),
            )
            for number, part, _ in collected
        ]
        results = stack.enter_context(storage.open_write(names.shard_results(shard)))
        errors = stack.enter_context(storage.open_write(names.shard_errors(shard)))
        totals = finish_shard(sidecar, streams, results, errors)
    failpoint("finish.after_results")
    tokens = TokenTotals()
    for _, _, record in collected:
        tokens = tokens.add(record.tokens)
    outcome = ShardOutcome(
        shard=shard,
        state=_shard_state(ctx, totals.results, totals.errors),
        requests=totals.lines,
        results=totals.results,
        errors=totals.errors,
        attempts=len(attempts),
        jobs=_job_names(ctx, attempts),
        tokens=tokens,
        stage_seconds=_stage_seconds(ctx, attempts, collected),
    )
    return ctx.records.create_or_read(names.shard_outcome(shard), outcome)


def _shard_state(ctx: RunContext, results: int, errors: int) -> ShardState:
    if ctx.records.cancel_requested() and errors:
        return "cancelled"
    if errors == 0:
        return "succeeded"
    return "failed" if results == 0 else "partial"


def _job_names(ctx: RunContext, attempts: list[AttemptRecord]) -> list[str]:
    found = []
    for attempt in attempts:
        for part in attempt.parts:
            job = ctx.records.job(attempt.shard, attempt.attempt, part.part)
            if job is not None and job.job_name:
                found.append(job.job_name)
    return found


def _stage_seconds(
    ctx: RunContext,
    attempts: list[AttemptRecord],
    collected: list[tuple[int, int, CollectedRecord]],
) -> dict[str, float]:
    upload = create = wait = 0.0
    for attempt in attempts:
        for part in attempt.parts:
            up = ctx.records.upload(attempt.shard, attempt.attempt, part.part)
            if up is not None and up.finished_at is not None:
                upload += (up.finished_at - up.started_at).total_seconds()
            job = ctx.records.job(attempt.shard, attempt.attempt, part.part)
            if job is not None and job.created_at is not None:
                create += max(0.0, (job.created_at - job.intent_at).total_seconds())
                if job.polled_at is not None:
                    wait += max(0.0, (job.polled_at - job.created_at).total_seconds())
    return {
        "upload": round(upload, 3),
        "create": round(create, 3),
        "wait": round(wait, 3),
        "collect": round(sum(record.seconds for _, _, record in collected), 3),
    }


def abandon_attempt(
    ctx: RunContext, shard: int, attempt: int, exc: BaseException
) -> ShardOutcome:
    """Give up on an attempt after repeated failures: its lines become errors, the shard ends.

    A live job is cancelled first (best effort) so that nothing keeps running unpaid-for
    attention; the lines it held are reported with the error that made us give up.
    """
    existing = ctx.records.outcome(shard)
    if existing is not None:
        return existing
    record = ctx.records.require_attempt(shard, attempt)
    error: dict[str, Any] = {
        "code": getattr(exc, "code", None),
        "status": getattr(exc, "status", None) or "ABANDONED",
        "message": f"Shardline gave up on this request: {exc}",
    }
    for part in record.parts:
        if ctx.records.collected(shard, attempt, part.part) is not None:
            continue
        job = ctx.records.job(shard, attempt, part.part)
        if job is not None and job.job_name and not job_is_final(job):
            with suppress(ProviderError):
                ctx.client(job.key_fingerprint).cancel_batch(job.job_name)
        collected = _fail_part(ctx, shard, attempt, part, error, ABANDONED, retryable=False)
        ctx.records.write(names.part_collected(shard, attempt, part.part), collected)
        if job is not None:
            ctx.admission.release_job(
                job.key_fingerprint, names.redis_holder(ctx.run_id, shard, attempt, part.part)
            )
    return finish(ctx, shard)
