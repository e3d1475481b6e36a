"""The retry rule (shared/provider/retry.py): what is retried, for how long, and create's limits."""

from __future__ import annotations

import random

import httpx
import pytest

from shared.errors import (
    AuthError,
    NotFoundError,
    ProviderClientError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)
from shared.provider.retry import RetryPolicy, retry_wait

POLICY = RetryPolicy(
    max_attempts=4, base=1.0, factor=2.0, cap=8.0, jitter=0.0, max_sleep_seconds=30.0
)


def connection_error(cause: Exception) -> ProviderConnectionError:
    try:
        raise ProviderConnectionError("x") from cause
    except ProviderConnectionError as error:
        return error


def wait(error: ProviderError, attempt: int = 1, *, idempotent: bool = True) -> float | None:
    return retry_wait(
        error, attempt=attempt, policy=POLICY, idempotent=idempotent, rng=random.Random(0)
    )


def test_server_errors_back_off_exponentially_until_attempts_run_out():
    error = ProviderServerError("x", code=503)
    assert [wait(error, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, None]


@pytest.mark.parametrize(
    "error", [ProviderClientError("x", code=400), AuthError("x"), NotFoundError("x")]
)
def test_client_errors_are_final(error):
    assert wait(error) is None


def test_rate_limit_waits_at_least_the_server_delay():
    assert wait(RateLimitError("x", retry_delay=5.0)) == 5.0
    assert wait(RateLimitError("x", retry_delay=0.2), attempt=3) == 4.0
    assert wait(RateLimitError("x")) == 1.0


def test_a_wait_longer_than_max_sleep_is_raised_instead():
    assert wait(RateLimitError("x", retry_delay=47.0)) is None


def test_create_is_not_retried_after_an_ambiguous_failure():
    assert wait(ProviderServerError("x", code=500), idempotent=False) is None
    request = httpx.Request("POST", "http://h/")
    assert wait(connection_error(httpx.ReadTimeout("t", request=request)), idempotent=False) is None
    assert (
        wait(connection_error(httpx.RemoteProtocolError("t", request=request)), idempotent=False)
        is None
    )


def test_create_is_retried_when_nothing_can_have_been_created():
    request = httpx.Request("POST", "http://h/")
    assert wait(RateLimitError("x", retry_delay=2.0), idempotent=False) == 2.0
    assert (
        wait(connection_error(httpx.ConnectError("refused", request=request)), idempotent=False)
        == 1.0
    )
    assert (
        wait(connection_error(httpx.PoolTimeout("pool", request=request)), idempotent=False) == 1.0
    )


def test_non_transient_transport_error_is_final():
    request = httpx.Request("POST", "http://h/")
    assert wait(connection_error(httpx.UnsupportedProtocol("ftp", request=request))) is None
