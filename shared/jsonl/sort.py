"""External merge sort of byte lines by an integer key, in bounded memory; stable.

Lines are buffered with their keys until their estimated footprint passes ``memory_bytes``,
then sorted and spilled to a temporary file (a "run"); the sorted stream is a
``heapq.merge`` of the runs and the last buffer. Both ``list.sort`` and ``heapq.merge`` keep
equal keys in arrival order, so the sort is stable. More than ``fan_in`` runs are first
merged in groups (another pass over the data) so open files stay bounded. Input that fits in
the budget never touches disk.

Lines that arrive in key order, or nearly (the provider's output is documented to follow its
input), leave runs that do not overlap: they are read one after another, without a merge.

Keys travel with the lines, and no Python code runs per line to sort, spill or merge them:
the buffer holds the lines and, beside them, one integer per line, ``key << 24 | arrival``,
which sorts as (key, arrival) by itself; a run is spilled with its keys in a file of 64-bit
integers beside it, zipped back with its lines when read. A caller that already knows a
line's key hands it over (:meth:`LineSorter.add_keyed`) and can read it back with the line
(:meth:`LineSorter.sorted_keyed`). Keys are integers in the signed 64-bit range.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator
from functools import partial
from itertools import chain, repeat
from operator import and_, itemgetter, rshift
from types import TracebackType
from typing import BinaryIO

#: Per sorter, and a worker collects in several threads at once. Halving it from 64 MiB made
#: no difference to outputs that spill either way, and ~15 % slower collects of outputs
#: between the two (benchmarks/RESULTS.md, "Merge"), for up to 32 MB less per thread.
DEFAULT_MEMORY_BYTES = 32 * 1024 * 1024
#: Python's per-line bookkeeping besides the data: the bytes object's header (33), the
#: ordering integer (32), two list slots (16) and the sort's scratch space.
LINE_OVERHEAD_BYTES = 100
_ARRIVAL_BITS = 24  # a buffer holds at most 2**24 lines (16 M): it is spilled before
_ARRIVAL = (1 << _ARRIVAL_BITS) - 1
_IO_BUFFER = 1 << 16
_KEY = itemgetter(0)
_LINE = itemgetter(1)
_KEYS = ".keys"  # a run's keys, beside it: 64-bit integers in the run's order
_KEYS_PER_READ = 8192
_as_keys = partial(array, "q")

Keyed = tuple[int, bytes]


class LineSorter:
    """Add lines (``add`` / ``add_keyed``), then iterate them once in key order (``sorted`` /
    ``sorted_keyed``).

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
        self._lines: list[bytes] = []
        self._order: list[int] = []  # key << _ARRIVAL_BITS | index in _lines
        self._used = 0
        self._runs: list[str] = []
        self._spans: dict[str, tuple[int, int]] = {}  # a spilled run's first and last key
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
        self.add_keyed(self._key(line), line)

    def add_keyed(self, key: int, line: bytes) -> None:
        """Add one line ending in ``\\n`` under ``key``."""
        lines = self._lines
        self._order.append(key << _ARRIVAL_BITS | len(lines))
        lines.append(line)
        self.count += 1
        self._used += len(line) + LINE_OVERHEAD_BYTES
        if self._used >= self._budget or len(lines) > _ARRIVAL:
            self._spill()

    def sorted(self) -> Iterator[bytes]:
        """Every added line, in key order (stable). Call once, after the last ``add``."""
        return map(_LINE, self.sorted_keyed())

    def sorted_keyed(self) -> Iterator[Keyed]:
        """``(key, line)`` for every added line, in key order (stable). Call once."""
        if not self._runs:
            order, lines = self._sorted_buffer()
            return zip(_keys_of(order), _lines_in(order, lines), strict=True)
        if self._lines:
            self._spill()
        return self._merged_runs()

    def close(self) -> None:
        self._close_open()
        for path in self._runs:
            _unlink_run(path)
        self._runs = []
        self._lines = []
        self._order = []
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

    def _merged_runs(self) -> Iterator[Keyed]:
        if all(
            self._spans[earlier][1] <= self._spans[later][0]
            for earlier, later in zip(self._runs, self._runs[1:], strict=False)
        ):  # lines came (nearly) in order: the runs follow one another, no merge needed
            for path in self._runs:
                yield from self._merge([path])
                self._close_open()
            return
        while len(self._runs) > self._fan_in:
            group, self._runs = self._runs[: self._fan_in], self._runs[self._fan_in :]
            merged = self._new_run_path()
            with (
                open(merged, "wb", buffering=_IO_BUFFER) as lines,
                open(merged + _KEYS, "wb", buffering=_IO_BUFFER) as keys,
            ):
                pending = array("q")
                for key, line in self._merge(group):
                    lines.write(line)
                    pending.append(key)
                    if len(pending) >= _KEYS_PER_READ:
                        pending.tofile(keys)
                        pending = array("q")
                pending.tofile(keys)
            self._close_open()
            for path in group:
                _unlink_run(path)
            self._runs.insert(0, merged)  # earlier lines first keeps the merge stable
        yield from self._merge(self._runs)
        self._close_open()

    def _sorted_buffer(self) -> tuple[list[int], list[bytes]]:
        """The buffer's ordering integers, sorted (so by key, then arrival), and its lines;
        the buffer is emptied."""
        order, lines = self._order, self._lines
        self._order, self._lines, self._used = [], [], 0
        order.sort()
        return order, lines

    def _spill(self) -> None:
        order, lines = self._sorted_buffer()
        path = self._new_run_path()
        self._spans[path] = (order[0] >> _ARRIVAL_BITS, order[-1] >> _ARRIVAL_BITS)
        with open(path, "wb", buffering=_IO_BUFFER) as out:
            out.writelines(_lines_in(order, lines))
        with open(path + _KEYS, "wb") as keys:
            array("q", _keys_of(order)).tofile(keys)
        self._runs.append(path)

    def _new_run_path(self) -> str:
        handle, path = tempfile.mkstemp(prefix="sort-run-", suffix=".jsonl", dir=self._tmp_dir)
        os.close(handle)
        return path

    def _merge(self, paths: list[str]) -> Iterator[Keyed]:
        """The runs' ``(key, line)`` pairs in order, built without Python code per line: a
        run's keys are read back from its keys file in blocks and zipped with its lines."""
        streams: list[Iterator[Keyed]] = []
        for path in paths:
            lines = open(path, "rb", buffering=_IO_BUFFER)  # noqa: SIM115 - closed below
            self._open.append(lines)
            keys = open(path + _KEYS, "rb")  # noqa: SIM115 - closed below
            self._open.append(keys)
            blocks = iter(partial(keys.read, _KEYS_PER_READ * 8), b"")
            streams.append(zip(chain.from_iterable(map(_as_keys, blocks)), lines, strict=True))
        return heapq.merge(*streams, key=_KEY)

    def _close_open(self) -> None:
        for handle in self._open:
            handle.close()
        self._open = []


def _keys_of(order: list[int]) -> Iterator[int]:
    return map(rshift, order, repeat(_ARRIVAL_BITS))


def _lines_in(order: list[int], lines: list[bytes]) -> Iterator[bytes]:
    return map(lines.__getitem__, map(and_, order, repeat(_ARRIVAL)))


def _unlink_run(path: str) -> None:
    for name in (path, path + _KEYS):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
