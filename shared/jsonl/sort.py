"""External merge sort of byte lines by an integer key, in bounded memory; stable.

Lines are buffered until their estimated footprint passes ``memory_bytes``, then sorted and
spilled to a temporary file (a "run"); the sorted stream is a ``heapq.merge`` of the runs and
the last buffer. Both ``list.sort`` and ``heapq.merge`` keep equal keys in arrival order, so
the sort is stable. More than ``fan_in`` runs are first merged in groups (another pass over
the data) so open files stay bounded. Input that fits in the budget never touches disk.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import BinaryIO

DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
#: Python's per-line bookkeeping (bytes object header, list slot, sort key) besides the data.
LINE_OVERHEAD_BYTES = 100
_IO_BUFFER = 1 << 16


class LineSorter:
    """Add lines (``add``), then iterate them once in key order (``sorted``).

    Use as a context manager: temporary run files are removed on exit.
    """

    def __init__(
        self,
        key: Callable[[bytes], int],
        *,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        tmp_dir: str | None = None,
        fan_in: int = 64,
    ) -> None:
        if fan_in < 2:
            raise ValueError("fan_in must be at least 2")
        self._key = key
        self._budget = memory_bytes
        self._tmp_dir = tmp_dir
        self._fan_in = fan_in
        self._buffer: list[bytes] = []
        self._used = 0
        self._runs: list[str] = []
        self._open: list[BinaryIO] = []
        self.count = 0

    @property
    def runs(self) -> int:
        """How many sorted runs were spilled to disk so far."""
        return len(self._runs)

    def add(self, line: bytes) -> None:
        """Add one line; a missing final ``\\n`` is supplied."""
        if not line.endswith(b"\n"):
            line += b"\n"
        self._buffer.append(line)
        self.count += 1
        self._used += len(line) + LINE_OVERHEAD_BYTES
        if self._used >= self._budget:
            self._spill()

    def sorted(self) -> Iterator[bytes]:
        """Every added line, in key order (stable). Call once, after the last ``add``."""
        if not self._runs:
            buffer, self._buffer, self._used = self._buffer, [], 0
            buffer.sort(key=self._key)
            yield from buffer
            return
        if self._buffer:
            self._spill()
        while len(self._runs) > self._fan_in:
            group, self._runs = self._runs[: self._fan_in], self._runs[self._fan_in :]
            merged = self._new_run_path()
            with open(merged, "wb", buffering=_IO_BUFFER) as out:
                out.writelines(self._merge(group))
            self._close_open()
            for path in group:
                os.unlink(path)
            self._runs.insert(0, merged)  # earlier lines first keeps the merge stable
        yield from self._merge(self._runs)
        self._close_open()

    def close(self) -> None:
        self._close_open()
        for path in self._runs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._runs = []
        self._buffer = []
        self._used = 0

    def __enter__(self) -> LineSorter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spill(self) -> None:
        self._buffer.sort(key=self._key)
        path = self._new_run_path()
        with open(path, "wb", buffering=_IO_BUFFER) as out:
            out.writelines(self._buffer)
        self._runs.append(path)
        self._buffer = []
        self._used = 0

    def _new_run_path(self) -> str:
        handle, path = tempfile.mkstemp(prefix="sort-run-", suffix=".jsonl", dir=self._tmp_dir)
        os.close(handle)
        return path

    def _merge(self, paths: list[str]) -> Iterator[bytes]:
        files: list[BinaryIO] = []
        for path in paths:
            files.append(open(path, "rb", buffering=_IO_BUFFER))  # noqa: SIM115 - closed below
        self._open.extend(files)
        return heapq.merge(*files, key=self._key)

    def _close_open(self) -> None:
        for handle in self._open:
            handle.close()
        self._open = []
