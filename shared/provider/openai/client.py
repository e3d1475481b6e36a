"""``OpenAIClient``: raw httpx against an OpenAI-style Files + Batch API.

The same seam as Gemini's client: it is handed an ``httpx.Client`` that carries the base URL
(``SHARDLINE_OPENAI_BASE_URL``, e.g. ``https://api.openai.com/v1`` or an Azure OpenAI
``.../openai/v1``), so the real API and the emulator differ only in that object. The key
goes only into the ``Authorization`` header (httpx masks it in reprs), never into a URL, a
log record or an error message.

Retries follow :mod:`shared.provider.retry`: 429 (waiting at least the ``Retry-After`` /
``retry-after-ms`` hint), 5xx and connection failures. Two calls are not idempotent and are
retried only when nothing can have been made (a 429, a connection never opened): creating a
batch, and uploading a file (there is no resumable upload: a failed upload is sent again
from its first byte, after looking for a file the lost answer may have made).

Errors: the envelope ``{"error": {"message", "type", "param", "code"}}`` is kept on the raised
:class:`~shared.errors.ProviderError`: ``code`` is the HTTP status, ``status`` the provider's
error code (or type), ``message`` its message.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
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
_MAX_TEXT = 2000
_PAGE = 100
_DOWNLOAD_CHUNK = 1024 * 1024


def error_from_response(response: httpx.Response) -> ProviderError:
    """Map an error answer (its body already read) to the error tree."""
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
        named = error.get("code") or error.get("type")
        status = str(named) if named is not None else None
    if http_status == 429:
        delay = None
        millis = response.headers.get("retry-after-ms")
        if millis:
            try:
                delay = max(0.0, float(millis) / 1000.0)
            except ValueError:
                delay = None
        if delay is None and response.headers.get("retry-after"):
            delay = parse_retry_after(response.headers["retry-after"])
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
    if request is not None and "authorization" in request.headers:
        request.headers["authorization"] = "[redacted]"
    where = f" ({request.method} {request.url.copy_with(query=None)})" if request else ""
    text = f"{type(exc).__name__}: {exc}{where}"
    if isinstance(exc, httpx.TransportError):
        return ProviderConnectionError(text)
    return ProviderServerError(text)


class OpenAIClient:
    """Files and Batch API calls over one ``httpx.Client`` (base URL ends in ``/v1``)."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        api_key: SecretStr,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng

    def __repr__(self) -> str:
        return f"OpenAIClient(base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    # ---- I/O -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        content: Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        all_headers = {"authorization": f"Bearer {self._api_key.get_secret_value()}"}
        all_headers.update(headers or {})
        return self._http.build_request(
            method, path.lstrip("/"), params=params, json=json, content=content,
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
                wait = retry_wait(
                    error, attempt=attempt, policy=self.retry, idempotent=idempotent,
                    rng=self._rng,
                )
                if wait is None:
                    raise
                log.warning(
                    "%s %s failed (%s), retry %d/%d in %.2fs", request.method,
                    request.url.path, error, attempt, self.retry.max_attempts - 1, wait,
                )
                self._sleep(wait)
            attempt += 1

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        response = self._call(
            lambda: self._request(method, path, params=params, json=body), idempotent=idempotent
        )
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderServerError(f"unreadable answer to {method} {path}: not JSON") from exc
        if not isinstance(data, dict):
            raise ProviderServerError(f"unreadable answer to {method} {path}: not an object")
        return data

    def _paged(self, path: str, params: Mapping[str, str | int]) -> Iterator[dict[str, Any]]:
        """Items of a cursor-paged list (``data``, ``has_more``, ``last_id``/``after``)."""
        query: dict[str, str | int] = dict(params)
        while True:
            page = self._json("GET", path, params=query)
            items = [item for item in page.get("data") or [] if isinstance(item, dict)]
            yield from items
            if not page.get("has_more") or not items:
                return
            query["after"] = str(page.get("last_id") or items[-1]["id"])

    # ---- files ---------------------------------------------------------------------

    def upload_file(
        self, filename: str, body: Callable[[], Iterator[bytes]], size: int
    ) -> dict[str, Any]:
        """``POST /files`` (multipart, purpose ``batch``) with the file's bytes streamed
        from ``body()`` (called again for a retry: it must yield the same ``size`` bytes)."""
        boundary = f"shardline-{uuid.uuid4().hex}"
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="purpose"\r\n\r\n'
            f"batch\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def stream() -> Iterator[bytes]:
            yield head
            yield from body()
            yield tail

        headers = {
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head) + size + len(tail)),
        }
        response = self._call(
            lambda: self._request("POST", "files", content=stream(), headers=headers),
            idempotent=False,
        )
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ProviderServerError("unreadable answer to POST files: no file id")
        return data

    def list_files(self, purpose: str | None = None) -> Iterator[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": 10_000}
        if purpose is not None:
            params["purpose"] = purpose
        return self._paged("files", params)

    def delete_file(self, file_id: str) -> None:
        self._json("DELETE", f"files/{_ident(file_id)}")

    @contextmanager
    def download(self, file_id: str) -> Iterator[Iterator[bytes]]:
        """Stream a file's bytes (``GET /files/{id}/content``)."""
        response = self._call(
            lambda: self._request("GET", f"files/{_ident(file_id)}/content"), stream=True
        )
        try:
            yield _chunks(response)
        finally:
            response.close()

    # ---- batches -------------------------------------------------------------------

    def create_batch(
        self, *, input_file_id: str, endpoint: str, completion_window: str,
        metadata: Mapping[str, str],
    ) -> dict[str, Any]:
        """``POST /batches``; never retried after an ambiguous failure."""
        body = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
            "metadata": dict(metadata),
        }
        return self._json("POST", "batches", body=body, idempotent=False)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"batches/{_ident(batch_id)}")

    def list_batches(self) -> Iterator[dict[str, Any]]:
        return self._paged("batches", {"limit": _PAGE})

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"batches/{_ident(batch_id)}/cancel")


def _ident(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"not a provider id: {name!r}")
    return name


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(_DOWNLOAD_CHUNK)
    except httpx.HTTPError as exc:
        raise error_from_exception(exc) from exc


def build_openai_client(
    settings: Settings, api_key: SecretStr, *, retry: RetryPolicy | None = None
) -> OpenAIClient:
    """A client for ``api_key`` on ``settings.openai_base_url``."""
    total = settings.http_timeout_seconds
    http = httpx.Client(
        base_url=settings.openai_base_url.rstrip("/") + "/",
        timeout=httpx.Timeout(total, connect=min(10.0, total)),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
    )
    policy = retry or RetryPolicy(max_attempts=settings.http_max_retries + 1)
    return OpenAIClient(http, api_key=api_key, retry=policy)
