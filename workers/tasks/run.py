"""Run-level tasks: ``shardline.start_run`` (the public contract), plan, merge, cancel."""

from __future__ import annotations

from typing import Any

import orjson
from celery import Task
from pydantic import ValidationError

from shared import names
from shared.errors import InputError, SpecError
from shared.pipeline.cancel import cancel_run
from shared.pipeline.context import RunContext
from shared.pipeline.merge import fail_run, merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.start import StartedRun
from shared.pipeline.start import start_run as start_run_stage
from shared.records import utcnow
from shared.spec import RunSpec
from shared.storage import open_storage
from workers.app import app
from workers.tasks._stage import run_stage


@app.task(bind=True, name=names.TASK_START_RUN, acks_late=True)
def start_run(self: Task, spec: dict[str, Any] | str) -> dict[str, Any]:
    """Start a run from a ``RunSpec`` (JSON object or string); answers ``{"run_id", ...}``.

    The stable contract for other services: ``send_task("shardline.start_run", [spec])``.
    The same idempotency key twice starts one run.
    """
    started = start_run_stage(app.settings, parse_spec(spec))
    launch(started)
    return started.model_dump(mode="json")


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
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise SpecError(f"invalid RunSpec: {problems}") from None


def enqueue_plan(run_id: str, output_uri: str) -> None:
    # Nobody waits on the plan's own result (progress is read from storage): not asking for
    # it keeps a sender, such as a cron job, from needing the result backend at all.
    plan.apply_async((run_id, output_uri), ignore_result=True)


def launch(started: StartedRun) -> bool:
    """Send the run's plan step unless an earlier call already did; True if sent now.

    A caller that claimed the run but failed to reach the broker leaves no ``launched``
    marker, so the next call with the same idempotency key sends it (the marker is written
    after the send: a crash in between can only mean a duplicate plan, which is harmless).
    """
    storage = open_storage(started.output_uri)
    if not started.created and storage.exists(names.LAUNCHED):
        return False
    enqueue_plan(started.run_id, started.output_uri)
    storage.create_if_absent(names.LAUNCHED, orjson.dumps({"at": utcnow().isoformat()}))
    return True


@app.task(bind=True, name=names.TASK_PLAN, acks_late=True, max_retries=None)
def plan(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """Split the input once, then launch the chord: one chain per shard, merge as callback."""
    from workers.canvas import run_canvas

    def body(ctx: RunContext) -> dict[str, Any]:
        try:
            record = plan_run(ctx)
        except InputError as exc:
            summary = fail_run(ctx, str(exc))
            return {"run_id": run_id, "state": summary.state, "error": str(exc)}
        run_canvas(run_id, output_uri, [s.index for s in record.shards]).apply_async()
        return {"run_id": run_id, "shards": len(record.shards), "lines": record.lines}

    return run_stage(self, run_id, output_uri, body)


@app.task(bind=True, name=names.TASK_MERGE, acks_late=True, max_retries=None)
def merge(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """The chord callback: waits until every shard is final in storage, then merges.

    Storage, not the chord's count, decides when the run is complete, so a duplicated
    delivery that made the chord fire early only delays the merge.
    """

    def body(ctx: RunContext) -> dict[str, Any]:
        summary = merge_run(ctx)
        return {"run_id": run_id, "state": summary.state, "counts": summary.counts.model_dump()}

    return run_stage(self, run_id, output_uri, body)


@app.task(bind=True, name=names.TASK_CANCEL, acks_late=True, max_retries=None)
def cancel(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """Mark the run cancelled and cancel its live provider jobs; the merge still runs."""

    def body(ctx: RunContext) -> dict[str, Any]:
        return cancel_run(ctx)

    return run_stage(self, run_id, output_uri, body)
