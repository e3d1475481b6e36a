"""Join a shard: one outcome per accepted line, joined with our own copy of its metadata.

Each attempt of a shard leaves sorted outcome files per part (see
:mod:`shared.jsonl.outcomes`). They are merged by (line, attempt); per line the outcome is the
first success if there is one (at most one success is ever written), else the error of the
highest attempt that has one; ``attempts`` is how many attempts produced an outcome for the
line. The merged stream is merge-joined with the sidecar (input order), which carries the
user's key and metadata — never the provider's echo. A sidecar line without any outcome
should not exist; it becomes a ``MISSING`` error (counted) rather than vanish. Outcomes for
lines not in the sidecar are counted as ``orphans`` and dropped.

User-facing lines, in input order, key order fixed:
``{"key":..,<metadata..>,"response":{..}}`` and
``{"key":..,<metadata..>,"error":{"code","message","status"},"attempts":n}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import BinaryIO

import orjson
from pydantic import BaseModel

from shared.errors import RunError
from shared.failpoints import failpoint
from shared.jsonl.outcomes import MISSING_ERROR
from shared.jsonl.records import (
    error_json,
    record_line_number,
    response_tail,
    sidecar_fields,
)
from shared.storage.base import Storage

_COPY_CHUNK = 1 << 20
_ATTEMPT_AND_FILE = itemgetter(0, 1)


class ShardTotals(BaseModel):
    """Counts of a finished shard: ``lines == results + errors``; ``missing`` is part of
    ``errors``; ``retried`` counts lines that needed more than one attempt."""

    lines: int = 0
    results: int = 0
    errors: int = 0
    missing: int = 0
    retried: int = 0
    orphans: int = 0


class _Stream:
    """One outcome file being read: the record at its head and that record's line (0 once
    the file is exhausted: line numbers start at 1)."""

    __slots__ = ("attempt", "index", "line", "record", "records", "results")

    def __init__(self, records: BinaryIO, attempt: int, index: int, results: bool) -> None:
        self.records = iter(records)
        self.attempt = attempt
        self.index = index
        self.results = results
        self.line = 0
        self.record = b""
        self.advance()

    def advance(self) -> None:
        record = next(self.records, None)
        if record is None:
            self.line = 0
            return
        self.record = record
        self.line = record_line_number(record)


def join_shard(
    sidecar: BinaryIO,
    attempts: list[tuple[int, BinaryIO, BinaryIO]],
    results_out: BinaryIO,
    errors_out: BinaryIO,
) -> ShardTotals:
    """Write the shard's user-facing results and errors from its attempts' outcome files.

    ``attempts`` holds ``(attempt number, results, errors)`` per part of every attempt (an
    attempt with several parts appears several times); each file sorted by line.

    The outcome files are merged by looking at every file's head for each sidecar line (a
    shard has a handful of files, one results and one errors file per part of an attempt);
    a line's outcomes are then taken in (attempt, file) order, as a k-way merge would give
    them. Records are sliced, not parsed: a result line is the sidecar's head followed by
    the result record from its ``,"response":``, an error line carries the error record's
    ``error`` bytes as they are (our own orjson output, so a parse and re-serialisation
    would give the same bytes).
    """
    if len(attempts) == 1:  # the common case: one attempt of one part
        _, results, errors = attempts[0]
        return _join_one_part(sidecar, results, errors, results_out, errors_out)
    streams: list[_Stream] = []
    for attempt, results, errors in attempts:
        streams.append(_Stream(results, attempt, len(streams), True))
        streams.append(_Stream(errors, attempt, len(streams), False))
    lines = successes = failures = missing = retried = orphans = 0
    previous = 0
    for side in sidecar:
        number, head = sidecar_fields(side)
        if number <= previous:
            raise RunError(f"sidecar is not in line order at line {number}")
        previous = number
        lines += 1
        found: list[tuple[int, int, bytes]] = []  # (attempt, file, record) of this line
        for stream in streams:
            while 0 < stream.line < number:
                orphans += 1
                stream.advance()
            while stream.line == number:
                found.append((stream.attempt, stream.index, stream.record))
                stream.advance()
        if not found:
            errors_out.write(_error_line(head, MISSING_ERROR, 0))
            failures += 1
            missing += 1
            continue
        if len(found) == 1:
            tried = 1
        else:
            found.sort(key=_ATTEMPT_AND_FILE)  # stable: a file's records keep their order
            tried = len({outcome[0] for outcome in found})
            retried += tried > 1
        success = next((outcome[2] for outcome in found if streams[outcome[1]].results), None)
        if success is not None:
            results_out.write(head + response_tail(success))
            successes += 1
        else:
            errors_out.write(
                b'%b,"error":%b,"attempts":%d}\n' % (head, error_json(found[-1][2]), tried)
            )
            failures += 1
    for stream in streams:
        while stream.line:
            orphans += 1
            stream.advance()
    return ShardTotals(
        lines=lines,
        results=successes,
        errors=failures,
        missing=missing,
        retried=retried,
        orphans=orphans,
    )


def _join_one_part(
    sidecar: BinaryIO,
    results: BinaryIO,
    errors: BinaryIO,
    results_out: BinaryIO,
    errors_out: BinaryIO,
) -> ShardTotals:
    """:func:`join_shard` of a single attempt with a single part: two files, no merge."""
    result_records = iter(results)
    error_records = iter(errors)
    result = next(result_records, b"")
    error = next(error_records, b"")
    result_line = record_line_number(result) if result else 0
    error_line = record_line_number(error) if error else 0
    lines = successes = failures = missing = orphans = 0
    previous = 0
    for side in sidecar:
        number, head = sidecar_fields(side)
        if number <= previous:
            raise RunError(f"sidecar is not in line order at line {number}")
        previous = number
        lines += 1
        while 0 < result_line < number:
            orphans += 1
            result = next(result_records, b"")
            result_line = record_line_number(result) if result else 0
        while 0 < error_line < number:
            orphans += 1
            error = next(error_records, b"")
            error_line = record_line_number(error) if error else 0
        if result_line == number:
            results_out.write(head + response_tail(result))
            successes += 1
            while result_line == number:  # a second result in the file: the first is kept
                result = next(result_records, b"")
                result_line = record_line_number(result) if result else 0
            while error_line == number:
                error = next(error_records, b"")
                error_line = record_line_number(error) if error else 0
        elif error_line == number:
            while error_line == number:  # the last error is kept
                last = error
                error = next(error_records, b"")
                error_line = record_line_number(error) if error else 0
            errors_out.write(b'%b,"error":%b,"attempts":1}\n' % (head, error_json(last)))
            failures += 1
        else:
            errors_out.write(_error_line(head, MISSING_ERROR, 0))
            failures += 1
            missing += 1
    while result_line:
        orphans += 1
        result = next(result_records, b"")
        result_line = record_line_number(result) if result else 0
    while error_line:
        orphans += 1
        error = next(error_records, b"")
        error_line = record_line_number(error) if error else 0
    return ShardTotals(
        lines=lines,
        results=successes,
        errors=failures,
        missing=missing,
        retried=0,
        orphans=orphans,
    )


def concat(storage: Storage, keys: Iterable[str], writer: BinaryIO) -> int:
    """Stream the objects ``keys`` one after another into ``writer``; returns bytes written.

    The run's ``results.jsonl``/``errors.jsonl`` are the shards' files in shard order: shards
    are contiguous line ranges, so this keeps input order.
    """
    written = 0
    for key in keys:
        with storage.open_read(key) as reader:
            while chunk := reader.read(_COPY_CHUNK):
                writer.write(chunk)
                written += len(chunk)
        failpoint("merge.mid_concat")
    return written


def _error_line(head: bytes, error: object, attempts: int) -> bytes:
    return b'%b,"error":%b,"attempts":%d}\n' % (head, orjson.dumps(error), attempts)
