"""How a task runs a stage and decides whether to retry: the one place for that policy.

- A message that killed its worker ``SHARDLINE_POISON_MAX_DELIVERIES`` times in a row is
  parked instead of run (:mod:`shared.poison`): recorded in the run, logged, and given up
  on — a shard's lines become errors, a plan or merge fails the run; the summary says why.
- ``RetryLater`` (a quota, a budget, a job still running) → countdown retry, unbounded; the
  count of consecutive failures is kept as it is (waiting is neither failing nor progress:
  a create that failed, then waits out its lease, then fails again has failed twice).
- ``InputError`` (a spec that cannot work, e.g. a model name the provider cannot take) →
  the give-up handler at once: retrying cannot help.
- A transient provider error (429, 5xx, connection) → countdown retry honouring the
  provider's delay, else exponential backoff; bounded by ``MAX_TRANSIENT_FAILURES`` in a row.
- Anything else, or transient errors past the bound → the stage's give-up handler, which
  records the failure as data (every line of the attempt becomes an error) so the shard
  still ends and the merge finds it final. Without a handler the exception propagates.

Before any of that, the task checks that its output is allowed and holds its run
(``RunContext.verify``): an ``AccessError`` fails the task at once, with nothing written
and no give-up handler run, since the run it names is not the output's to record into.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis
from celery import Task
from celery.exceptions import Ignore, Retry

from shared.backoff import backoff_delay
from shared.errors import AccessError, InputError, PoisonMessageError, ProviderError, RetryLater
from shared.pipeline.context import RunContext, run_context
from shared.pipeline.merge import fail_run
from shared.poison import Deliveries, poison_reason
from shared.run.records import ParkedMessage
from workers.app import app
from workers.logs import task_fields

T = TypeVar("T")
log = logging.getLogger("shardline.tasks")

#: Consecutive transient failures of one step tolerated before giving up (with the backoff
#: below, about an hour of provider trouble).
MAX_TRANSIENT_FAILURES = 25
#: Consecutive unexpected errors (bugs, storage outages) tolerated before giving up.
MAX_UNEXPECTED_FAILURES = 5


def retry(
    task: Task,
    countdown: float,
    *,
    failures: int,
    exc: BaseException | None = None,
    carry: dict[str, int] | None = None,
) -> Retry:
    """Schedule the task again after ``countdown`` seconds (capped), carrying the count of
    consecutive failures in its ``failures`` keyword (0 after progress, kept while waiting).

    Waiting (a live job, a full quota) is not failing: only errors raise the count, so a
    job polled for a day still tolerates a passing 503.
    """
    cap = app.settings.countdown_cap_seconds
    kwargs = {**(task.request.kwargs or {}), **(carry or {}), "failures": failures}
    return task.retry(
        countdown=min(countdown, cap), max_retries=None, exc=exc, kwargs=kwargs
    )


def run_stage(
    task: Task,
    run_id: str,
    output_uri: str,
    body: Callable[[RunContext], T],
    *,
    give_up: Callable[[RunContext, BaseException], T] | None = None,
) -> T:
    settings = app.settings
    failures: int = (task.request.kwargs or {}).get("failures", 0)
    deliveries = Deliveries(app.coordination, limit=settings.poison_max_deliveries)
    task_id: str | None = task.request.id
    started = _count_start(deliveries, task_id)
    try:
        with run_context(settings, run_id, output_uri, redis=app.coordination) as ctx:
            try:
                ctx.verify()
            except AccessError as exc:
                log.error("%s %s: refused: %s", task.name, run_id, exc)
                raise
            if started is not None and deliveries.is_poison(started):
                return _park(task, ctx, started - 1, give_up)
            return _attempt(task, ctx, body, give_up, failures)
    finally:
        _count_end(deliveries, task_id)


def _attempt(
    task: Task,
    ctx: RunContext,
    body: Callable[[RunContext], T],
    give_up: Callable[[RunContext, BaseException], T] | None,
    failures: int,
) -> T:
    run_id = ctx.run_id
    try:
        return body(ctx)
    except (Retry, Ignore):
        raise
    except RetryLater as exc:
        log.info("%s %s: waiting: %s", task.name, run_id, exc)
        raise retry(task, exc.countdown, failures=failures, carry=exc.carry) from None
    except AccessError as exc:  # not this output's run to record into: write nothing
        log.error("%s %s: refused: %s", task.name, run_id, exc)
        raise
    except InputError as exc:
        if give_up is None:
            raise
        log.error("%s %s: giving up, the run's spec cannot work: %s", task.name, run_id, exc)
        return give_up(ctx, exc)
    except ProviderError as exc:
        if exc.retryable and failures < MAX_TRANSIENT_FAILURES:
            countdown = exc.retry_delay or backoff_delay(
                failures, base=2.0, factor=2.0, cap=300.0, jitter=0.2
            )
            log.warning("%s %s: provider error, retry in %.1fs: %s",
                        task.name, run_id, countdown, exc)
            raise retry(task, countdown, failures=failures + 1, exc=exc) from None
        if give_up is None:
            raise
        log.error("%s %s: giving up after provider error: %s", task.name, run_id, exc)
        return give_up(ctx, exc)
    except Exception as exc:
        if failures < MAX_UNEXPECTED_FAILURES:
            countdown = backoff_delay(failures, base=5.0, factor=2.0, cap=300.0, jitter=0.2)
            log.exception("%s %s: unexpected error, retry in %.1fs", task.name, run_id,
                          countdown)
            raise retry(task, countdown, failures=failures + 1, exc=exc) from None
        if give_up is None:
            raise
        log.exception("%s %s: giving up after unexpected error", task.name, run_id)
        return give_up(ctx, exc)


def _count_start(deliveries: Deliveries, task_id: str | None) -> int | None:
    """This delivery counted; None when it cannot be (no id, Redis unreachable): the task
    then runs unguarded rather than not at all."""
    if task_id is None:
        return None
    try:
        return deliveries.begin(task_id)
    except redis.RedisError as exc:
        log.warning("cannot count the deliveries of task %s: %s", task_id, exc)
        return None


def _count_end(deliveries: Deliveries, task_id: str | None) -> None:
    if task_id is None:
        return
    try:
        deliveries.end(task_id)
    except redis.RedisError as exc:
        log.warning("cannot clear the delivery count of task %s: %s", task_id, exc)


def _park(
    task: Task,
    ctx: RunContext,
    deaths: int,
    give_up: Callable[[RunContext, BaseException], T] | None,
) -> T:
    """Do not run a poison message again: record it, say so, and give up on its work."""
    request = task.request
    fields = task_fields(task, request.id, request.args, request.kwargs)
    reason = poison_reason(str(task.name), deaths)
    ctx.store.park(ParkedMessage(
        task=str(task.name), task_id=str(request.id), shard=fields.shard,
        attempt=fields.attempt, deliveries=deaths, reason=reason,
    ))
    log.error("%s %s: %s", task.name, ctx.run_id, reason)
    if give_up is not None:
        return give_up(ctx, PoisonMessageError(reason))
    fail_run(ctx, reason)  # a plan or merge that cannot be done: the run ends here
    raise Ignore()
