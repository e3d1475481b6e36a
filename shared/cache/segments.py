"""The cache's on-storage format: segments of entries, one per bucket per collected part.

A segment is one object ``v1/<bucket>/<written ms>-<random>.seg``::

    SLC1 <entries> <index bytes>\\n
    <key> <offset> <length>\\n        one per entry, sorted by key (the index)
    <response bytes>...               the data, each entry's response JSON

Offsets count from the end of the index. Index and data are both in key order. A lookup
reads only headers and indexes (a few dozen bytes per entry), and then, for the segments
holding hits, one ranged read per run of nearby hits; responses that are not wanted are
never downloaded at a 0 % hit rate. Segments are written whole (``open_write`` is
atomic), so a reader never sees a half-written one; the time in the name is what eviction
by age reads.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import BinaryIO

from shared.errors import StorageError

ROOT = "v1"
SUFFIX = ".seg"
MAGIC = b"SLC1"


@dataclass(frozen=True, slots=True)
class Hit:
    """Where one cached response is: its segment and its bytes within the object."""

    segment: str
    offset: int
    length: int


def segment_key(bucket: str, written_ms: int | None = None) -> str:
    stamp = int(time.time() * 1000) if written_ms is None else written_ms
    return f"{ROOT}/{bucket}/{stamp:013d}-{secrets.token_hex(4)}{SUFFIX}"


def written_ms(key: str) -> int:
    """When a segment was written, from its name (0 for a name not ours)."""
    name = key.rsplit("/", 1)[-1]
    stamp = name.split("-", 1)[0]
    return int(stamp) if stamp.isdigit() else 0


def write_segment(target: BinaryIO, entries: list[tuple[bytes, int, int]], data: BinaryIO
                  ) -> None:
    """Write a segment: ``entries`` are ``(key, offset, length)`` into ``data`` (a local
    file holding the responses back to back, in any order).

    The data is written in key order, like the index, so the keys of one lookup slice (a
    key prefix) are one contiguous range of the object: one ranged read each."""
    entries.sort()
    index = []
    position = 0
    for key, _offset, length in entries:
        index.append(b"%s %d %d\n" % (key, position, length))
        position += length
    body = b"".join(index)
    target.write(b"%s %d %d\n" % (MAGIC, len(entries), len(body)))
    target.write(body)
    for _key, offset, length in entries:
        data.seek(offset)
        target.write(data.read(length))


def read_index(segment: str, reader: BinaryIO) -> tuple[int, list[tuple[bytes, int, int]]]:
    """The data start and the ``(key, offset, length)`` entries of a segment."""
    header = reader.readline(256)
    fields = header.split()
    if len(fields) != 3 or fields[0] != MAGIC:
        raise StorageError(f"cache segment {segment}: not a segment (header {header[:40]!r})")
    size = int(fields[2])
    index = reader.read(size)
    if len(index) != size:
        raise StorageError(f"cache segment {segment}: index cut short")
    entries = []
    for row in index.splitlines():
        key, offset, length = row.split(b" ")
        entries.append((key, int(offset), int(length)))
    return len(header) + size, entries
