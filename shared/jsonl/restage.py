"""The inputs of a shard's next attempt: the retryable lines of the last one, re-cut into parts.

The lines to retry are read from the last attempt's error files (their ``retryable`` flag);
their staged requests are copied, by line number, from that attempt's part inputs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager, ExitStack
from typing import BinaryIO

import orjson

from shared.errors import RunError
from shared.jsonl.cut import StagedFile, must_cut
from shared.jsonl.records import is_retryable_record, record_line_number, staged_line_number
from shared.tokens import estimate_tokens


def retryable_lines(errors: BinaryIO) -> Iterator[int]:
    """Line numbers of the retryable records of an errors file, in its (line) order."""
    for record in errors:
        if is_retryable_record(record):
            yield record_line_number(record)


def select_lines(part_input: BinaryIO, lines: Iterable[int], out: BinaryIO) -> int:
    """Copy the staged lines whose numbers are in ``lines`` (ascending) to ``out``."""
    count = 0
    for record in _selected([part_input], lines):
        out.write(record)
        count += 1
    return count


def stage_parts(
    sources: Iterable[BinaryIO],
    wanted: Iterable[int],
    open_part: Callable[[int], AbstractContextManager[BinaryIO]],
    *,
    max_bytes: int,
    max_requests: int,
    min_parts: int = 1,
    total: int | None = None,
) -> list[StagedFile]:
    """Stage the lines ``wanted`` (ascending) from ``sources`` (staged files, each in line
    order, e.g. the previous attempt's parts) into parts ``open_part(0)``, ``open_part(1)``...

    Parts are cut under ``max_bytes``/``max_requests`` like shards. ``min_parts`` asks for at
    least that many parts (``2`` halves an expired job): each part then holds at most
    ``ceil(total / min_parts)`` requests, ``total`` being how many lines are wanted (taken
    from ``len(wanted)`` when not given). A single request cannot be split further. A wanted
    line missing from ``sources`` is a RunError: the records disagree.
    """
    if min_parts > 1:
        if total is None:
            if not isinstance(wanted, Sized):
                raise ValueError("stage_parts: min_parts > 1 needs total (or a sized wanted)")
            total = len(wanted)
        max_requests = min(max_requests, max(1, -(-total // min_parts)))
    parts: list[StagedFile] = []
    with ExitStack() as stack:
        writer: BinaryIO | None = None
        requests = size = tokens = first = last = 0

        def close_part() -> None:
            stack.close()
            parts.append(
                StagedFile(
                    index=len(parts),
                    requests=requests,
                    bytes=size,
                    first_line=first,
                    last_line=last,
                    estimated_tokens=tokens,
                )
            )

        for record in _selected(sources, wanted):
            line = staged_line_number(record)
            if writer is not None and must_cut(
                requests, size, len(record), max_bytes=max_bytes, max_requests=max_requests
            ):
                close_part()
                writer = None
            if writer is None:
                writer = stack.enter_context(open_part(len(parts)))
                requests = size = tokens = 0
                first = line
            writer.write(record)
            requests += 1
            size += len(record)
            tokens += estimate_tokens(orjson.loads(record)["request"])
            last = line
        if writer is not None:
            close_part()
    return parts


def _selected(sources: Iterable[BinaryIO], wanted: Iterable[int]) -> Iterator[bytes]:
    merged = heapq.merge(*sources, key=staged_line_number)
    for line in wanted:
        for record in merged:
            number = staged_line_number(record)
            if number == line:
                yield record
                break
            if number > line:
                raise RunError(f"line {line} is not in the staged input")
        else:
            raise RunError(f"line {line} is not in the staged input")
