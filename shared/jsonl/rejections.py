"""Rejected-line records: ``{"line":N,"reason":"...","raw":"<the line as text>"}``.

Nothing is truncated. A line that is not valid UTF-8 gets ``raw`` decoded with replacement
characters (readable) plus ``raw_base64``, its exact bytes. An oversize line is written from
its spool file in pieces, so it is never held in memory; both writers produce the same bytes
for the same line.

Keeping the raw text is safe because of what comes before: the input lies under the
prefixes the operator allowed for callers and the output under the allowed output prefixes
(``shared.access``, checked at registration and again by the plan), so a rejected line only
moves data between two places callers may use; and a file that is not JSONL at all is
refused before any line of it is copied (``shared.jsonl.sniff``).
"""

from __future__ import annotations

import base64
import codecs
from typing import BinaryIO

import orjson

_CHUNK = 3 * (1 << 18)  # a multiple of 3, so base64 pieces concatenate without padding


def rejection(line: int, reason: str, raw: bytes) -> bytes:
    """The record for a line held in memory."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        record = {
            "line": line,
            "reason": reason,
            "raw": raw.decode("utf-8", "replace"),
            "raw_base64": base64.b64encode(raw).decode("ascii"),
        }
    else:
        record = {"line": line, "reason": reason, "raw": text}
    return orjson.dumps(record) + b"\n"


def write_rejection_streamed(out: BinaryIO, line: int, reason: str, raw: BinaryIO) -> None:
    """Write the record for a line read from ``raw`` (seekable), in bounded memory."""
    out.write(b'{"line":%d,"reason":%b,"raw":"' % (line, orjson.dumps(reason)))
    strict = codecs.getincrementaldecoder("utf-8")("strict")
    lenient = codecs.getincrementaldecoder("utf-8")("replace")
    valid = True
    while chunk := raw.read(_CHUNK):
        if valid:
            try:
                strict.decode(chunk)
            except UnicodeDecodeError:
                valid = False
        out.write(orjson.dumps(lenient.decode(chunk))[1:-1])
    out.write(orjson.dumps(lenient.decode(b"", final=True))[1:-1])
    if valid:
        try:
            strict.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
    out.write(b'"')
    if not valid:
        raw.seek(0)
        out.write(b',"raw_base64":"')
        while chunk := raw.read(_CHUNK):
            out.write(base64.b64encode(chunk))
        out.write(b'"')
    out.write(b"}\n")
