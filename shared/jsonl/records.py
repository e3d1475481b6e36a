"""Byte formats of Shardline's own JSONL files, built and read by slicing, not parsing.

Every file we write starts its lines with a fixed prefix, so the line number of a record can
be read without a JSON parse (orjson never inserts spaces, so the prefixes are exact):

- staged provider input: ``{"key":"<N>","request":{...}}``
- sidecar: ``{"line":N,"key":"<user key>"[,"extra":{...}]}``
- outcomes: ``{"line":N,"response":{...}}`` and
  ``{"line":N,"error":{"code":..,"message":..,"status":..},"retryable":true|false}``

A line of ours that does not have its prefix means the run's records are corrupt: RunError.

Records are built as copies (``orjson.dumps(...) + b"\\n"``, ``%`` formatting), never
returned straight from ``orjson.dumps``: orjson's output keeps its working allocation (4 KiB
for a short record, several times the length of a long one), and the sort buffer and the
planner's write batches hold many records at once.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.errors import RunError

STAGED_PREFIX = b'{"key":"'
RECORD_PREFIX = b'{"line":'
_RESPONSE_FIELD = b',"response":'
_EXTRA_FIELD = b',"extra":{'
_ERROR_FIELD = b',"error":'
_RETRYABLE_FIELD = b',"retryable":'
_RETRYABLE_TAIL = b',"retryable":true}\n'


def staged_line(line: int, request_json: bytes) -> bytes:
    """The provider input line for input line ``line``: our key is the line number."""
    return b'{"key":"%d","request":%b}\n' % (line, request_json)


def staged_line_number(record: bytes) -> int:
    """The input line number a staged line stands for."""
    if not record.startswith(STAGED_PREFIX):
        raise RunError(f"malformed staged line: {record[:80]!r}")
    try:
        return int(record[8 : record.index(b'"', 8)])
    except ValueError as exc:
        raise RunError(f"malformed staged line: {record[:80]!r}") from exc


def record_line_number(record: bytes) -> int:
    """The input line number of a sidecar or outcome record."""
    if not record.startswith(RECORD_PREFIX):
        raise RunError(f"malformed record: {record[:80]!r}")
    try:
        return int(record[8 : record.index(b",", 8)])
    except ValueError as exc:
        raise RunError(f"malformed record: {record[:80]!r}") from exc


def sidecar_line(line: int, key: str, extra: dict[str, Any] | None) -> bytes:
    if extra:
        return orjson.dumps({"line": line, "key": key, "extra": extra}) + b"\n"
    return b'{"line":%d,"key":%b}\n' % (line, orjson.dumps(key))


def sidecar_head(record: bytes) -> bytes:
    """``{"key":<key>[,<metadata fields>]`` from a sidecar record, by slicing: the user-facing
    line up to its outcome field. ``,"extra":{`` cannot occur inside the key's JSON string
    (its quotes would be escaped), so its first occurrence is the field separator."""
    return sidecar_fields(record)[1]


def sidecar_fields(record: bytes) -> tuple[int, bytes]:
    """The line number and :func:`sidecar_head` of a sidecar record, in one pass."""
    comma = record.find(b",", 8)
    if (
        not record.startswith(RECORD_PREFIX)
        or not record.startswith(b'"key":', comma + 1)
        or not record.endswith(b"}\n")
    ):
        raise RunError(f"malformed sidecar record: {record[:80]!r}")
    try:
        line = int(record[8:comma])
    except ValueError as exc:
        raise RunError(f"malformed sidecar record: {record[:80]!r}") from exc
    extra = record.find(_EXTRA_FIELD, comma)
    if extra == -1:
        return line, b"{" + record[comma + 1 : -2]
    return line, b"{" + record[comma + 1 : extra + 1] + record[extra + len(_EXTRA_FIELD) : -3]


def result_record(line: int, response_json: bytes) -> bytes:
    return b'{"line":%d,"response":%b}\n' % (line, response_json)


def error_record(line: int, error: dict[str, Any], retryable: bool) -> bytes:
    return orjson.dumps({"line": line, "error": error, "retryable": retryable}) + b"\n"


def outcome_order(record: bytes) -> int:
    """Sort key of an outcome record: ``2 * line`` for a result, ``2 * line + 1`` for an error,
    so a line's results come before its errors. A result record ends ``}}\n`` (its response
    object, then itself); an error record ends with its ``retryable`` flag."""
    return record_line_number(record) * 2 + (not record.endswith(b"}}\n"))


def is_result_record(record: bytes) -> bool:
    comma = record.find(b",", 8)
    return record.startswith(_RESPONSE_FIELD, comma)


def response_json(record: bytes) -> bytes:
    """The response of a result record, as the exact bytes we stored (no re-serialising)."""
    comma = record.find(b",", 8)
    if not record.startswith(_RESPONSE_FIELD, comma) or not record.endswith(b"}\n"):
        raise RunError(f"malformed result record: {record[:80]!r}")
    return record[comma + len(_RESPONSE_FIELD) : -2]


def response_tail(record: bytes) -> bytes:
    """``,"response":{...}}\n`` of a result record: what follows the sidecar's head on the
    user-facing line, as the exact bytes we stored."""
    comma = record.find(b",", 8)
    if not record.startswith(_RESPONSE_FIELD, comma) or not record.endswith(b"}\n"):
        raise RunError(f"malformed result record: {record[:80]!r}")
    return record[comma:]


def error_json(record: bytes) -> bytes:
    """The ``error`` object of an error record, as its bytes. ``,"retryable":`` cannot occur
    inside the error's strings (their quotes would be escaped), so its last occurrence ends
    the error object."""
    comma = record.find(b",", 8)
    end = record.rfind(_RETRYABLE_FIELD)
    if not record.startswith(_ERROR_FIELD, comma) or end < comma or not record.endswith(b"}\n"):
        raise RunError(f"malformed error record: {record[:80]!r}")
    return record[comma + len(_ERROR_FIELD) : end]


def is_retryable_record(record: bytes) -> bool:
    """Whether an error record is marked retryable (the flag is always its last field)."""
    return record.endswith(_RETRYABLE_TAIL)
