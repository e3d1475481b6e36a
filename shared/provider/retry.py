"""When a provider's HTTP client retries a failed call, and how long it waits: policy and rule.

The client sleeps only for short waits. A wait longer than ``max_sleep_seconds`` (typically
a 429 whose RetryInfo asks for most of a minute) is not slept: the error is raised with its
``retry_delay`` so a Celery task can re-schedule itself with that countdown instead of
holding a worker.
"""

from __future__ import annotations

import random

import httpx
from pydantic import BaseModel, ConfigDict, Field

from shared.backoff import backoff_delay
from shared.errors import ProviderConnectionError, ProviderError, RateLimitError

#: Transport failures that happen before a byte of the request left this machine, so even a
#: non-idempotent call may be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Transport failures worth retrying (the rest, such as an unsupported URL scheme, are bugs).
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def was_not_sent(error: BaseException) -> bool:
    """True if the failed request provably never reached the server."""
    return isinstance(error.__cause__, _NOT_SENT)


def is_transient(error: ProviderError) -> bool:
    """True for failures that another attempt may cure (429, 5xx, transient transport)."""
    if isinstance(error, ProviderConnectionError):
        cause = error.__cause__
        return cause is None or isinstance(cause, _TRANSIENT)
    return error.retryable


class RetryPolicy(BaseModel):
    """How often and how long the client retries transient failures in-process."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=5, ge=1, description="Total tries, the first included.")
    base: float = Field(default=1.0, ge=0, description="First backoff, seconds.")
    factor: float = Field(default=2.0, ge=1)
    cap: float = Field(default=30.0, ge=0, description="Longest backoff, seconds.")
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_sleep_seconds: float = Field(
        default=30.0, ge=0, description="A longer wait is raised to the caller, not slept."
    )


def retry_wait(
    error: ProviderError,
    *,
    attempt: int,
    policy: RetryPolicy,
    idempotent: bool,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before trying again after ``error`` on try ``attempt`` (1-based), or
    None to raise it.

    A non-idempotent call (batch create) is retried only where the failure proves nothing
    was created: a 429 (rejected by quota before any work) or a connection that was never
    established. After a 5xx or a connection lost mid-request the job may exist, so the
    caller must look it up before creating again.
    """
    if attempt >= policy.max_attempts or not is_transient(error):
        return None
    if not idempotent and not (isinstance(error, RateLimitError) or was_not_sent(error)):
        return None
    return bounded_wait(error, step=attempt - 1, policy=policy, rng=rng)


def bounded_wait(
    error: ProviderError, *, step: int, policy: RetryPolicy, rng: random.Random | None = None
) -> float | None:
    """Backoff for ``step`` (0-based), at least the server's ``retry_delay``; None when that is
    longer than the policy lets the client sleep."""
    wait = backoff_delay(
        step,
        base=policy.base,
        factor=policy.factor,
        cap=policy.cap,
        jitter=policy.jitter,
        rng=rng,
    )
    if error.retry_delay is not None:
        # The server's wait is a floor; our backoff counts only when it is longer.
        wait = max(wait, error.retry_delay)
    if wait > policy.max_sleep_seconds:
        return None
    return wait
