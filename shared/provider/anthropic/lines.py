"""Our staged lines into a Message Batches create body, and its results back into ours.

Create body: ``{"requests":[{"custom_id":"N","params":{...request}}, ...]}``, written item by
item while it streams to the provider; the request is the provider's own Messages body, kept
byte for byte (a body without ``model`` gets the run's first).

Results (``{"custom_id","result":{"type",...}}``) become our output lines:

- ``succeeded``: ``{"key":"N","response":message}``, the message untouched;
- ``errored``: ``{"key":"N","error":{"code","status","message"}}`` with the provider's error
  type as ``status`` and its HTTP status as ``code`` (429 rate limit, 500 api error and 529
  overloaded are retried; 400 invalid request is final);
- ``canceled``: status ``CANCELLED`` (final); ``expired``: ``DEADLINE_EXCEEDED`` (retried).
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.errors import RunError
from shared.jsonl.records import STAGED_PREFIX

_REQUEST_FIELD = b'","request":'
#: The HTTP status the API answers each error type with.
ERROR_CODES: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def batch_item(staged: bytes, *, model: str | None) -> bytes:
    """One ``requests`` item (no separator) for one staged line, by slicing."""
    cut = staged.find(_REQUEST_FIELD)
    end = staged.rfind(b"}")
    if not staged.startswith(STAGED_PREFIX) or cut < 0 or end < cut:
        raise RunError(f"malformed staged line: {staged[:80]!r}")
    key = staged[len(STAGED_PREFIX) : cut]
    body = staged[cut + len(_REQUEST_FIELD) : end]
    if model is not None:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and "model" not in parsed:
            body = orjson.dumps({"model": model, **parsed})
    return b'{"custom_id":"%b","params":%b}' % (key, body)


def _line(key: Any, error: dict[str, Any]) -> bytes:
    return orjson.dumps({"key": key, "error": error}) + b"\n"


def translate_result_line(raw: bytes) -> bytes:
    """One results line in our output shape; an unreadable line passes on as a stray."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        line = None
    if not isinstance(line, dict):
        return raw if raw.endswith(b"\n") else raw + b"\n"
    key = line.get("custom_id")
    result = line.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded" and isinstance(result, dict) and isinstance(result.get("message"), dict):
        return orjson.dumps({"key": key, "response": result["message"]}) + b"\n"
    if kind == "errored" and isinstance(result, dict):
        outer = result.get("error")
        inner = outer.get("error", outer) if isinstance(outer, dict) else None
        if isinstance(inner, dict):
            named = str(inner.get("type") or "api_error")
            message = inner.get("message")
            text = message if isinstance(message, str) else orjson.dumps(message).decode()
            return _line(key, {"code": ERROR_CODES.get(named), "status": named, "message": text})
    if kind == "canceled":
        return _line(key, {"code": None, "status": "CANCELLED",
                           "message": "canceled: the batch was canceled before this request ran"})
    if kind == "expired":
        return _line(key, {"code": None, "status": "DEADLINE_EXCEEDED",
                           "message": "expired: the batch ended before this request ran"})
    return _line(key, {"code": None, "status": "UNKNOWN",
                       "message": f"unknown result: {orjson.dumps(result).decode()[:200]}"})
