"""The per-shard chain: upload → create → poll → collect (see ``workers.canvas``)."""

from __future__ import annotations

from typing import Any

from celery import Task

from shared import names
from shared.backoff import poll_countdown
from shared.pipeline.collect import abandon_attempt, collect_attempt
from shared.pipeline.context import RunContext
from shared.pipeline.create import create_attempt
from shared.pipeline.poll import poll_attempt
from shared.pipeline.upload import upload_attempt
from workers.app import app
from workers.canvas import shard_chain
from workers.tasks._stage import retry, run_stage

SHARD_TASK = {"bind": True, "acks_late": True, "max_retries": None}


def _give_up(shard: int, attempt: int) -> Any:
    def handler(ctx: RunContext, exc: BaseException) -> dict[str, Any]:
        outcome = abandon_attempt(ctx, shard, attempt, exc)
        return {"shard": shard, "state": outcome.state}

    return handler


@app.task(name=names.TASK_UPLOAD, **SHARD_TASK)
def upload(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> None:
    """Resumable upload of each part of the attempt, streamed from the run's storage."""

    def body(ctx: RunContext) -> None:
        if not ctx.store.shard_is_final(shard):
            upload_attempt(ctx, shard, attempt)

    run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt))


@app.task(name=names.TASK_CREATE, **SHARD_TASK)
def create(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> None:
    """One batch job per part, at most once (recorded intent + look-up by display name)."""

    def body(ctx: RunContext) -> None:
        if not ctx.store.shard_is_final(shard):
            create_attempt(ctx, shard, attempt)

    run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt))


@app.task(name=names.TASK_POLL, **SHARD_TASK)
def poll(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> None:
    """Look at the jobs once; while any is live, come back after a growing countdown."""
    settings = app.settings

    def body(ctx: RunContext) -> bool:
        return ctx.store.shard_is_final(shard) or poll_attempt(ctx, shard, attempt)

    done = run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt))
    if not done:
        countdown = poll_countdown(
            self.request.retries,
            initial=settings.poll_initial_seconds,
            maximum=settings.poll_max_seconds,
            factor=settings.poll_backoff_factor,
            jitter=settings.poll_jitter,
        )
        raise retry(self, countdown, failures=0)


@app.task(name=names.TASK_COLLECT, **SHARD_TASK)
def collect(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> Any:
    """Stream the results into storage; then a next attempt, or the shard's final outcome."""

    def body(ctx: RunContext) -> dict[str, Any]:
        step = collect_attempt(ctx, shard, attempt)
        return step.model_dump(mode="json")

    step = run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt))
    next_attempt = step.get("next_attempt")
    if next_attempt:
        return self.replace(shard_chain(run_id, output_uri, shard, next_attempt))
    return step
