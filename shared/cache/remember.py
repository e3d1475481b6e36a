"""The collect stage's side of the cache: a finished part's responses filed under their keys.

The part's results (outcome records, in line order) are merge-joined with the shard's
``cache-keys.txt`` (the plan's key for every line it sent, in line order); only responses
are remembered, never errors, so a per-request failure is asked again next time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from shared.cache.store import RequestCache
from shared.jsonl.records import is_result_record, record_line_number, response_json


def remember_part(cache: RequestCache, results: BinaryIO, keys: BinaryIO) -> int:
    """File every response of ``results`` under its key from ``keys``; how many."""
    return cache.remember(_pairs(results, keys))


def _pairs(results: BinaryIO, keys: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    rows = (_key_row(row) for row in keys)
    pending = next(rows, None)
    for record in results:
        if not is_result_record(record):
            continue
        line = record_line_number(record)
        while pending is not None and pending[0] < line:
            pending = next(rows, None)
        if pending is None:
            return
        if pending[0] == line:  # else a line the plan did not key: not ours to remember
            yield pending[1], response_json(record)


def _key_row(row: bytes) -> tuple[int, bytes]:
    number, _, key = row.rstrip(b"\n").partition(b" ")
    return int(number), key
