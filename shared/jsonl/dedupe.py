"""Duplicate keys over tens of millions of lines, in small memory.

During the planner's single pass every accepted key is hashed (BLAKE2b, 128 bits) and the
hash is appended with its line number to one of 256 partitions (chosen by the hash's first
byte), each buffered in memory up to 32 KiB and then appended to its file on local disk.
After the pass each partition is read on its own into a dict ``hash -> first line``: a
later line whose hash is already there is a duplicate of that first line. Memory: the
write buffers (2 MiB at most), then one partition's dict, about 1/256 of the keys: for 50 M
keys about 200 k entries (~25 MB). Disk: 24 bytes per key.

Hash equality is taken as key equality. Two different keys share a 128-bit hash with
probability about n²/2¹²⁹ — around 4·10⁻²⁴ for 50 M keys — far below the odds of a disk
error, so no second check is made.

The pass also asks, for each key, "might this be a duplicate?" from a Bloom filter in
``bloom_bytes`` (default 16 MiB), blocked: a key sets three bits of one 64-bit word, so a
probe is one memory access rather than three. It never says no for a real duplicate, so the
planner keeps the raw text of only those lines to write their rejections later; with the
default filter a false "maybe" costs a little disk: about 0.4 % of lines are flagged over a
pass of 10 M keys (0.2 % with three independent bits), about 11 % over 50 M keys.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import NamedTuple

from shared.jsonl.sort import LineSorter

PARTITIONS = 256
DEFAULT_BLOOM_BYTES = 16 * 1024 * 1024
_RECORD = struct.Struct("<16sQ")
_PROBES = struct.Struct("<IBBB")
_blake2b = hashlib.blake2b
#: A partition's records are buffered in memory up to this size (256 x 8 KiB = 2 MiB; 341
#: records a flush, so a 1 M-line plan appends ~3,000 times: ~0.1 s against its ~10 s).
_FLUSH_BYTES = 8 * 1024


class Duplicate(NamedTuple):
    """Line ``line`` repeats the key first seen on line ``first_line``."""

    line: int
    first_line: int


class KeyLog:
    """Collects (key hash, line) pairs on disk; finds duplicates once the pass is over."""

    def __init__(
        self,
        tmp_dir: str | None = None,
        *,
        bloom_bytes: int = DEFAULT_BLOOM_BYTES,
        memory_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if bloom_bytes < 1 or bloom_bytes & (bloom_bytes - 1):
            raise ValueError("bloom_bytes must be a power of two")
        self._dir = tempfile.mkdtemp(prefix="keylog-", dir=tmp_dir)
        self._tmp_dir = tmp_dir
        self._memory = memory_bytes
        self._buffers = [bytearray() for _ in range(PARTITIONS)]
        self._bloom = memoryview(bytearray(max(bloom_bytes, 8))).cast("Q")
        self._mask = len(self._bloom) - 1
        self.count = 0

    def add(self, key: str, line: int) -> bool:
        """Record ``key`` on ``line`` (lines must come in increasing order); True when the key
        may have been added before (always True for a real duplicate)."""
        digest = _blake2b(key.encode(), digest_size=16).digest()
        first = digest[0]
        buffer = self._buffers[first]
        buffer += _RECORD.pack(digest, line)
        if len(buffer) >= _FLUSH_BYTES:
            self._flush(first)
        self.count += 1
        # Three bits of one 64-bit word (one memory access), chosen by the hash.
        word, one, two, three = _PROBES.unpack_from(digest)
        word &= self._mask
        pattern = 1 << (one & 63) | 1 << (two & 63) | 1 << (three & 63)
        words = self._bloom
        seen = words[word]
        if seen & pattern == pattern:
            return True
        words[word] = seen | pattern
        return False

    def duplicates(self) -> Iterator[Duplicate]:
        """Every duplicate, in line order. Call once, after the last ``add``."""
        self._bloom = memoryview(bytearray(8)).cast("Q")  # the filter's job is done
        with LineSorter(_first_int, memory_bytes=self._memory, tmp_dir=self._tmp_dir) as sorter:
            for index in range(PARTITIONS):
                data = bytes(self._buffers[index])
                self._buffers[index] = bytearray()
                path = self._path(index)
                if os.path.exists(path):
                    with open(path, "rb") as handle:
                        data = handle.read() + data  # one partition: ~1/256 of 24 B per key
                    os.unlink(path)
                first: dict[bytes, int] = {}
                for digest, line in _RECORD.iter_unpack(data):
                    seen = first.setdefault(digest, line)
                    if seen != line:
                        sorter.add_keyed(line, b"%d %d\n" % (line, seen))
            for later, record in sorter.sorted_keyed():
                yield Duplicate(later, int(record.split()[1]))

    def close(self) -> None:
        self._buffers = []
        for name in os.listdir(self._dir):
            os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)

    def _path(self, index: int) -> str:
        return os.path.join(self._dir, f"{index:03d}")

    def _flush(self, index: int) -> None:
        with open(self._path(index), "ab") as handle:
            handle.write(self._buffers[index])
        self._buffers[index] = bytearray()

    def __enter__(self) -> KeyLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _first_int(record: bytes) -> int:
    return int(record[: record.index(b" ")])
