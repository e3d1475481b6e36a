"""Physical lines of a binary stream, numbered from 1, with a hard cap on memory per line.

Rules (the whole pipeline counts lines this way):

- a line ends at ``\\n``; a final line without ``\\n`` is a line; a trailing ``\\n`` does not
  start a new one; an empty file has no lines;
- ``\\r\\n`` counts as one terminator (the ``\\r`` is dropped); a lone ``\\r`` is content;
- a UTF-8 byte order mark at the very start of the stream is dropped.

A line whose content is longer than ``max_bytes`` is never held whole in memory: it is
spooled to a temporary file and handed over as a reader, so the rejected record can still
carry every byte of it. Lines up to the cap are read with one ``readline(cap)`` call, the
fast path; so a caller holds at most ``max_bytes + 2`` bytes of one line.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BOM = b"\xef\xbb\xbf"
_SPOOL_CHUNK = 1 << 20


@dataclass(slots=True)
class Line:
    """One physical line. ``data`` is its content without terminator; for an oversize line
    ``data`` is empty and :meth:`raw` streams the content from a spool file."""

    number: int
    data: bytes
    size: int
    oversize: bool = False
    spool: BinaryIO | None = None

    def raw(self) -> BinaryIO:
        """The content as a reader (valid until the iteration moves on)."""
        if self.spool is not None:
            self.spool.seek(0)
            return self.spool
        return io.BytesIO(self.data)


class LineReader:
    """Iterate the :class:`Line` s of ``reader``; ``bytes_read`` counts every byte consumed."""

    def __init__(self, reader: BinaryIO, *, max_bytes: int, tmp_dir: str | None = None) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._reader = reader
        self._max = max_bytes
        self._tmp_dir = tmp_dir
        self.bytes_read = 0
        self.lines = 0

    def __iter__(self) -> Iterator[Line]:
        for number, item in enumerate(self.contents(), start=1):
            if isinstance(item, Line):
                yield item
            else:
                yield Line(number, item, len(item))

    def contents(self) -> Iterator[bytes | Line]:
        """The lines in order, a line within the cap as its content bytes (the n-th item is
        line n) and an oversize one as a :class:`Line`: the planner's hot loop, without an
        object per line. ``lines`` and ``bytes_read`` are current between items."""
        readline = self._reader.readline
        limit = self._max + 2  # room for "\r\n" after a line of exactly max_bytes
        cap = self._max
        chunk = readline(limit)
        short = limit  # a chunk shorter than this ends the stream (the first may lose a BOM)
        if chunk.startswith(BOM):
            self.bytes_read += 3
            chunk = chunk[3:]
            short -= 3
            if not chunk:  # the stream is only a BOM: one empty line
                self.lines = 1
                yield chunk
                return
        while chunk:
            self.bytes_read += len(chunk)
            self.lines += 1
            if chunk[-1] == 10:  # b"\n"
                data = chunk[:-2] if chunk[-2:-1] == b"\r" else chunk[:-1]
            elif len(chunk) < short:  # the final line, without terminator
                data = chunk
            else:
                yield from self._spooled(self.lines, chunk)
                chunk = readline(limit)
                short = limit
                continue
            short = limit
            if len(data) > cap:
                yield Line(self.lines, data, len(data), oversize=True)
            else:
                yield data
            chunk = readline(limit)

    def _spooled(self, number: int, head: bytes) -> Iterator[Line]:
        """Read the rest of a line longer than the fast path allows into a temporary file."""
        readline = self._reader.readline
        with tempfile.TemporaryFile(dir=self._tmp_dir) as spool:
            size = 0
            buf = head
            carry = b""  # a trailing "\r" held back until we know whether "\n" follows
            while True:
                buf = carry + buf if carry else buf
                carry = b""
                if buf.endswith(b"\n"):
                    buf = buf[:-2] if buf.endswith(b"\r\n") else buf[:-1]
                    spool.write(buf)
                    size += len(buf)
                    break
                following = readline(_SPOOL_CHUNK)
                self.bytes_read += len(following)
                if not following:
                    spool.write(buf)
                    size += len(buf)
                    break
                if buf.endswith(b"\r"):
                    carry, buf = b"\r", buf[:-1]
                spool.write(buf)
                size += len(buf)
                buf = following
            spool.seek(0)
            if size <= self._max:  # only the BOM made it look long
                yield Line(number, spool.read(), size)
            else:
                yield Line(number, b"", size, oversize=True, spool=spool)
