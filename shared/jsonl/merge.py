"""Finish a shard: one outcome per accepted line, joined with our own copy of its metadata.

Each attempt of a shard leaves sorted outcome files per part (see :mod:`collect`). They are
k-way merged by (line, attempt); per line the outcome is the first success if there is one
(at most one success is ever written), else the error of the highest attempt that has
one; ``attempts`` is how many attempts produced an outcome for the line. The merged stream is
merge-joined with the sidecar (input order), which carries the user's key and metadata —
never the provider's echo. A sidecar line without any outcome should not exist; it becomes
a ``MISSING`` error (counted) rather than vanish. Outcomes for lines not in the sidecar are
counted as ``orphans`` and dropped.

User-facing lines, in input order, key order fixed:
``{"key":..,<metadata..>,"response":{..}}`` and
``{"key":..,<metadata..>,"error":{"code","message","status"},"attempts":n}``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import orjson
from pydantic import BaseModel

from shared.errors import RunError
from shared.failpoints import failpoint
from shared.jsonl.collect import MISSING_ERROR
from shared.jsonl.records import (
    is_result_record,
    record_line_number,
    response_json,
    sidecar_head,
)
from shared.storage.base import Storage

_COPY_CHUNK = 1 << 20


class ShardTotals(BaseModel):
    """Counts of a finished shard: ``lines == results + errors``; ``missing`` is part of
    ``errors``; ``retried`` counts lines that needed more than one attempt."""

    lines: int = 0
    results: int = 0
    errors: int = 0
    missing: int = 0
    retried: int = 0
    orphans: int = 0


# (line, attempt, stream, sequence, record): the first four make every tuple unique.
_Outcome = tuple[int, int, int, int, bytes]


def finish_shard(
    sidecar: BinaryIO,
    attempts: list[tuple[int, BinaryIO, BinaryIO]],
    results_out: BinaryIO,
    errors_out: BinaryIO,
) -> ShardTotals:
    """Write the shard's user-facing results and errors from its attempts' outcome files.

    ``attempts`` holds ``(attempt number, results, errors)`` per part of every attempt (an
    attempt with several parts appears several times); each file sorted by line.
    """
    streams: list[Iterator[_Outcome]] = []
    for attempt, results, errors in attempts:
        streams.append(_outcomes(results, attempt, len(streams)))
        streams.append(_outcomes(errors, attempt, len(streams)))
    merged = heapq.merge(*streams)
    lines = successes = failures = missing = retried = orphans = 0
    pending = next(merged, None)
    previous = 0
    for side in sidecar:
        number = record_line_number(side)
        if number <= previous:
            raise RunError(f"sidecar is not in line order at line {number}")
        previous = number
        lines += 1
        while pending is not None and pending[0] < number:
            orphans += 1
            pending = next(merged, None)
        group: list[_Outcome] = []
        while pending is not None and pending[0] == number:
            group.append(pending)
            pending = next(merged, None)
        head = sidecar_head(side)
        if not group:
            errors_out.write(_error_line(head, MISSING_ERROR, 0))
            failures += 1
            missing += 1
            continue
        tried = 1 if len(group) == 1 else len({outcome[1] for outcome in group})
        retried += tried > 1
        success = next((outcome[4] for outcome in group if is_result_record(outcome[4])), None)
        if success is not None:
            results_out.write(b'%b,"response":%b}\n' % (head, response_json(success)))
            successes += 1
        else:
            error = orjson.loads(group[-1][4])["error"]
            errors_out.write(_error_line(head, error, tried))
            failures += 1
    while pending is not None:
        orphans += 1
        pending = next(merged, None)
    return ShardTotals(
        lines=lines,
        results=successes,
        errors=failures,
        missing=missing,
        retried=retried,
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


def _outcomes(records: BinaryIO, attempt: int, stream: int) -> Iterator[_Outcome]:
    for sequence, record in enumerate(records):
        yield record_line_number(record), attempt, stream, sequence, record


def _error_line(head: bytes, error: object, attempts: int) -> bytes:
    return b'%b,"error":%b,"attempts":%d}\n' % (head, orjson.dumps(error), attempts)
