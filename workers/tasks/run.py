"""Run-level tasks: ``shardline.start_run`` (the public contract), plan, merge, cancel."""

from __future__ import annotations

from typing import Any

from celery import Task
from pydantic import ValidationError

from shared import names
from shared.errors import InputError, SpecError
from shared.liveness import MERGE, PLAN, expect, read_lease, shard_subject
from shared.liveness.index import DeadlineIndex
from shared.pipeline.cancel import cancel_run
from shared.pipeline.context import RunContext
from shared.pipeline.merge import fail_run, merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.run.records import utcnow
from shared.run.spec import RunSpec
from workers.app import app
from workers.canvas import run_canvas
from workers.launch import launch_run
from workers.tasks._stage import run_stage, watched


@app.task(bind=True, name=names.TASK_START_RUN, acks_late=True)
def start_run(self: Task, spec: dict[str, Any] | str) -> dict[str, Any]:
    """Start a run from a ``RunSpec`` (JSON object or string); answers ``{"run_id", ...}``.

    The stable contract for other services: ``send_task("shardline.start_run", [spec])``.
    The same idempotency key twice starts one run.
    """
    registered = register_run(app.settings, parse_spec(spec))
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
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise SpecError(f"invalid RunSpec: {problems}") from None


@app.task(bind=True, name=names.TASK_PLAN, acks_late=True, max_retries=None)
def plan(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """Split the input once, then launch the chord: one chain per shard, merge as callback.

    Before the chord is sent, every shard's lease records that its chain is on the way (and
    a run without shards expects its merge). A plan run again after that (its worker died
    after sending) does not send the chord twice: a chain that never arrived is overdue
    and restarted by the deadline check like any lost message.
    """

    def body(ctx: RunContext) -> dict[str, Any]:
        try:
            record = plan_run(ctx)
        except InputError as exc:
            summary = fail_run(ctx, str(exc))
            return {"run_id": run_id, "state": summary.state, "error": str(exc)}
        shards = [s.index for s in record.shards]
        subjects = [shard_subject(s) for s in shards] or [MERGE]
        if read_lease(ctx.storage, subjects[-1]) is None:  # written last
            index, now = DeadlineIndex(app.coordination), utcnow()
            for subject in subjects:
                expect(ctx.storage, index, app.settings, run_id=run_id, output_uri=output_uri,
                       subject=subject, step="merge" if subject == MERGE else "upload",
                       attempt=0 if subject == MERGE else 1, ticket=None, due=now)
            run_canvas(run_id, output_uri, shards).apply_async()
        return {"run_id": run_id, "shards": len(record.shards), "lines": record.lines}

    with watched(self, run_id, output_uri, PLAN, "plan", 0) as watch:
        result = run_stage(self, run_id, output_uri, body, watch=watch)
        watch.finish()
        return result


@app.task(bind=True, name=names.TASK_MERGE, acks_late=True, max_retries=None)
def merge(self: Task, run_id: str, output_uri: str, failures: int = 0) -> dict[str, Any]:
    """The chord callback: waits until every shard is final in storage, then merges.

    Storage, not the chord's count, decides when the run is complete, so a duplicated
    delivery that made the chord fire early only delays the merge.
    """

    def body(ctx: RunContext) -> dict[str, Any]:
        summary = merge_run(ctx)
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
