"""Google's error envelope: ``{"error": {"code", "message", "status", "details"}}``.

Every failure the emulator answers goes through :class:`ApiError`, so each one carries the
HTTP code, the canonical status name and, where the live API sends them, typed ``details``
(ErrorInfo for a bad key; QuotaFailure, Help and RetryInfo on a 429).
"""

from __future__ import annotations

import math
from typing import Any

_STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_DEFAULT_MESSAGE = {
    "INTERNAL": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "The request timed out. Please try again.",
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "NOT_FOUND": "Requested entity was not found.",
    "PERMISSION_DENIED": "The caller does not have permission.",
}

_TYPE = "type.googleapis.com/google.rpc."
SERVICE = "generativelanguage.googleapis.com"


def status_for_code(code: int) -> str:
    """The canonical status name Google pairs with an HTTP code."""
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    return "INTERNAL" if code >= 500 else "INVALID_ARGUMENT"


def default_message(status: str) -> str:
    return _DEFAULT_MESSAGE.get(status, status.replace("_", " ").capitalize() + ".")


class ApiError(Exception):
    """An answer in Google's error envelope; raised anywhere, rendered by the app."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.status = status or status_for_code(code)
        self.message = message or default_message(self.status)
        self.details = details or []
        self.headers = dict(headers or {})
        super().__init__(f"{code} {self.status}: {self.message}")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str = "Requested entity was not found.") -> ApiError:
    return ApiError(404, message)


def invalid_key() -> ApiError:
    """The live answer to a key that is not valid (400, ErrorInfo API_KEY_INVALID)."""
    message = "API key not valid. Please pass a valid API key."
    return ApiError(
        400,
        message,
        details=[
            {
                "@type": _TYPE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": SERVICE},
            },
            {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
        ],
    )


def missing_key() -> ApiError:
    """The live answer to a call without any key (403 PERMISSION_DENIED)."""
    return ApiError(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    )


def format_delay(seconds: float) -> str:
    """A ``google.protobuf.Duration`` string as RetryInfo carries it, e.g. ``"47s"``."""
    return f"{max(0, math.ceil(seconds))}s"


def quota_exhausted(
    message: str,
    *,
    retry_delay_seconds: float,
    quota_metric: str,
    quota_id: str,
    model: str | None = None,
    retry_after_header: bool = False,
) -> ApiError:
    """A 429 shaped like the live one: Help, QuotaFailure and RetryInfo details."""
    dimensions = {"location": "global"}
    if model:
        dimensions["model"] = model
    headers = {"Retry-After": str(math.ceil(retry_delay_seconds))} if retry_after_header else {}
    return ApiError(
        429,
        f"{message} Please retry in {retry_delay_seconds:.2f}s.",
        details=[
            {
                "@type": _TYPE + "Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": _TYPE + "QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": quota_metric,
                        "quotaId": quota_id,
                        "quotaDimensions": dimensions,
                    }
                ],
            },
            {"@type": _TYPE + "RetryInfo", "retryDelay": format_delay(retry_delay_seconds)},
        ],
        headers=headers,
    )
