"""The request cache in storage: look up many keys at once, remember a part's responses,
report and evict. Shared by every worker and every run (``SHARDLINE_CACHE_URI``).

Writers never coordinate: each collected part writes new segments (one per bucket its
keys fall in), never touching existing objects, so concurrent writers on any storage are
safe. When two segments hold the same key, the newest wins.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from pydantic import BaseModel

from shared.cache.keys import bucket_of
from shared.cache.segments import (
    ROOT,
    SUFFIX,
    Hit,
    read_index,
    segment_key,
    write_segment,
    written_ms,
)
from shared.errors import StorageError
from shared.storage import ObjectInfo, Storage

#: A gap longer than this between two hits of one segment starts a new ranged read.
SKIP_REOPEN_BYTES = 1 << 20
DAY_MS = 86_400_000


@dataclass
class _Spool:
    """One bucket's responses waiting in a local file to become a segment."""

    data: BinaryIO
    entries: list[tuple[bytes, int, int]]
    size: int = 0


class CacheStats(BaseModel):
    segments: int
    entries: int
    bytes: int
    oldest: datetime | None
    newest: datetime | None


class PruneReport(BaseModel):
    deleted_segments: int
    deleted_bytes: int
    kept_segments: int
    kept_bytes: int


class CompactReport(BaseModel):
    merged_groups: int
    merged_segments: int


