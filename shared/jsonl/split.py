"""Split the input: one streaming pass over the input validates every line and cuts the shards.

What the pass writes (keys from :mod:`shared.run.layout`):

- per shard ``i`` (0-based), in input order: the staged provider input
  (``{"key":"<line>","request":...}``) and the sidecar (``{"line":N,"key":..,"extra":..}``);
  a shard is cut before a line that would take it past ``shard_max_bytes`` bytes or
  ``shard_max_requests`` lines, so a shard of exactly ``shard_max_bytes`` is allowed;
- ``PLAN_REJECTED``: every unusable line with its number, reason and full text, in line
  order (written even when empty, so its absence means "not planned").

Duplicate keys cannot be known until every key has been seen (the first line with a key
wins), so they are found after the pass (:mod:`shared.jsonl.dedupe`), and only the shards
holding a duplicate are rewritten without it. Their raw text, needed for the rejection,
was kept during the pass for the few lines the Bloom filter flagged. If a rewrite empties a
shard (every line of it repeats an earlier key) the shard is dropped and the later ones are
renumbered by moving their objects — a rare, slow path that keeps indices contiguous.

The shard count is bounded (``max_shards``): an input that needs more shards than that at
its shard limits fails the plan (``InputFileError``, naming the limits to raise) when the
first shard too many would start, before more of it is read or staged. Tiny limits stay
allowed (tests and small experiments use them); the bound is what keeps a run's jobs,
records and task messages finite.

Memory is flat: one line at a time (at most ``line_max_bytes``, default
``shard_max_bytes``; a longer line is spooled to disk and rejected), the Bloom filter, the
key log's write buffers and ~256 KiB of staged lines waiting for their write. Local disk
(``tmp_dir``) holds 24 bytes per accepted line, the rejected lines and the flagged raw lines
until the plan is done.

Re-running the plan on the same input writes the same objects (each replaced atomically).
"""

from __future__ import annotations

import bisect
import heapq
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO

import orjson
from pydantic import BaseModel

from shared.errors import InputFileError, RunError
from shared.failpoints import failpoint
from shared.jsonl.cut import StagedFile, must_cut
from shared.jsonl.dedupe import DEFAULT_BLOOM_BYTES, KeyLog
from shared.jsonl.lines import Line, LineReader
from shared.jsonl.records import (
    record_line_number,
    sidecar_line,
    staged_line,
    staged_line_number,
)
from shared.jsonl.rejections import rejection, write_rejection_streamed
from shared.jsonl.validate import line_verdict
from shared.run import layout
from shared.run.spec import Kind
from shared.settings import ProviderName
from shared.storage.base import Storage
from shared.tokens import estimate_tokens

_COPY_CHUNK = 1 << 20
_HEAD = 4096
_BATCH_BYTES = 1 << 18


class SplitResult(BaseModel):
    """What the pass found. ``lines == accepted + rejected``, always."""

    source: str
    kind: Kind
    shard_max_bytes: int
    shard_max_requests: int
    shards: list[StagedFile]
    lines: int
    accepted: int
    rejected: int
    duplicates: int
    input_bytes: int
    estimated_tokens: int


