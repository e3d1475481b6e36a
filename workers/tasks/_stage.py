"""How a task runs a stage and decides whether to retry: the one place for that policy.

- ``RetryLater`` (a quota, a budget, a job still running) → countdown retry, unbounded.
- A transient provider error (429, 5xx, connection) → countdown retry honouring the
  provider's delay, else exponential backoff; bounded by ``MAX_TRANSIENT_FAILURES`` in a row.
- Anything else, or transient errors past the bound → the stage's give-up handler, which
  records the failure as data (every line of the attempt becomes an error) so the shard
  still ends and the chord still fires. Without a handler the exception propagates.

Liveness (:mod:`shared.liveness`): a task that moves a subject (the plan, a shard, the
merge) runs inside :func:`watched`, which takes the subject's lease first (or steps aside
with ``Ignore`` when another execution is alive), renews it while the task works, and
records what comes next: a countdown retry (:func:`retry`), the chain's next step, or
nothing. A task that dies leaves a lease that lapses; the deadline check restarts it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from celery import Task
from celery.exceptions import Ignore, Retry

from shared.backoff import backoff_delay
from shared.errors import ProviderError, RetryLater
from shared.liveness import DeadlineIndex, StepWatch, message_ticket
from shared.liveness.records import Step
from shared.pipeline.context import RunContext, run_context
from shared.storage import open_storage
from workers.app import app

T = TypeVar("T")
log = logging.getLogger("shardline.tasks")

#: Consecutive transient failures of one step tolerated before giving up (with the backoff
#: below, about an hour of provider trouble).
MAX_TRANSIENT_FAILURES = 25
#: Consecutive unexpected errors (bugs, storage outages) tolerated before giving up.
MAX_UNEXPECTED_FAILURES = 5


@contextmanager
def watched(task: Task, run_id: str, output_uri: str, subject: str, step: Step,
            attempt: int) -> Iterator[StepWatch]:
    """Hold the subject's lease for this execution (see the module docstring).

    The body says what comes next (``watch.hand_on``, ``watch.finish`` or :func:`retry`);
    a body that raises anything else leaves the lease to lapse.
    """
    request = task.request
    watch = StepWatch(
        open_storage(output_uri), DeadlineIndex(app.coordination), app.settings,
        run_id=run_id, output_uri=output_uri, subject=subject, step=step, attempt=attempt,
        ticket=message_ticket(request.id, request.retries or 0),
    )
    if not watch.begin():
        raise Ignore()  # another execution is alive: it carries the subject on
    watch.start_heartbeat()
    try:
        yield watch
    except (Retry, Ignore):
        raise  # a retry recorded its wait; a replace recorded its hand-on
    except BaseException:
        watch.abandon()
        raise
    finally:
        watch.stop_heartbeat()


def next_ticket(task: Task) -> str | None:
    """The ticket of the chain's next message (its task id is fixed when the chain is sent);
    None when the task is not in a chain."""
    rest = task.request.chain or []
    if not rest:
        return None
    options = rest[-1].get("options", {}) if isinstance(rest[-1], dict) else {}
    task_id = options.get("task_id")
    return message_ticket(task_id) if task_id else None


def retry(task: Task, countdown: float, *, failures: int, exc: BaseException | None = None,
          watch: StepWatch | None = None) -> Retry:
    """Schedule the task again after ``countdown`` seconds (capped), carrying the count of
    consecutive failures in its ``failures`` keyword (0 after any progress).

    Waiting (a live job, a full quota) is not failing: only errors raise the count, so a
    job polled for a day still tolerates a passing 503. With ``watch``, the retry is
    recorded first as the message the subject waits for, due at its countdown.
    """
    delay = min(countdown, app.settings.countdown_cap_seconds)
    if watch is not None:
        watch.wait(message_ticket(task.request.id, (task.request.retries or 0) + 1), delay)
    kwargs = {**(task.request.kwargs or {}), "failures": failures}
    return task.retry(countdown=delay, max_retries=None, exc=exc, kwargs=kwargs)


def run_stage(
    task: Task,
    run_id: str,
    output_uri: str,
    body: Callable[[RunContext], T],
    *,
    give_up: Callable[[RunContext, BaseException], T] | None = None,
    watch: StepWatch | None = None,
) -> T:
    settings = app.settings
    failures: int = (task.request.kwargs or {}).get("failures", 0)
    with run_context(settings, run_id, output_uri, redis=app.coordination) as ctx:
        try:
            return body(ctx)
        except (Retry, Ignore):
            raise
        except RetryLater as exc:
            log.info("%s %s: waiting: %s", task.name, run_id, exc)
            raise retry(task, exc.countdown, failures=0, watch=watch) from None
        except ProviderError as exc:
            if exc.retryable and failures < MAX_TRANSIENT_FAILURES:
                countdown = exc.retry_delay or backoff_delay(
                    failures, base=2.0, factor=2.0, cap=300.0, jitter=0.2
                )
                log.warning("%s %s: provider error, retry in %.1fs: %s",
                            task.name, run_id, countdown, exc)
                raise retry(task, countdown, failures=failures + 1, exc=exc,
                            watch=watch) from None
            if give_up is None:
                raise
            log.error("%s %s: giving up after provider error: %s", task.name, run_id, exc)
            return give_up(ctx, exc)
        except Exception as exc:
            if failures < MAX_UNEXPECTED_FAILURES:
                countdown = backoff_delay(failures, base=5.0, factor=2.0, cap=300.0, jitter=0.2)
                log.exception("%s %s: unexpected error, retry in %.1fs", task.name, run_id,
                              countdown)
                raise retry(task, countdown, failures=failures + 1, exc=exc,
                            watch=watch) from None
            if give_up is None:
                raise
            log.exception("%s %s: giving up after unexpected error", task.name, run_id)
            return give_up(ctx, exc)
