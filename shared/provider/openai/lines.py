"""Our staged lines into the provider's input lines, and its output lines back into ours.

The staged part input stays ours (``{"key":"N","request":{...}}``, the same bytes for every
provider): the translation happens while the bytes stream to the provider, line by line, so
memory stays flat and the pipeline's stages do not change. Input::

    {"custom_id":"N","method":"POST","url":"/v1/chat/completions","body":{...request}}

The request is the provider's own body, kept byte for byte; only a body without ``model``
gets the run's model put first (the API requires one per line, the run names it once).

Output: the output file's ``{"custom_id","response":{"status_code","body"},"error"}`` and
the error file's lines become ``{"key":"N","response":body}`` for a 200 and
``{"key":"N","error":{"code","status","message"}}`` otherwise, which
:func:`shared.jsonl.classify_output` reads like Gemini's. An error keeps the provider's
code (the HTTP status of the request as ``code``, the provider's error code string as
``status``) and message. ``batch_expired`` (a request the window ran out on) becomes
``DEADLINE_EXCEEDED`` so it is retried like any expired request.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.errors import RunError
from shared.jsonl.records import STAGED_PREFIX
from shared.run.spec import Kind

#: The batch endpoint (and every line's ``url``) per kind of work.
ENDPOINTS: dict[Kind, str] = {
    "generate": "/v1/chat/completions",
    "embed": "/v1/embeddings",
}
_REQUEST_FIELD = b'","request":'
#: Provider error codes of requests that were never run, mapped onto our retryable statuses.
_NEVER_RUN = {"batch_expired": "DEADLINE_EXCEEDED", "batch_cancelled": "CANCELLED"}


def upload_line(staged: bytes, *, url: str, model: str | None) -> bytes:
    """The provider's input line for one staged line (sliced; the body is parsed only to
    see whether it names a model)."""
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
    return b'{"custom_id":"%b","method":"POST","url":%b,"body":%b}\n' % (
        key,
        orjson.dumps(url),
        body,
    )


def _error_of(error: Any, status_code: Any) -> dict[str, Any]:
    code = status_code if type(status_code) is int else None
    if not isinstance(error, dict):
        return {"code": code, "status": None, "message": orjson.dumps(error).decode()}
    provider_code = error.get("code") or error.get("type")
    message = error.get("message")
    text = message if isinstance(message, str) else orjson.dumps(message).decode()
    if isinstance(provider_code, str) and provider_code in _NEVER_RUN:
        never_run = _NEVER_RUN[provider_code]
        return {"code": code, "status": never_run, "message": f"{provider_code}: {text}"}
    named = provider_code if isinstance(provider_code, str) else None
    return {"code": code, "status": named, "message": text}


def translate_output_line(raw: bytes) -> bytes:
    """One output or error file line in our output shape; a line we cannot read is passed
    on as it is (the classifier counts it as a stray)."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw if raw.endswith(b"\n") else raw + b"\n"
    if not isinstance(line, dict):
        return raw if raw.endswith(b"\n") else raw + b"\n"
    key = line.get("custom_id")
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, dict):
        body = response.get("body")
        status_code = response.get("status_code")
        if status_code == 200 and isinstance(body, dict) and error is None:
            return orjson.dumps({"key": key, "response": body}) + b"\n"
        if error is None and isinstance(body, dict):
            error = body.get("error", body)
        return orjson.dumps({"key": key, "error": _error_of(error, status_code)}) + b"\n"
    if error is None:
        error = {"message": "the provider returned a line with neither a response nor an error"}
    return orjson.dumps({"key": key, "error": _error_of(error, None)}) + b"\n"
