"""Is one input line usable? A pure function of its bytes, its line number and the run's kind.

Accepted forms:

- keyed: ``{"key": "k", "request": {...}, <metadata>...}``; ``key`` is optional (absent:
  ``line-N``) but when present must be a non-empty string; every other top-level field is
  user metadata, returned on the output line, except ``response``, ``error`` and
  ``attempts``, which the output line itself uses;
- bare: the request object itself (no ``request`` and no ``key`` field), keyed ``line-N``.

A request must look like the run's kind: a generate request needs a non-empty ``contents``
list of objects; an embed request needs ``content``, one object (``EmbedContentRequest``;
``contents`` is the generate form and is refused with a hint rather than passed on to fail
at the provider). In the ``openai`` dialect (an OpenAI-style run) a generate request is a
chat body with a non-empty ``messages`` list, an embed request has ``input``; a bare request
is recognised by those fields. An ``anthropic`` Messages body needs ``messages`` and an
integer ``max_tokens``. Everything else is left to the provider.

A bare request is staged with its own bytes (trimmed), a keyed one re-serialised by orjson
(values unchanged, except that orjson reads an integer beyond 64 bits as a float).
Size limits and duplicate keys are the planner's business, not this function's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shared.run.spec import Kind
from shared.settings import ProviderName

RESERVED_FIELDS = ("response", "error", "attempts")
_NO_KEY = object()
_JSON_TYPES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


@dataclass(slots=True)
class Accepted:
    """A usable line: its user key, the request (object and JSON bytes) and its metadata."""

    key: str
    request: dict[str, Any]
    request_json: bytes
    extra: dict[str, Any] | None = None


#: An accepted line's ``(key, request, request_json, extra)``, the fields of :class:`Accepted`.
Fields = tuple[str, dict[str, Any], bytes, dict[str, Any] | None]


@dataclass(slots=True)
class Rejected:
    """An unusable line and why, in words meant for the person who wrote the file."""

    reason: str


def json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def check_line(
    raw: bytes, line_no: int, kind: Kind, dialect: ProviderName = "gemini"
) -> Accepted | Rejected:
    """Accept or reject one line (content without its terminator)."""
    verdict = line_verdict(raw, line_no, kind, dialect)
    if isinstance(verdict, str):
        return Rejected(verdict)
    return Accepted(*verdict)


def line_verdict(
    raw: bytes, line_no: int, kind: Kind, dialect: ProviderName = "gemini"
) -> Fields | str:
    """:func:`check_line` for the planner's hot loop, without an object per line: the
    accepted line's ``(key, request, request_json, extra)`` or the rejection's reason."""
    if not raw:
        return "empty line"
    if raw.isspace():
        return "blank line"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"invalid UTF-8 at byte {bad.start + 1}: {bad.reason}"
        return f"invalid JSON: {exc}"
    if type(obj) is not dict:
        return f"not a JSON object (got {json_type(obj)})"
    if "request" not in obj:
        return _bare(obj, raw, line_no, kind, dialect)
    # Keyed: what is left of ``obj`` once the structure is taken out is the metadata.
    request = obj.pop("request")
    if type(request) is not dict:
        return f"`request` must be an object (got {json_type(request)})"
    key = obj.pop("key", _NO_KEY)
    if key is _NO_KEY:
        key = f"line-{line_no}"
    elif type(key) is not str:
        return f"`key` must be a string (got {json_type(key)})"
    elif not key:
        return "`key` must not be empty"
    if obj and not obj.keys().isdisjoint(RESERVED_FIELDS):
        name = next(name for name in RESERVED_FIELDS if name in obj)
        return f"field `{name}` is reserved: output lines use it, so it cannot be metadata"
    problem = request_problem(request, kind, dialect)
    if problem is not None:
        return problem
    return key, request, orjson.dumps(request), obj or None


def _bare(
    obj: dict[str, Any], raw: bytes, line_no: int, kind: Kind, dialect: ProviderName
) -> Fields | str:
    if "key" in obj:
        return "has `key` but no `request` object"
    if dialect in ("openai", "anthropic"):
        marker = "messages" if kind == "generate" else "input"
    else:
        marker = "contents" if kind == "generate" else "content"
    if marker not in obj:
        hint = "; `contents` is the generate form" if kind == "embed" and "contents" in obj else ""
        return (
            f"not a request: needs `request` (keyed line) or `{marker}` "
            f"(a bare {kind} request){hint}"
        )
    problem = request_problem(obj, kind, dialect)
    if problem is not None:
        return problem
    return f"line-{line_no}", obj, raw.strip(), None


def request_problem(
    request: dict[str, Any], kind: Kind, dialect: ProviderName = "gemini"
) -> str | None:
    """What makes ``request`` unusable for ``kind``, or None (minimal, cheap checks)."""
    if dialect == "openai":
        return _openai_problem(request, kind)
    if dialect == "anthropic":
        problem = _openai_problem(request, kind)
        if problem is None and type(request.get("max_tokens")) is not int:
            got = _got(request, "max_tokens")
            problem = f"message request needs `max_tokens`, an integer ({got})"
        return problem
    if kind == "generate":
        contents = request.get("contents")
        if type(contents) is not list or not contents:
            got = _got(request, "contents")
            if type(contents) is list:
                got = "got an empty list"
            return f"generate request needs a non-empty `contents` list ({got})"
        for index, item in enumerate(contents):
            if type(item) is not dict:
                return f"`contents[{index}]` must be an object (got {json_type(item)})"
        return None
    content = request.get("content")
    if type(content) is not dict:
        got = _got(request, "content")
        hint = "; `contents` is the generate form" if "contents" in request else ""
        return f"embed request needs `content`, an object ({got}){hint}"
    return None


def _openai_problem(request: dict[str, Any], kind: Kind) -> str | None:
    """An OpenAI-style body: chat needs a non-empty ``messages`` list of objects; an
    embedding needs ``input`` (a non-empty string or list)."""
    if kind == "generate":
        messages = request.get("messages")
        if type(messages) is not list or not messages:
            got = "got an empty list" if type(messages) is list else _got(request, "messages")
            return f"chat request needs a non-empty `messages` list ({got})"
        for index, item in enumerate(messages):
            if type(item) is not dict:
                return f"`messages[{index}]` must be an object (got {json_type(item)})"
        return None
    value = request.get("input")
    if type(value) not in (str, list) or not value:
        got = _got(request, "input")
        return f"embedding request needs `input`, a non-empty string or list ({got})"
    return None


def _got(obj: dict[str, Any], field: str) -> str:
    return f"got {json_type(obj[field])}" if field in obj else "missing"
