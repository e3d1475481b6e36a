"""Run-level tasks: ``shardline.start_run`` (the public contract), plan, merge, cancel."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, states
from celery.exceptions import Ignore
from pydantic import ValidationError

from shared import names
from shared.errors import InputError, RunError, SpecError
from shared.pipeline.cancel import cancel_run
from shared.pipeline.context import RunContext
from shared.pipeline.merge import fail_run, merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.run.spec import RunSpec
from shared.validation import problems
from workers.app import app
from workers.canvas import send_shards as send_shard_batch
from workers.canvas import send_shards_step
from workers.launch import launch_run
from workers.tasks._stage import run_stage

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
    """Split the input once, then send the shards' chains in batches (``send_shards``)."""

    def body(ctx: RunContext) -> dict[str, Any]:
        try:
            record = plan_run(ctx)
        except InputError as exc:
            summary = fail_run(ctx, str(exc))
            return {"run_id": run_id, "state": summary.state, "error": str(exc)}
        send_shards_step(run_id, output_uri, 0).apply_async()
        return {"run_id": run_id, "shards": len(record.shards), "lines": record.lines}

    return run_stage(self, run_id, output_uri, body)


@app.task(bind=True, name=names.TASK_SEND_SHARDS, acks_late=True, max_retries=None)
def send_shards(
    self: Task, run_id: str, output_uri: str, first: int = 0, failures: int = 0
) -> dict[str, Any]:
    """Send one batch of shard chains, then the next batch, or the merge after the last."""

    def body(ctx: RunContext) -> dict[str, Any]:
        record = ctx.store.plan()
        if record is None:
            raise RunError(f"run {run_id} has no plan; nothing to send")
        shards = [shard.index for shard in record.shards]
        sent = send_shard_batch(run_id, output_uri, shards, first=first)
        return {"run_id": run_id, "first": first, "sent": sent}

    return run_stage(self, run_id, output_uri, body)


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

    return run_stage(self, run_id, output_uri, body)


@app.task(bind=True, name=names.TASK_CANCEL, acks_late=True, max_retries=None)
def cancel(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """Mark the run cancelled and cancel its live provider jobs; the merge still runs."""

    def body(ctx: RunContext) -> dict[str, Any]:
        return cancel_run(ctx)

    return run_stage(self, run_id, output_uri, body)
