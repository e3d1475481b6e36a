"""Run-level tasks: ``shardline.start_run`` (the public contract), plan, merge, cancel."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, states
from celery.exceptions import Ignore
from pydantic import ValidationError

from shared import names
from shared.errors import InputError, RunError, SpecError
from shared.liveness import (
    MERGE,
    PLAN,
    DeadlineIndex,
    expect,
    message_ticket,
    new_task_id,
    read_lease,
    shard_subject,
)
from shared.pipeline.cancel import cancel_run
from shared.pipeline.context import RunContext
from shared.pipeline.merge import fail_run, merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.run.records import utcnow
from shared.run.spec import RunSpec
from shared.validation import problems
from workers.app import app
from workers.canvas import MERGE_FIRST_LOOK_SECONDS, SHARD_BATCH, send_shards_step
from workers.canvas import send_shards as send_shard_batch
from workers.launch import launch_run
from workers.tasks._stage import run_stage, watched

log = logging.getLogger("shardline.tasks")


@app.task(bind=True, name=names.TASK_START_RUN, acks_late=True)
def start_run(self: Task, spec: dict[str, Any] | str) -> dict[str, Any]:
    """Start a run from a ``RunSpec`` (JSON object or string); answers ``{"run_id", ...}``.

    The stable contract for other services: ``send_task("shardline.start_run", [spec])``.
    The same idempotency key twice starts one run.

    A refused payload (``InputError``: a bad spec, a missing input) is the caller's mistake,
    not the worker's: it is logged as one warning line, and the task's result is stored as
    that failure (``result.get()`` raises it) without Celery's failure path, so no
    ``task-failed`` event or traceback pages an operator because a client misbehaved.
    """
    try:
        registered = register_run(app.settings, parse_spec(spec))
    except InputError as exc:
        log.warning("start_run refused: %s: %s", type(exc).__name__, exc)
        self.update_state(state=states.FAILURE, meta=exc)
        raise Ignore() from None
    launch_run(registered)
    return registered.model_dump(mode="json")


def parse_spec(spec: dict[str, Any] | str) -> RunSpec:
    """The payload as a ``RunSpec``, or a ``SpecError`` naming every problem.

    The message names fields, never their values: a caller's mistake may put a secret in
    the payload, and the error travels to the result backend, Flower and the logs.
    """
    try:
        if isinstance(spec, str):
            return RunSpec.model_validate_json(spec)
        return RunSpec.model_validate(spec)
    except ValidationError as exc:
        raise SpecError(f"invalid RunSpec: {problems(exc, root='payload')}") from None


@app.task(bind=True, name=names.TASK_PLAN, acks_late=True, max_retries=None)
def plan(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """Split the input once, then send the shards' chains in batches (``send_shards``).

    The plan's lease (subject ``plan``) is handed on to the first batch, each batch's to the
    next one, and the last batch expects the merge: a batch lost on its way is sent again
    by the deadline check from where it was.
    """
    sender = new_task_id()
    with watched(self, run_id, output_uri, PLAN, "plan", 0) as watch:

        def body(ctx: RunContext) -> dict[str, Any]:
            try:
                record = plan_run(ctx)
            except InputError as exc:
                summary = fail_run(ctx, str(exc))
                return {"run_id": run_id, "state": summary.state, "error": str(exc)}
            watch.hand_on("send", 0, message_ticket(sender))
            send_shards_step(run_id, output_uri, 0).apply_async(task_id=sender)
            return {"run_id": run_id, "shards": len(record.shards), "lines": record.lines}

        result = run_stage(self, run_id, output_uri, body, watch=watch)
        watch.finish()  # a run that failed at its input; after a hand-on this does nothing
        return result


@app.task(bind=True, name=names.TASK_SEND_SHARDS, acks_late=True, max_retries=None)
def send_shards(
    self: Task, run_id: str, output_uri: str, first: int = 0, failures: int = 0
) -> dict[str, Any]:
    """Send one batch of shard chains, then the next batch, or the merge after the last.

    Each shard of the batch without a lease yet gets one that expects its chain, so a chain
    lost on its way is restarted by the deadline check.
    """
    following_id = new_task_id()
    with watched(self, run_id, output_uri, PLAN, "send", first) as watch:

        def body(ctx: RunContext) -> dict[str, Any]:
            record = ctx.store.plan()
            if record is None:
                raise RunError(f"run {run_id} has no plan; nothing to send")
            shards = [shard.index for shard in record.shards]
            index, now = DeadlineIndex(app.coordination), utcnow()
            batch = shards[first:first + SHARD_BATCH]
            for shard in batch:
                if read_lease(ctx.storage, shard_subject(shard)) is None:
                    expect(ctx.storage, index, app.settings, run_id=run_id,
                           output_uri=output_uri, subject=shard_subject(shard),
                           step="upload", attempt=1, ticket=None, due=now)
            if first + len(batch) < len(shards):
                watch.hand_on("send", first + len(batch), message_ticket(following_id))
            else:
                watch.finish()
                look = MERGE_FIRST_LOOK_SECONDS if shards else 0.0
                expect(ctx.storage, index, app.settings, run_id=run_id,
                       output_uri=output_uri, subject=MERGE, step="merge", attempt=0,
                       ticket=message_ticket(following_id),
                       due=now + timedelta(seconds=look))
            sent = send_shard_batch(run_id, output_uri, shards, first=first,
                                    next_id=following_id)
            return {"run_id": run_id, "first": first, "sent": sent}

        return run_stage(self, run_id, output_uri, body, watch=watch)


@app.task(bind=True, name=names.TASK_MERGE, acks_late=True, max_retries=None)
def merge(
    self: Task, run_id: str, output_uri: str, failures: int = 0, checked: int = 0
) -> dict[str, Any]:
    """Sent after the last shard batch: waits until every shard is final in storage (looking
    on from the ``checked`` shards an earlier look found final), then merges. A duplicate,
    or one sent again by the reconciler, only looks once more."""

    def body(ctx: RunContext) -> dict[str, Any]:
        summary = merge_run(ctx, checked=checked)
        return {"run_id": run_id, "state": summary.state, "counts": summary.counts.model_dump()}

    with watched(self, run_id, output_uri, MERGE, "merge", 0) as watch:
        result = run_stage(self, run_id, output_uri, body, watch=watch)
        watch.finish()
        return result


@app.task(bind=True, name=names.TASK_CANCEL, acks_late=True, max_retries=None)
def cancel(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """Mark the run cancelled and cancel its live provider jobs; the merge still runs."""

    def body(ctx: RunContext) -> dict[str, Any]:
        return cancel_run(ctx)

    return run_stage(self, run_id, output_uri, body)