def split_input(
    reader: BinaryIO,
    out: Storage,
    *,
    kind: Kind,
    shard_max_bytes: int,
    shard_max_requests: int,
    source: str,
    dialect: ProviderName = "gemini",
    tmp_dir: str | None = None,
    line_max_bytes: int | None = None,
    max_shards: int | None = None,
    bloom_bytes: int = DEFAULT_BLOOM_BYTES,
) -> SplitResult:
    """Validate and split ``reader`` (read once, sequentially) into shards staged in ``out``.

    ``source`` names the input in messages; ``dialect`` is the provider whose request bodies
    the lines hold. ``line_max_bytes`` caps one raw line (default:
    ``shard_max_bytes``); a longer one is rejected without being held in memory.
    ``max_shards`` (default: no bound) bounds the shard count: ``InputFileError`` beyond.
    """
    if shard_max_bytes < 1 or shard_max_requests < 1:
        raise ValueError("shard limits must be positive")
    line_cap = line_max_bytes or shard_max_bytes
    with (
        tempfile.TemporaryDirectory(prefix="shardline-plan-", dir=tmp_dir) as work,
        KeyLog(work, bloom_bytes=bloom_bytes) as keys,
    ):
        found = _first_pass(
            reader,
            out,
            keys,
            work,
            kind=kind,
            dialect=dialect,
            max_bytes=shard_max_bytes,
            max_requests=shard_max_requests,
            line_cap=line_cap,
            max_shards=max_shards,
            source=source,
        )
        shards = found.shards
        duplicates = 0
        dup_rejected = os.path.join(work, "duplicates.jsonl")
        if keys.count:
            duplicates, drops = _sort_out_duplicates(keys, found, dup_rejected, work)
            if drops:
                shards = _renumber(
                    out, [_drop_lines(out, shard, drops.get(shard.index)) for shard in shards]
                )
        with (
            out.open_write(layout.PLAN_REJECTED) as target,
            open(found.rejected_path, "rb") as first,
        ):
            if duplicates:
                with open(dup_rejected, "rb") as second:
                    _merge_rejections(first, second, target)
            else:
                shutil.copyfileobj(first, target, _COPY_CHUNK)
    accepted = sum(shard.requests for shard in shards)
    result = SplitResult(
        source=source,
        kind=kind,
        shard_max_bytes=shard_max_bytes,
        shard_max_requests=shard_max_requests,
        shards=shards,
        lines=found.lines,
        accepted=accepted,
        rejected=found.rejected + duplicates,
        duplicates=duplicates,
        input_bytes=found.input_bytes,
        estimated_tokens=sum(shard.estimated_tokens for shard in shards),
    )
    if result.lines != result.accepted + result.rejected:
        raise RunError(
            f"{source}: plan lost count: {result.lines} lines, {accepted} accepted, "
            f"{result.rejected} rejected"
        )
    return result


@dataclass(slots=True)
class _Found:
    rejected_path: str
    suspects_path: str
    shards: list[StagedFile] = field(default_factory=list)
    lines: int = 0
    rejected: int = 0
    input_bytes: int = 0


def _first_pass(
    reader: BinaryIO,
    out: Storage,
    keys: KeyLog,
    work: str,
    *,
    kind: Kind,
    dialect: ProviderName,
    max_bytes: int,
    max_requests: int,
    line_cap: int,
    max_shards: int | None,
    source: str,
) -> _Found:
    found = _Found(os.path.join(work, "rejected.jsonl"), os.path.join(work, "suspects.bin"))
    lines = LineReader(reader, max_bytes=line_cap, tmp_dir=work)
    rejected_count = 0
    with (
        open(found.rejected_path, "wb") as rejected,
        open(found.suspects_path, "wb") as suspects,
        _ShardSink(
            out, max_bytes=max_bytes, max_requests=max_requests, max_shards=max_shards,
            source=source,
        ) as sink,
    ):
        add_key = keys.add
        add_line = sink.add
        number = 0
        for data in lines.contents():
            number += 1
            if isinstance(data, Line):  # an oversize line, spooled
                reason = (f"line of {data.size} bytes exceeds the {line_cap}-byte line limit "
                          "(SHARDLINE_LINE_MAX_BYTES)")
                write_rejection_streamed(rejected, number, reason, data.raw())
                rejected_count += 1
                continue
            verdict = line_verdict(data, number, kind, dialect)
            if isinstance(verdict, str):
                rejected.write(rejection(number, verdict, data))
                rejected_count += 1
                continue
            key, request, request_json, extra = verdict
            staged = staged_line(number, request_json)
            if len(staged) > max_bytes:
                reason = f"staged line of {len(staged)} bytes exceeds shard_max_bytes ({max_bytes})"
                rejected.write(rejection(number, reason, data))
                rejected_count += 1
                continue
            if add_key(key, number):
                key_bytes = key.encode("utf-8", "surrogatepass")
                header = b"%d %d %d\n" % (number, len(key_bytes), len(data))
                suspects.write(header + key_bytes + data)
            add_line(number, staged, sidecar_line(number, key, extra), estimate_tokens(request))
            failpoint("plan.mid_pass")
    found.shards = sink.shards
    found.lines = lines.lines
    found.rejected = rejected_count
    found.input_bytes = lines.bytes_read
    return found


