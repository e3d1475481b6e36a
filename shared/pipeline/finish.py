"""The end of a shard: its attempts joined into final, input-ordered results and errors, once.

Called by the collect stage when no attempt is left to run, and by a give-up (an attempt
abandoned after repeated failures). The shard's ``outcome.json`` is what the merge waits for.
"""

from __future__ import annotations

from contextlib import ExitStack

from shared.failpoints import failpoint
from shared.jsonl import join_shard
from shared.pipeline.context import RunContext
from shared.run import layout
from shared.run.records import CollectedRecord, ShardOutcome, TokenTotals
from shared.run.states import ShardState
from shared.run.store import PartRef, parts_of


def finish_shard(ctx: RunContext, shard: int) -> ShardOutcome:
    """Join every attempt of the shard into its final results and errors, once."""
    existing = ctx.store.outcome(shard)
    if existing is not None:
        return existing
    storage = ctx.storage
    attempts = ctx.store.attempts(shard)
    parts = list(parts_of(attempts))
    collected: list[tuple[PartRef, CollectedRecord]] = []
    for ref in parts:
        record = ctx.store.collected(ref.shard, ref.attempt, ref.part)
        if record is not None:
            collected.append((ref, record))
    with ExitStack() as stack:
        sidecar = stack.enter_context(storage.open_read(layout.shard_sidecar(shard)))
        streams = [
            (
                ref.attempt,
                stack.enter_context(
                    storage.open_read(layout.part_results(shard, ref.attempt, ref.part))
                ),
                stack.enter_context(
                    storage.open_read(layout.part_errors(shard, ref.attempt, ref.part))
                ),
            )
            for ref, _ in collected
        ]
        results = stack.enter_context(storage.open_write(layout.shard_results(shard)))
        errors = stack.enter_context(storage.open_write(layout.shard_errors(shard)))
        totals = join_shard(sidecar, streams, results, errors)
    failpoint("finish.after_results")
    tokens = TokenTotals()
    for _, record in collected:
        tokens = tokens.add(record.tokens)
    outcome = ShardOutcome(
        shard=shard,
        state=_shard_state(ctx, totals.results, totals.errors),
        requests=totals.lines,
        results=totals.results,
        errors=totals.errors,
        attempts=len(attempts),
        jobs=_job_names(ctx, parts),
        tokens=tokens,
        stage_seconds=_stage_seconds(ctx, parts, [record for _, record in collected]),
    )
    return ctx.store.settle_outcome(outcome)


def _shard_state(ctx: RunContext, results: int, errors: int) -> ShardState:
    if ctx.store.cancel_requested() and errors:
        return "cancelled"
    if errors == 0:
        return "succeeded"
    return "failed" if results == 0 else "partial"


def _job_names(ctx: RunContext, parts: list[PartRef]) -> list[str]:
    found = []
    for ref in parts:
        job = ctx.store.job(ref.shard, ref.attempt, ref.part)
        if job is not None and job.job_name:
            found.append(job.job_name)
    return found


def _stage_seconds(
    ctx: RunContext, parts: list[PartRef], collected: list[CollectedRecord]
) -> dict[str, float]:
    upload = create = wait = 0.0
    for ref in parts:
        up = ctx.store.upload(ref.shard, ref.attempt, ref.part)
        if up is not None and up.finished_at is not None:
            upload += (up.finished_at - up.started_at).total_seconds()
        job = ctx.store.job(ref.shard, ref.attempt, ref.part)
        if job is not None and job.created_at is not None:
            create += max(0.0, (job.created_at - job.intent_at).total_seconds())
            if job.polled_at is not None:
                wait += max(0.0, (job.polled_at - job.created_at).total_seconds())
    return {
        "upload": round(upload, 3),
        "create": round(create, 3),
        "wait": round(wait, 3),
        "collect": round(sum(record.seconds for record in collected), 3),
    }
