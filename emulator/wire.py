"""Reading request bodies the way Google's proto-JSON parser does.

* Field names arrive in camelCase or snake_case (the SDK sends ``display_name``, the REST
  docs ``input_config.file_name``, SDK 1.x ``mimeType``). :func:`field` looks up both, and
  only at the level asked: user data inside (schema property names, metadata) is untouched.
* The docs' curl examples send single-quoted pseudo-JSON; the live API takes it, so does
  :func:`parse_body`.
"""

from __future__ import annotations

import ast
import re
import secrets
import string
from typing import Any

import orjson

from emulator.errors import bad_request

_CAMEL_BREAK = re.compile(r"(?<!^)(?=[A-Z])")
_ALNUM = string.ascii_lowercase + string.digits


def snake(name: str) -> str:
    return _CAMEL_BREAK.sub("_", name).lower()


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` under its camelCase or snake_case spelling (``name`` is camelCase)."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(snake(name), default)


def parse_body(raw: bytes) -> Any:
    """A JSON body, or the single-quoted form the docs' curl lines send; empty is ``{}``."""
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
        text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
        return ast.literal_eval(re.sub(r"\bnull\b", "None", text))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise bad_request(
            "Invalid JSON payload received. Unable to parse the request body."
        ) from None


def file_id() -> str:
    """12 lowercase alphanumerics, as live file names show."""
    return "".join(secrets.choice(_ALNUM) for _ in range(12))


def batch_id() -> str:
    """36 lowercase alphanumerics, as live batch names show."""
    return "".join(secrets.choice(_ALNUM) for _ in range(36))


def upload_id() -> str:
    """An opaque upload session id (URL-safe)."""
    return "ABPtcP" + secrets.token_urlsafe(48)


def int64(value: int) -> str:
    """Proto-JSON renders int64 as a string."""
    return str(int(value))
