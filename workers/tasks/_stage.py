"""How a task runs a stage and decides whether to retry: the one place for that policy.

- ``RetryLater`` (a quota, a budget, a job still running) → countdown retry, unbounded.
- A transient provider error (429, 5xx, connection) → countdown retry honouring the
  provider's delay, else exponential backoff; bounded by ``MAX_TRANSIENT_RETRIES``.
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
from shared.errors import ProviderError, RetryLater
from shared.pipeline.context import RunContext, run_context
from workers.app import app

T = TypeVar("T")
log = logging.getLogger("shardline.tasks")

#: Transient failures of one step tolerated before giving up (with the backoff below this is
#: about an hour of provider trouble).
MAX_TRANSIENT_RETRIES = 25
#: Unexpected errors (bugs, storage outages) tolerated before giving up.
MAX_UNEXPECTED_RETRIES = 5


def run_stage(
    task: Task,
    run_id: str,
    output_uri: str,
    body: Callable[[RunContext], T],
    *,
    give_up: Callable[[RunContext, BaseException], T] | None = None,
) -> T:
    settings = app.settings
    with run_context(settings, run_id, output_uri, redis=app.coordination) as ctx:
        retries: int = task.request.retries
        try:
            return body(ctx)
        except (Retry, Ignore):
            raise
        except RetryLater as exc:
            log.info("%s %s: waiting: %s", task.name, run_id, exc)
            raise task.retry(countdown=exc.countdown, max_retries=None, exc=exc) from None
        except ProviderError as exc:
            if exc.retryable and retries < MAX_TRANSIENT_RETRIES:
                countdown = exc.retry_delay or backoff_delay(
                    retries, base=2.0, factor=2.0, cap=300.0, jitter=0.2
                )
                log.warning("%s %s: provider error, retry in %.1fs: %s",
                            task.name, run_id, countdown, exc)
                raise task.retry(countdown=countdown, max_retries=None, exc=exc) from None
            if give_up is None:
                raise
            log.error("%s %s: giving up after provider error: %s", task.name, run_id, exc)
            return give_up(ctx, exc)
        except Exception as exc:
            if retries < MAX_UNEXPECTED_RETRIES:
                countdown = backoff_delay(
                    retries, base=5.0, factor=2.0, cap=300.0, jitter=0.2
                )
                log.exception("%s %s: unexpected error, retry in %.1fs", task.name, run_id,
                              countdown)
                raise task.retry(countdown=countdown, max_retries=None, exc=exc) from None
            if give_up is None:
                raise
            log.exception("%s %s: giving up after unexpected error", task.name, run_id)
            return give_up(ctx, exc)


