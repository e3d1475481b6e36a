"""``AnthropicClient``: raw httpx against the Message Batches API.

The key goes only into the ``x-api-key`` header (blanked on any request an exception keeps);
``anthropic-version`` is sent on every call. Errors: the envelope ``{"type":"error","error":
{"type","message"}}`` is kept (``code`` the HTTP status, ``status`` the error type); 429 waits
``retry-after``; 5xx and 529 (overloaded) are retried. Creating a batch is not idempotent and
is retried only when nothing can have been made (a 429, a connection never opened).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from shared.errors import (
    AuthError,
    NotFoundError,
    ProviderClientError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)
from shared.provider.gemini._errors import parse_retry_after
from shared.provider.retry import RetryPolicy, retry_wait
from shared.settings import Settings

log = logging.getLogger("shardline.provider")

USER_AGENT = "shardline/0.1 (raw httpx)"
KEY_HEADER = "x-api-key"
_MAX_TEXT = 2000
_PAGE = 100
_DOWNLOAD_CHUNK = 1024 * 1024


def error_from_response(response: httpx.Response) -> ProviderError:
    http_status = response.status_code
    message = response.text.strip()[:_MAX_TEXT] or (response.reason_phrase or "error")
    status: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        status = str(error["type"]) if error.get("type") is not None else None
    if http_status == 429:
        header = response.headers.get("retry-after")
        delay = parse_retry_after(header) if header else None
        return RateLimitError(message, code=429, status=status, retry_delay=delay)
    if http_status == 404:
        return NotFoundError(message, code=404, status=status)
    if http_status in {401, 403}:
        return AuthError(message, code=http_status, status=status)
    if 400 <= http_status < 500:
        return ProviderClientError(message, code=http_status, status=status)
    return ProviderServerError(message, code=http_status, status=status)


def error_from_exception(exc: httpx.HTTPError) -> ProviderError:
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:
        request = None
    if request is not None and KEY_HEADER in request.headers:
        request.headers[KEY_HEADER] = "[redacted]"
    where = f" ({request.method} {request.url.copy_with(query=None)})" if request else ""
    text = f"{type(exc).__name__}: {exc}{where}"
    if isinstance(exc, httpx.TransportError):
        return ProviderConnectionError(text)
    return ProviderServerError(text)


class AnthropicClient:
    """Message Batches calls over one ``httpx.Client`` (base URL without ``/v1``)."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        api_key: SecretStr,
        version: str = "2023-06-01",
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self.version = version
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng

    def __repr__(self) -> str:
        return f"AnthropicClient(base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        content: Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        all_headers = {KEY_HEADER: self._api_key.get_secret_value(),
                       "anthropic-version": self.version}
        all_headers.update(headers or {})
        return self._http.build_request(
            method, f"v1/messages/batches{path}", params=params, content=content,
            headers=all_headers,
        )

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            response = self._http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        if response.is_success:
            return response
        try:
            response.read()
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
        finally:
            response.close()
        raise error_from_response(response)

    def _call(
        self, build: Callable[[], httpx.Request], *, idempotent: bool = True, stream: bool = False
    ) -> httpx.Response:
        attempt = 1
        while True:
            request = build()
            try:
                return self._send(request, stream=stream)
            except ProviderError as error:
                wait = retry_wait(error, attempt=attempt, policy=self.retry,
                                  idempotent=idempotent, rng=self._rng)
                if wait is None:
                    raise
                log.warning("%s %s failed (%s), retry %d/%d in %.2fs", request.method,
                            request.url.path, error, attempt, self.retry.max_attempts - 1, wait)
                self._sleep(wait)
            attempt += 1

    def _json(self, method: str, path: str = "", *, params: Mapping[str, str | int] | None = None,
              content: Callable[[], Iterable[bytes]] | None = None,
              headers: Mapping[str, str] | None = None, idempotent: bool = True) -> dict[str, Any]:
        response = self._call(
            lambda: self._request(method, path, params=params,
                                  content=content() if content else None, headers=headers),
            idempotent=idempotent,
        )
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderServerError(f"unreadable answer to {method} batches{path}") from exc
        if not isinstance(data, dict):
            raise ProviderServerError(f"unreadable answer to {method} batches{path}")
        return data

    def create_batch(self, body: Callable[[], Iterator[bytes]], size: int) -> dict[str, Any]:
        """``POST /v1/messages/batches`` with the JSON body streamed from ``body()`` (called
        again for a retry); never retried after an ambiguous failure."""
        headers = {"content-type": "application/json", "content-length": str(size)}
        return self._json("POST", content=body, headers=headers, idempotent=False)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/{_ident(batch_id)}")

    def list_batches(self) -> Iterator[dict[str, Any]]:
        query: dict[str, str | int] = {"limit": _PAGE}
        while True:
            page = self._json("GET", params=query)
            items = [item for item in page.get("data") or [] if isinstance(item, dict)]
            yield from items
            if not page.get("has_more") or not items:
                return
            query["after_id"] = str(page.get("last_id") or items[-1]["id"])

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"/{_ident(batch_id)}/cancel")

    def delete_batch(self, batch_id: str) -> None:
        self._json("DELETE", f"/{_ident(batch_id)}")

    @contextmanager
    def results(self, batch_id: str) -> Iterator[Iterator[bytes]]:
        """Stream a batch's results (JSONL)."""
        response = self._call(
            lambda: self._request("GET", f"/{_ident(batch_id)}/results"), stream=True
        )
        try:
            yield _chunks(response)
        finally:
            response.close()


def _ident(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a batch id: {name!r}")
    return name


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(_DOWNLOAD_CHUNK)
    except httpx.HTTPError as exc:
        raise error_from_exception(exc) from exc


def build_anthropic_client(
    settings: Settings, api_key: SecretStr, *, retry: RetryPolicy | None = None
) -> AnthropicClient:
    total = settings.http_timeout_seconds
    http = httpx.Client(
        base_url=settings.anthropic_base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(total, connect=min(10.0, total)),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
    )
    policy = retry or RetryPolicy(max_attempts=settings.http_max_retries + 1)
    return AnthropicClient(http, api_key=api_key, version=settings.anthropic_version,
                           retry=policy)