class _ShardSink:
    """Writes shards one after another: at most one shard's two writers are open at once.

    Lines are handed to the writers in batches (one ``writelines`` per ~256 KiB of staged
    lines, not two ``write`` calls per line: no copy, a long line goes straight through); a
    batch never outlives its shard."""

    def __init__(
        self,
        out: Storage,
        *,
        max_bytes: int,
        max_requests: int,
        max_shards: int | None = None,
        source: str = "",
    ) -> None:
        self._out = out
        self._max_bytes = max_bytes
        self._max_requests = max_requests
        self._max_shards = max_shards
        self._source = source
        self.shards: list[StagedFile] = []
        self._stack: ExitStack | None = None
        self._input: BinaryIO | None = None
        self._sidecar: BinaryIO | None = None
        self._staged: list[bytes] = []
        self._sidecars: list[bytes] = []
        self._requests = 0
        self._bytes = 0
        self._flushed = 0  # bytes of this shard already handed to its writer
        self._tokens = 0
        self._first = 0
        self._last = 0

    def add(self, line: int, staged: bytes, sidecar: bytes, tokens: int) -> None:
        size = len(staged)
        if self._input is None or must_cut(
            self._requests,
            self._bytes,
            size,
            max_bytes=self._max_bytes,
            max_requests=self._max_requests,
        ):
            self._finish(None, None, None)
            self._start(line)
        self._staged.append(staged)
        self._sidecars.append(sidecar)
        self._requests += 1
        self._bytes += size
        self._tokens += tokens
        self._last = line
        if self._bytes - self._flushed >= _BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        assert self._input is not None and self._sidecar is not None
        self._input.writelines(self._staged)
        self._sidecar.writelines(self._sidecars)
        self._staged.clear()
        self._sidecars.clear()
        self._flushed = self._bytes

    def _start(self, line: int) -> None:
        index = len(self.shards)
        if self._max_shards is not None and index >= self._max_shards:
            raise InputFileError(
                self._source,
                f"needs more than {self._max_shards} shards at shard_max_requests="
                f"{self._max_requests} and shard_max_bytes={self._max_bytes} (line {line} "
                "would start one more): raise --shard-max-requests or --shard-max-bytes, or "
                "SHARDLINE_MAX_SHARDS",
            )
        stack = ExitStack()
        self._input = stack.enter_context(self._out.open_write(layout.shard_input(index)))
        self._sidecar = stack.enter_context(self._out.open_write(layout.shard_sidecar(index)))
        self._stack = stack
        self._requests = self._bytes = self._flushed = self._tokens = 0
        self._first = line

    def _finish(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        if exc_type is None:
            self._flush()
        self._staged.clear()
        self._sidecars.clear()
        self._input = self._sidecar = None
        stack.__exit__(exc_type, exc, tb)
        if exc_type is None:
            self.shards.append(
                StagedFile(
                    index=len(self.shards),
                    requests=self._requests,
                    bytes=self._bytes,
                    first_line=self._first,
                    last_line=self._last,
                    estimated_tokens=self._tokens,
                )
            )

    def __enter__(self) -> _ShardSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish(exc_type, exc, tb)


def _sort_out_duplicates(
    keys: KeyLog, found: _Found, dup_rejected: str, work: str
) -> tuple[int, dict[int, str]]:
    """Write the duplicates' rejections (line order) and, per affected shard, a file of the
    line numbers to drop from it. Returns the count and ``{shard index: drop file}``."""
    firsts = [shard.first_line for shard in found.shards]
    drops: dict[int, str] = {}
    count = 0
    drop_file: BinaryIO | None = None
    with (
        open(dup_rejected, "wb") as rejected,
        open(found.suspects_path, "rb") as suspects_file,
        ExitStack() as stack,
    ):
        suspects = _suspects(suspects_file)
        for dup in keys.duplicates():
            key, raw = _suspect(suspects, dup.line)
            reason = f"duplicate key '{key}' (first seen on line {dup.first_line})"
            rejected.write(rejection(dup.line, reason, raw))
            shard = bisect.bisect_right(firsts, dup.line) - 1
            if shard not in drops:
                if drop_file is not None:
                    drop_file.close()
                drops[shard] = os.path.join(work, f"drop-{shard:05d}.txt")
                drop_file = stack.enter_context(open(drops[shard], "wb"))
            assert drop_file is not None
            drop_file.write(b"%d\n" % dup.line)
            count += 1
    return count, drops


def _suspect(suspects: Iterator[tuple[int, str, bytes]], line: int) -> tuple[str, bytes]:
    """The key and raw text kept for ``line`` (suspects come in line order)."""
    for kept, key, raw in suspects:
        if kept == line:
            return key, raw
    raise RunError(f"plan: raw text of duplicate line {line} was not kept")


def _suspects(handle: BinaryIO) -> Iterator[tuple[int, str, bytes]]:
    while header := handle.readline():
        line, key_size, raw_size = (int(part) for part in header.split())
        key = handle.read(key_size).decode("utf-8", "surrogatepass")
        yield line, key, handle.read(raw_size)


def _drop_lines(out: Storage, shard: StagedFile, drop_path: str | None) -> StagedFile:
    """Rewrite a shard's input and sidecar without the lines listed in ``drop_path``.

    A dropped record is recognised by its prefix (``{"key":"N",`` / ``{"line":N,``), so the
    kept ones are copied without being parsed."""
    if drop_path is None:
        return shard
    requests = removed_bytes = removed_tokens = first = 0
    last = b""
    for kept, record in _without_lines(
        out, layout.shard_input(shard.index), drop_path, b'{"key":"%d",', shard.index
    ):
        if kept:
            requests += 1
            last = record
            if not first:
                first = staged_line_number(record)
        else:
            removed_bytes += len(record)
            removed_tokens += estimate_tokens(orjson.loads(record)["request"])
    for _ in _without_lines(
        out, layout.shard_sidecar(shard.index), drop_path, b'{"line":%d,', shard.index
    ):
        pass
    if requests == 0:
        out.delete(layout.shard_input(shard.index))
        out.delete(layout.shard_sidecar(shard.index))
    return StagedFile(
        index=shard.index,
        requests=requests,
        bytes=shard.bytes - removed_bytes,
        first_line=first,
        last_line=staged_line_number(last) if last else 0,
        estimated_tokens=shard.estimated_tokens - removed_tokens,
    )


def _without_lines(
    out: Storage, key: str, drop_path: str, head: bytes, shard: int
) -> Iterator[tuple[bool, bytes]]:
    """Rewrite object ``key`` without the records whose line numbers ``drop_path`` lists
    (ascending); yields ``(kept, record)`` for each record. ``head % line`` is how a
    dropped record starts: our own formats put the line first, so nothing is parsed."""
    with (
        open(drop_path, "rb") as drop_file,
        out.open_read(key) as source,
        out.open_write(key) as target,
    ):
        drops = (head % int(line) for line in drop_file)
        drop = next(drops, None)
        for record in source:
            if drop is not None and record.startswith(drop):
                drop = next(drops, None)
                yield False, record
                continue
            target.write(record)
            yield True, record
        if drop is not None:
            raise RunError(f"plan: {drop!r} is not in shard {shard}")


def _renumber(out: Storage, shards: list[StagedFile]) -> list[StagedFile]:
    """Drop emptied shards and move the later ones down so indices stay 0..n-1."""
    kept: list[StagedFile] = []
    for shard in shards:
        if shard.requests == 0:
            continue
        index = len(kept)
        if shard.index == index:
            kept.append(shard)
            continue
        for name in (layout.shard_input, layout.shard_sidecar):
            with (
                out.open_read(name(shard.index)) as source,
                out.open_write(name(index)) as target,
            ):
                shutil.copyfileobj(source, target, _COPY_CHUNK)
            out.delete(name(shard.index))
        kept.append(shard.model_copy(update={"index": index}))
    return kept


def _merge_rejections(first: BinaryIO, second: BinaryIO, target: BinaryIO) -> None:
    """Merge two rejected files by line. Records of ``first`` may be huge (oversize lines):
    they are copied in pieces; ``second`` holds duplicates, bounded by the line cap."""
    pending = heapq.merge(_record_heads(first), ((record_line_number(r), r, False) for r in second))
    for _line, head, partial in pending:
        target.write(head)
        if partial:
            while True:
                piece = first.readline(_COPY_CHUNK)
                target.write(piece)
                if not piece or piece.endswith(b"\n"):
                    break


def _record_heads(handle: BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(line, first bytes of the record, whether the rest still has to be read) — the caller
    copies the rest before asking for the next record."""
    while head := handle.readline(_HEAD):
        yield record_line_number(head), head, not head.endswith(b"\n")
