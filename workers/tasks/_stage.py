"""How a task runs a stage and decides whether to retry: the one place for that policy.

- ``RetryLater`` (a quota, a budget, a job still running) → countdown retry, unbounded.
- A 429 (``RateLimitError``: requests per minute, enqueued tokens, or the spend limit per
  project per 10 minutes) → countdown retry after the provider's delay (else backoff), and
  not counted as a failure: the provider asks us to wait, it did not fail. Unbounded, like
  any other wait; ``shardline cancel`` ends it.
- A transient provider error (5xx, connection) → countdown retry honouring the provider's
  delay, else exponential backoff; bounded by ``MAX_TRANSIENT_FAILURES`` in a row.
- Anything else, or transient errors past the bound → the stage's give-up handler, which
  records the failure as data (every line of the attempt becomes an error) so the shard
  still ends and the chord still fires. Without a handler the exception propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from celery import Task
from celery.exceptions import Ignore, Retry

from shared.backoff import backoff_delay
from shared.errors import ProviderError, RateLimitError, RetryLater
from shared.pipeline.context import RunContext, run_context
from workers.app import app

T = TypeVar("T")
log = logging.getLogger("shardline.tasks")

#: Consecutive transient failures of one step tolerated before giving up (with the backoff
#: below, about an hour of provider trouble).
MAX_TRANSIENT_FAILURES = 25
#: Consecutive unexpected errors (bugs, storage outages) tolerated before giving up.
MAX_UNEXPECTED_FAILURES = 5


def retry(task: Task, countdown: float, *, failures: int, exc: BaseException | None = None
          ) -> Retry:
    """Schedule the task again after ``countdown`` seconds (capped), carrying the count of
    consecutive failures in its ``failures`` keyword (0 after any progress).

    Waiting (a live job, a full quota) is not failing: only errors raise the count, so a
    job polled for a day still tolerates a passing 503.
    """
    cap = app.settings.countdown_cap_seconds
    kwargs = {**(task.request.kwargs or {}), "failures": failures}
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
    with run_context(settings, run_id, output_uri, redis=app.coordination) as ctx:
        try:
            return body(ctx)
        except (Retry, Ignore):
            raise
        except RetryLater as exc:
            log.info("%s %s: waiting: %s", task.name, run_id, exc)
            raise retry(task, exc.countdown, failures=0) from None
        except RateLimitError as exc:
            countdown = exc.retry_delay or backoff_delay(
                task.request.retries, base=2.0, factor=2.0, cap=300.0, jitter=0.2
            )
            log.info("%s %s: rate limited, waiting %.1fs: %s", task.name, run_id, countdown, exc)
            raise retry(task, countdown, failures=failures) from None
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
