"""The one place where httpx failures and provider error bodies become Shardline errors.

The provider's envelope ``{"error": {"code", "message", "status", "details"}}`` is kept
verbatim on the raised :class:`~shared.errors.ProviderError`. The class is chosen from the
HTTP status (and, for auth, from the envelope):

=========================================  =================================
400 ``API_KEY_*`` reason, 401, 403,         :class:`AuthError`
``PERMISSION_DENIED``/``UNAUTHENTICATED``
403 "... or it may not exist", 404          :class:`NotFoundError`
429                                         :class:`RateLimitError` (``retry_delay``)
other 4xx                                   :class:`ProviderClientError`
5xx, an unreadable success body             :class:`ProviderServerError`
connect/read/write/timeout/protocol error   :class:`ProviderConnectionError`
=========================================  =================================

The real API answers a foreign or expired file with 403 "You do not have permission to
access the File … or it may not exist"; that is read as not-found, which is what a caller
acting on it (delete, get) needs to know.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from shared.errors import (
    AuthError,
    NotFoundError,
    ProviderClientError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimitError,
)

API_KEY_HEADER = "x-goog-api-key"
REDACTED = "[redacted]"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_IN = re.compile(r"retry in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_MAX_TEXT = 2000

def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


def scrub_request(request: httpx.Request | None) -> None:
    """Blank the API key on a request an exception keeps a reference to.

    httpx only masks ``Authorization`` in ``Headers.__repr__``; a traceback inspector or a
    ``repr(exc.request.headers)`` would otherwise print the key.
    """
    if request is not None and API_KEY_HEADER in request.headers:
        request.headers[API_KEY_HEADER] = REDACTED


def parse_duration(value: object) -> float | None:
    """A proto ``Duration`` in JSON (``"47s"``, ``"1.5s"``) or object form, in seconds."""
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            if text.endswith("ms"):
                return float(text[:-2]) / 1000.0
            return float(text.removesuffix("s"))
        except ValueError:
            return None
    if isinstance(value, Mapping):
        try:
            return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def parse_retry_after(value: str, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header: delta seconds or an HTTP date (relative to ``now``)."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_delay_of(
    details: list[Any], message: str, headers: httpx.Headers, *, now: float | None = None
) -> float | None:
    """The server's requested wait: RetryInfo, else Retry-After, else "Please retry in Ns"."""
    for detail in details:
        if isinstance(detail, Mapping) and detail.get("@type") == _RETRY_INFO:
            delay = parse_duration(detail.get("retryDelay", detail.get("retry_delay")))
            if delay is not None:
                return delay
    header = headers.get("retry-after")
    if header:
        delay = parse_retry_after(header, now=now)
        if delay is not None:
            return delay
    match = _RETRY_IN.search(message)
    if match:
        amount = float(match.group(1))
        return amount / 1000.0 if match.group(2).lower() == "ms" else amount
    return None


def _is_key_problem(code: int, status: str | None, details: list[Any]) -> bool:
    if code == 401 or status in {"PERMISSION_DENIED", "UNAUTHENTICATED"}:
        return True
    for detail in details:
        if (
            isinstance(detail, Mapping)
            and detail.get("@type") == _ERROR_INFO
            and str(detail.get("reason", "")).startswith("API_KEY_")
        ):
            return True
    return False


def _envelope(response: httpx.Response) -> tuple[int, str | None, str, list[Any]] | None:
    """``(code, status, message, details)`` from a JSON error envelope, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None
    code = error.get("code")
    details = error.get("details")
    return (
        code if isinstance(code, int) else response.status_code,
        str(error["status"]) if error.get("status") is not None else None,
        str(error.get("message", "")),
        list(details) if isinstance(details, list) else [],
    )


def error_from_response(response: httpx.Response, *, secret: str | None = None) -> ProviderError:
    """Map an error answer (its body already read) to the error tree."""
    http_status = response.status_code
    parsed = _envelope(response)
    if parsed is None:
        text = response.text.strip()[:_MAX_TEXT]
        details: list[Any] = []
        code, status, message = http_status, response.reason_phrase or None, text
    else:
        code, status, message, details = parsed
    message = _redact(message or (response.reason_phrase or "error"), secret)
    kwargs: dict[str, Any] = {"code": code, "status": status, "details": details}

    if http_status == 429:
        delay = retry_delay_of(details, message, response.headers)
        return RateLimitError(message, retry_delay=delay, **kwargs)
    if http_status == 404 or (http_status == 403 and "may not exist" in message):
        return NotFoundError(message, **kwargs)
    if http_status in {400, 401, 403} and _is_key_problem(http_status, status, details):
        return AuthError(message, **kwargs)
    if 400 <= http_status < 500:
        return ProviderClientError(message, **kwargs)
    return ProviderServerError(message, **kwargs)


def error_from_exception(exc: httpx.HTTPError) -> ProviderError:
    """Map an httpx exception (no answer, or an unreadable one) to the error tree."""
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:  # raised outside a request (e.g. a bad URL)
        request = None
    scrub_request(request)
    where = f" ({request.method} {request.url.copy_with(query=None)})" if request else ""
    text = f"{type(exc).__name__}: {exc}{where}"
    if isinstance(exc, httpx.TransportError):
        return ProviderConnectionError(text)
    return ProviderServerError(text)


def malformed(response: httpx.Response, problem: object) -> ProviderServerError:
    """A success answer we cannot read: the provider broke its contract."""
    return ProviderServerError(
        f"unreadable answer to {response.request.method} "
        f"{response.request.url.copy_with(query=None)}: {problem}",
        code=response.status_code,
    )
