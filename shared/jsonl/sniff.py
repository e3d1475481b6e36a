"""Refuse an input that is not JSONL at all before any of it is copied out.

Bad lines are normally rejected one by one into ``rejected.jsonl`` with their raw text,
because users need that text to fix them. A file whose first lines are not JSON at all is
not a JSONL file with mistakes, though: it is the wrong file (``/etc/passwd``, a CSV, a
key file), and copying it line by line into the output would hand its content to whoever
can read the output. So the first :data:`SNIFF_LINES` non-blank lines are read: when not
one of them parses as a JSON object, the run is refused with an ``InputFileError`` that
names the file, and nothing of it is written anywhere.

Raw text in ``rejected.jsonl`` after this check is safe to keep: the access policy
(``shared.access``) only lets a run read inputs under the prefixes its operator allowed for
callers, and only write outputs under the allowed output prefixes, so a rejected line moves
data from one place callers may use to another; the deny list keeps secrets, system files
and Shardline's own state out of reach whatever the prefixes say.

Only complete lines count, and at most :data:`SNIFF_BYTES` are read: a first line longer
than that (a very large request) is not judged here; the full validation still rejects it if
it is bad. An empty or blank-only file is not judged either (it has no lines to judge), nor
is one that starts with gzip's magic number or a UTF-16/UTF-32 byte order mark: the input
checks that know those formats give them their own message.
"""

from __future__ import annotations

from typing import BinaryIO

import orjson

from shared.errors import InputFileError
from shared.jsonl.lines import BOM
from shared.jsonl.source import open_source

#: Non-blank lines looked at; one JSON object among them is enough.
SNIFF_LINES = 5
#: Bytes read at most from the start of the input.
SNIFF_BYTES = 1 << 20
#: Starts of files that are not UTF-8 text, left to the checks that name their format.
OTHER_FORMATS = (b"\x1f\x8b", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def refuse_non_jsonl(reader: BinaryIO, source: str) -> None:
    """Raise ``InputFileError`` when none of the first non-blank lines is a JSON object."""
    head = reader.read(SNIFF_BYTES)
    if head.startswith(OTHER_FORMATS):
        return
    complete = len(head) < SNIFF_BYTES
    head = head.removeprefix(BOM)
    lines = head.split(b"\n")
    if not complete:
        lines = lines[:-1]  # the last piece may be cut short
    judged = 0
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if _is_object(text):
            return
        judged += 1
        if judged == SNIFF_LINES:
            break
    if judged == SNIFF_LINES or (judged and complete):
        raise InputFileError(
            source,
            f"not JSONL: none of the first {judged} non-blank line(s) is a JSON object; "
            "nothing was copied from it",
        )


def _is_object(text: bytes) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def check_jsonl(reader: BinaryIO, source: str) -> None:
    """The input as the plan will read it: a format we do not read refused by name
    (:func:`shared.jsonl.source.open_source`), gzip judged decompressed, then
    :func:`refuse_non_jsonl`."""
    with open_source(reader, source) as lines:
        refuse_non_jsonl(lines, source)
