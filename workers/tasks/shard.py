"""The per-shard chain: upload → create → poll → collect (see ``workers.canvas``).

Each step holds the shard's lease while it runs (``watched``) and hands it on to the next
step, so the deadline check knows what the shard waits for at every moment.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from shared import names
from shared.backoff import poll_countdown
from shared.liveness import message_ticket, new_task_id, shard_subject
from shared.pipeline.collect import abandon_attempt, collect_attempt
from shared.pipeline.context import RunContext
from shared.pipeline.create import create_attempt
from shared.pipeline.poll import poll_attempt
from shared.pipeline.upload import upload_attempt
from workers.app import app
from workers.canvas import shard_chain
from workers.tasks._stage import next_ticket, retry, run_stage, watched

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

    with watched(self, run_id, output_uri, shard_subject(shard), "upload", attempt) as watch:
        run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt),
                  watch=watch)
        watch.hand_on("create", attempt, next_ticket(self))


@app.task(name=names.TASK_CREATE, **SHARD_TASK)
def create(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> None:
    """One batch job per part, at most once (recorded intent + look-up by display name)."""

    def body(ctx: RunContext) -> None:
        if not ctx.store.shard_is_final(shard):
            create_attempt(ctx, shard, attempt)

    with watched(self, run_id, output_uri, shard_subject(shard), "create", attempt) as watch:
        run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt),
                  watch=watch)
        watch.hand_on("poll", attempt, next_ticket(self))


@app.task(name=names.TASK_POLL, **SHARD_TASK)
def poll(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> None:
    """Look at the jobs once; while any is live, come back after a growing countdown."""
    settings = app.settings

    def body(ctx: RunContext) -> bool:
        return ctx.store.shard_is_final(shard) or poll_attempt(ctx, shard, attempt)

    with watched(self, run_id, output_uri, shard_subject(shard), "poll", attempt) as watch:
        done = run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt),
                         watch=watch)
        if not done:
            countdown = poll_countdown(
                self.request.retries,
                initial=settings.poll_initial_seconds,
                maximum=settings.poll_max_seconds,
                factor=settings.poll_backoff_factor,
                jitter=settings.poll_jitter,
            )
            raise retry(self, countdown, failures=0, watch=watch)
        watch.hand_on("collect", attempt, next_ticket(self))


@app.task(name=names.TASK_COLLECT, **SHARD_TASK)
def collect(
    self: Task, run_id: str, output_uri: str, shard: int, attempt: int, failures: int = 0
) -> Any:
    """Stream the results into storage; then a next attempt, or the shard's final outcome."""

    def body(ctx: RunContext) -> dict[str, Any]:
        step = collect_attempt(ctx, shard, attempt)
        return step.model_dump(mode="json")

    with watched(self, run_id, output_uri, shard_subject(shard), "collect", attempt) as watch:
        step = run_stage(self, run_id, output_uri, body, give_up=_give_up(shard, attempt),
                         watch=watch)
        next_attempt = step.get("next_attempt")
        if not next_attempt:
            watch.finish()
            return step
        chain = shard_chain(run_id, output_uri, shard, next_attempt)
        first = new_task_id()
        chain.tasks[0].set(task_id=first)
        watch.hand_on("upload", next_attempt, message_ticket(first))
        return self.replace(chain)
