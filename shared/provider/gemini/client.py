"""``GeminiClient``: raw httpx against the Gemini File + Batch REST API, and its factories.

The client sits on a seam: it is handed an ``httpx.Client`` that carries the base URL,
transport and timeouts, so the real API and the bundled emulator differ only in that object.

Retries (policy in :mod:`shared.provider.retry`): 429 (after the server's RetryInfo delay),
5xx and connection failures are retried with exponential backoff and jitter, up to
``RetryPolicy.max_attempts`` tries. A wait longer than ``RetryPolicy.max_sleep_seconds`` is not
slept: the error is raised with ``retry_delay`` so a Celery task re-schedules itself with a
countdown. ``create_batch`` is the exception: creating a job is not idempotent, so after a
5xx or a connection lost once the request was sent it is *never* retried here; only a 429 or
a connection that provably never opened (``ConnectError``, connect/pool timeout) is.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx
from pydantic import SecretStr

from shared.provider.gemini.batches import BatchesAPI
from shared.provider.gemini.files import FilesAPI
from shared.provider.retry import RetryPolicy
from shared.settings import Settings

USER_AGENT = "shardline/0.1 (raw httpx)"


class GeminiClient(FilesAPI, BatchesAPI):
    """Files and Batch API calls over one ``httpx.Client``.

    ``with GeminiClient(...) as client:`` closes the ``httpx.Client`` on exit.
    """

    def __enter__(self) -> GeminiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def build_http_client(settings: Settings) -> httpx.Client:
    """The ``httpx.Client`` for the provider: base URL, timeouts, pool limits, HTTP/1.1.

    The read timeout bounds the wait for each chunk of an answer, not a whole download;
    connecting gets at most 10 s so an unreachable host fails fast and is retried.
    """
    total = settings.http_timeout_seconds
    return httpx.Client(
        base_url=settings.api_base_url,
        verify=_tls_context(),
        timeout=httpx.Timeout(total, connect=min(10.0, total)),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        http1=True,
        http2=False,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
    )


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs), built once per process and shared.

    Building it loads the CA bundle: ~23 ms of CPU, which every ``httpx.Client`` would pay
    again, and a task builds a client per call (a poll of a live job cost ~25 ms of CPU, nearly
    all of it this; benchmarks/RESULTS.md, "Polling cost"). An ``SSLContext`` may be shared
    by threads; its settings are never changed after this.
    """
    return httpx.create_ssl_context()


def build_client(
    settings: Settings, api_key: SecretStr, *, retry: RetryPolicy | None = None
) -> GeminiClient:
    """A client for ``api_key`` built from settings (retries: ``http_max_retries``)."""
    policy = retry or RetryPolicy(max_attempts=settings.http_max_retries + 1)
    return GeminiClient(
        build_http_client(settings),
        api_key=api_key,
        api_version=settings.api_version,
        retry=policy,
    )
