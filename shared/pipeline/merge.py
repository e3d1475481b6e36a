"""Stage 7 (after the last shard batch): one keyed result set, and a summary that adds up.

Shards are contiguous ranges of input lines and each shard's outputs are already in input
order, so the run's files are the shards' files concatenated in shard order: streaming,
and no memory beyond a copy buffer.
"""

from __future__ import annotations

import time

from shared.errors import RetryLater, RunError
from shared.failpoints import failpoint
from shared.jsonl import concat
from shared.pipeline.cleanup import delete_run_files
from shared.pipeline.context import RunContext
from shared.pricing import estimate_cost
from shared.run import layout
from shared.run.records import (
    CostEstimate,
    Counts,
    PlanRecord,
    ShardOutcome,
    Summary,
    TokenTotals,
    utcnow,
)
from shared.run.states import RunState

#: How long the merge waits between looks while shards are still running.
MERGE_WAIT_SECONDS = 15.0


def merge_run(ctx: RunContext, *, checked: int = 0) -> Summary:
    """Merge once every shard is final; until then ``RetryLater``.

    Shards are looked at in order from ``checked`` (how many a earlier look found final,
    carried to the next try) and the look stops at the first that is not final: a wait costs
    one read, not one per shard, however many shards the run has.
    """
    existing = ctx.store.summary()
    if existing is not None:
        return existing
    plan = ctx.store.plan()
    if plan is None:
        raise RunError(f"run {ctx.run_id} has no plan yet; nothing to merge")
    total = len(plan.shards)
    for position in range(min(checked, total), total):
        if not ctx.store.shard_is_final(plan.shards[position].index):
            raise RetryLater(
                f"{position} of {total} shards final, waiting for shard "
                f"{plan.shards[position].index}",
                MERGE_WAIT_SECONDS,
                carry={"checked": position},
            )
    outcomes: list[ShardOutcome] = []
    for shard in plan.shards:
        outcome = ctx.store.outcome(shard.index)
        if outcome is None:  # a look of an earlier try saw it final: outcomes stay
            raise RunError(f"run {ctx.run_id}: shard {shard.index} lost its outcome")
        outcomes.append(outcome)
    started = time.monotonic()
    storage = ctx.storage
    with storage.open_write(layout.RESULTS) as out:
        concat(storage, [layout.shard_results(o.shard) for o in outcomes], out)
    with storage.open_write(layout.ERRORS) as out:
        concat(storage, [layout.shard_errors(o.shard) for o in outcomes], out)
    with storage.open_write(layout.REJECTED) as out:
        concat(storage, [layout.PLAN_REJECTED], out)
    failpoint("merge.after_results")
    summary = _summary(ctx, plan, outcomes, merge_seconds=time.monotonic() - started)
    written = ctx.store.settle_summary(summary)
    failpoint("merge.after_summary")
    delete_run_files(ctx, plan)
    return written


def _summary(
    ctx: RunContext, plan: PlanRecord, outcomes: list[ShardOutcome], *, merge_seconds: float
) -> Summary:
    manifest = ctx.manifest
    counts = Counts(
        lines=plan.lines,
        results=sum(o.results for o in outcomes),
        errors=sum(o.errors for o in outcomes),
        rejected=plan.rejected,
    )
    tokens = TokenTotals()
    for outcome in outcomes:
        tokens = tokens.add(outcome.tokens)
    finished = utcnow()
    timings = {"plan": round(plan.seconds, 3), "merge": round(merge_seconds, 3)}
    for stage in ("upload", "create", "wait", "collect"):
        values = [o.stage_seconds.get(stage, 0.0) for o in outcomes]
        timings[f"{stage}_sum"] = round(sum(values), 3)
        timings[f"{stage}_max"] = round(max(values, default=0.0), 3)
    timings["total"] = round((finished - manifest.created_at).total_seconds(), 3)
    state, error = _state(ctx, counts)
    return Summary(
        run_id=ctx.run_id,
        state=state,
        error=error,
        model=manifest.model,
        kind=manifest.kind,
        input_uri=manifest.spec.input_uri,
        output_uri=manifest.spec.output_uri,
        counts=counts,
        accounted=counts.accounted,
        tokens=tokens,
        cost=estimate_cost(manifest.model, tokens),
        shards=len(outcomes),
        jobs=[job for o in outcomes for job in o.jobs],
        timings=timings,
        started_at=manifest.created_at,
        finished_at=finished,
        labels=manifest.spec.labels,
    )


def _state(ctx: RunContext, counts: Counts) -> tuple[RunState, str | None]:
    """The run's end state and, when it failed, why.

    A run with nothing to send (an empty input, every line rejected) failed: exiting 0 on a
    file of random bytes tells nobody anything. A parked poison message fails the run even
    when other shards succeeded: part of the work crashed workers and was never done.
    """
    if ctx.store.cancel_requested():
        return "cancelled", None
    parked = ctx.store.parked()
    if parked:
        return "failed", "; ".join(record.reason for record in parked)
    if counts.results == 0 and counts.errors == 0:
        if counts.lines == 0:
            return "failed", "no usable line: the input is empty"
        return "failed", (f"no usable line: all {counts.lines} lines were rejected "
                          f"(reasons in {layout.REJECTED})")
    if counts.errors == 0:
        return "succeeded", None
    if counts.results == 0:
        return "failed", f"every request ended in error (see {layout.ERRORS})"
    return "partial", None


def fail_run(ctx: RunContext, reason: str) -> Summary:
    """The run cannot go on (its input is unusable, its plan or merge is a poison message):
    a ``failed`` summary that says why. Lines a plan counted but no output file holds are
    not claimed as accounted for."""
    manifest = ctx.manifest
    now = utcnow()
    plan = ctx.store.plan()
    counts = Counts(lines=0, results=0, errors=0, rejected=0)
    if plan is not None:
        counts = Counts(lines=plan.lines, results=0, errors=0, rejected=plan.rejected)
    summary = Summary(
        run_id=ctx.run_id,
        state="failed",
        model=manifest.model,
        kind=manifest.kind,
        input_uri=manifest.spec.input_uri,
        output_uri=manifest.spec.output_uri,
        counts=counts,
        accounted=counts.accounted,
        tokens=TokenTotals(),
        cost=CostEstimate(basis="nothing was submitted"),
        shards=0,
        jobs=[],
        timings={},
        started_at=manifest.created_at,
        finished_at=now,
        labels=manifest.spec.labels,
        error=reason,
    )
    return ctx.store.settle_summary(summary)