class RequestCache:
    """Segments under ``storage`` (see :mod:`shared.cache.segments`)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # ---- lookups ---------------------------------------------------------------------

    def segments(self, bucket: str) -> list[ObjectInfo]:
        """The bucket's segments, newest first."""
        found = [info for info in self.storage.list(f"{ROOT}/{bucket}/")
                 if info.key.endswith(SUFFIX)]
        found.sort(key=lambda info: info.key, reverse=True)
        return found

    def index_rows(self, bucket: str) -> Iterator[tuple[bytes, Hit]]:
        """Every entry of the bucket, newest segment first: reads only the listing and the
        segments' headers and indexes, never a response."""
        for info in self.segments(bucket):
            with self.storage.open_read(info.key) as reader:
                start, entries = read_index(info.key, reader)
            for key, offset, length in entries:
                yield key, Hit(info.key, start + offset, length)

    def lookup(self, bucket: str, wanted: set[bytes]) -> dict[bytes, Hit]:
        """Which of ``wanted`` (keys of one bucket) are cached, and where (newest wins)."""
        hits: dict[bytes, Hit] = {}
        if wanted:
            for key, hit in self.index_rows(bucket):
                if key in wanted and key not in hits:
                    hits[key] = hit
        return hits

    def fetch(self, hits: dict[bytes, Hit]) -> Iterator[tuple[bytes, bytes]]:
        """``(key, response bytes)`` of every hit, one ranged read per run of nearby hits."""
        by_segment: dict[str, list[tuple[bytes, Hit]]] = {}
        for key, hit in hits.items():
            by_segment.setdefault(hit.segment, []).append((key, hit))
        for segment, found in by_segment.items():
            yield from self._read_hits(segment, found)

    def _read_hits(self, segment: str, hits: list[tuple[bytes, Hit]]
                   ) -> Iterator[tuple[bytes, bytes]]:
        hits.sort(key=lambda item: item[1].offset)
        with ExitStack() as stack:
            reader: BinaryIO | None = None
            position = 0
            for key, hit in hits:
                gap = hit.offset - position
                if reader is None or gap < 0 or gap > SKIP_REOPEN_BYTES:
                    stack.close()
                    reader = stack.enter_context(
                        self.storage.open_read(segment, offset=hit.offset))
                    position, gap = hit.offset, 0
                if gap:
                    reader.read(gap)
                value = reader.read(hit.length)
                if len(value) != hit.length:
                    raise StorageError(f"cache segment {segment}: entry cut short")
                position = hit.offset + hit.length
                yield key, value

    # ---- writes ----------------------------------------------------------------------

    def remember(self, entries: Iterable[tuple[bytes, bytes]], *, tmp_dir: str | None = None,
                 stamp_ms: int | None = None) -> int:
        """Store ``(key, response bytes)`` pairs: one new segment per bucket they fall in
        (stamped now, or ``stamp_ms``).

        Responses are spooled to local files first, so memory holds only the index rows
        (about 60 bytes an entry), whatever the responses' size."""
        count = 0
        with tempfile.TemporaryDirectory(prefix="shardline-cache-", dir=tmp_dir) as work, \
                ExitStack() as stack:
            spools: dict[str, _Spool] = {}
            for key, value in entries:
                bucket = bucket_of(key)
                spool = spools.get(bucket)
                if spool is None:
                    data = stack.enter_context(open(os.path.join(work, bucket), "w+b"))
                    spool = spools[bucket] = _Spool(data, [])
                spool.entries.append((key, spool.size, len(value)))
                spool.data.write(value)
                spool.size += len(value)
                count += 1
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda item: self._write(item[0], item[1], stamp_ms),
                              spools.items()))
        return count

    def _write(self, bucket: str, spool: _Spool, stamp_ms: int | None) -> None:
        with self.storage.open_write(segment_key(bucket, stamp_ms)) as target:
            write_segment(target, spool.entries, spool.data)

    # ---- operating it ----------------------------------------------------------------

    def _all(self) -> list[ObjectInfo]:
        return [info for info in self.storage.list(f"{ROOT}/") if info.key.endswith(SUFFIX)]

    def stats(self) -> CacheStats:
        """Segments, entries (reads every header), bytes, and the oldest and newest write."""
        infos = self._all()
        entries = 0
        for info in infos:
            with self.storage.open_read(info.key) as reader:
                fields = reader.readline(256).split()
            entries += int(fields[1]) if len(fields) == 3 else 0
        stamps = [written_ms(info.key) for info in infos]
        return CacheStats(
            segments=len(infos),
            entries=entries,
            bytes=sum(info.size for info in infos),
            oldest=_when(min(stamps)) if stamps else None,
            newest=_when(max(stamps)) if stamps else None,
        )

    def prune(self, *, max_age: timedelta | None = None, max_bytes: int | None = None,
              now: datetime | None = None) -> PruneReport:
        """Delete segments older than ``max_age``, then the oldest ones until the cache
        holds at most ``max_bytes``. Whole segments go: an entry lives as long as the part
        that wrote it. A run planning meanwhile may find a hit whose segment is then gone:
        its plan fails and is retried, and looks the keys up again."""
        infos = sorted(self._all(), key=lambda info: written_ms(info.key))
        cutoff = None
        if max_age is not None:
            cutoff = ((now or datetime.now(UTC)) - max_age).timestamp() * 1000
        total = sum(info.size for info in infos)
        deleted = deleted_bytes = 0
        for info in infos:
            too_old = cutoff is not None and written_ms(info.key) < cutoff
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                continue
            self.storage.delete(info.key)
            total -= info.size
            deleted += 1
            deleted_bytes += info.size
        return PruneReport(deleted_segments=deleted, deleted_bytes=deleted_bytes,
                           kept_segments=len(infos) - deleted, kept_bytes=total)


    def compact(self) -> CompactReport:
        """Merge each bucket's segments of the same UTC day into one (newest entry wins),
        so lookups read a few objects per bucket however many parts wrote them.

        The merged segment keeps the newest merged time, so eviction by age still works by
        the day. Segments written meanwhile are left alone; a plan that read an index just
        before its segment went away plans without the cache (its lookups fail cleanly)."""
        merged = removed = 0
        groups: dict[tuple[str, int], list[ObjectInfo]] = {}
        for info in self._all():
            bucket = info.key.split("/")[1]
            groups.setdefault((bucket, written_ms(info.key) // DAY_MS), []).append(info)
        for _group, infos in sorted(groups.items()):
            if len(infos) < 2:
                continue
            infos.sort(key=lambda info: info.key, reverse=True)  # newest first
            newest = written_ms(infos[0].key)
            self.remember(self._newest_entries(infos), stamp_ms=newest)
            for info in infos:
                self.storage.delete(info.key)
            merged += 1
            removed += len(infos)
        return CompactReport(merged_groups=merged, merged_segments=removed)

    def _newest_entries(self, infos: list[ObjectInfo]) -> Iterator[tuple[bytes, bytes]]:
        """Every key of ``infos`` (newest first) once, with the newest response; holds the
        group's keys in memory (about 100 bytes each)."""
        seen: set[bytes] = set()
        for info in infos:
            with self.storage.open_read(info.key) as reader:
                start, entries = read_index(info.key, reader)
                wanted = {key: Hit(info.key, start + offset, length)
                          for key, offset, length in entries if key not in seen}
            seen.update(wanted)
            yield from self.fetch(wanted)

def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
