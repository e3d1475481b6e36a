"""Write output lines in a deterministic order other than the input's, in bounded memory.

Lines are dealt into ``buckets`` temp files by a seeded hash of their input index, then the
buckets are concatenated. Line 1 always lands in the first bucket and line 0 in the last,
so any output of two lines or more differs from input order (a client that assumes order
fails every time, not by chance). Memory is one write buffer per bucket.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import BinaryIO

_BUFFER = 1 << 16


class OutputWriter:
    """Collects output lines (``write(index, line)``) into ``target``; scrambled unless told."""

    def __init__(
        self, target: Path, scratch: Path, *, keep_order: bool, buckets: int, seed: int
    ) -> None:
        self._target = target
        self._scratch = scratch
        self._keep_order = keep_order
        self._seed = seed
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.lines = 0
        target.parent.mkdir(parents=True, exist_ok=True)
        self._out: BinaryIO = target.open("wb")
        self._buckets: list[BinaryIO] = []
        if not keep_order:
            scratch.mkdir(parents=True, exist_ok=True)
            self._buckets = [
                (scratch / f"bucket-{i:03d}").open("w+b", buffering=_BUFFER) for i in range(buckets)
            ]

    def _bucket(self, index: int) -> int:
        last = len(self._buckets) - 1
        if index == 0:
            return last
        if index == 1:
            return 0
        mixed = (index * 0x9E3779B97F4A7C15 + self._seed * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        return (mixed >> 29) % len(self._buckets)

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def write(self, index: int, line: bytes) -> None:
        """One output line (without its newline) for input line ``index``."""
        self.lines += 1
        if self._keep_order:
            self._emit(line + b"\n")
        else:
            self._buckets[self._bucket(index)].write(line + b"\n")

    def finish(self) -> None:
        """Concatenate the buckets into the target and close everything."""
        for bucket in self._buckets:
            bucket.seek(0)
            while block := bucket.read(_BUFFER):
                self._emit(block)
            bucket.close()
        self._out.close()
        self._buckets = []
        shutil.rmtree(self._scratch, ignore_errors=True)

    def abort(self) -> None:
        """Close and remove everything written so far."""
        for bucket in self._buckets:
            bucket.close()
        self._out.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
        self._target.unlink(missing_ok=True)
