"""What an input's bytes are, told from its first bytes: JSONL, gzip of JSONL, or refused.

- gzip (``1f 8b``, whatever the name: people ship ``.jsonl.gz``) is decompressed as it is
  read, one buffer at a time, so memory stays flat and line numbers are the uncompressed
  file's. Concatenated gzip members (``cat a.gz b.gz``) read as one stream, as ``zcat`` does.
- UTF-16/UTF-32 (a byte order mark), zstd, bzip2, xz and zip are refused as a whole with an
  ``InputFileError`` that names the format: every line would otherwise be rejected one by
  one as "invalid UTF-8", which tells nobody what is wrong.
- Anything else is read as it is (the UTF-8 byte order mark is the line reader's business).

The magic bytes decide, not the name: a ``.gz`` that is not gzip is read as text (its lines
say what they are), and a gzip named ``.jsonl`` is still decompressed.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast

from shared.errors import InputFileError

GZIP_MAGIC = b"\x1f\x8b"
_BUFFER = 1 << 20

#: Byte order marks and magic numbers of what we refuse, longest first where one prefixes
#: another (UTF-32 LE starts with UTF-16 LE's mark).
_REFUSED: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "UTF-32 text (byte order mark FF FE 00 00)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (byte order mark 00 00 FE FF)"),
    (b"\xff\xfe", "UTF-16 text (byte order mark FF FE)"),
    (b"\xfe\xff", "UTF-16 text (byte order mark FE FF)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"PK\x03\x04", "a zip archive"),
)
_ADVICE = {
    "UTF": "input must be UTF-8 JSONL (convert it, e.g. iconv -f UTF-16 -t UTF-8)",
    "compressed": "input must be JSONL, plain or gzip-compressed",
    "zip": "input must be JSONL, plain or gzip-compressed",
}


class _Raw(io.RawIOBase):
    """Any reader as a raw stream, so that it can be buffered (and peeked)."""

    def __init__(self, reader: BinaryIO) -> None:
        self._reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self._reader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _GzipFile(gzip.GzipFile):
    """Decompressed bytes; a corrupt or truncated stream becomes an ``InputFileError`` (the
    input is unusable, retrying will not help)."""

    source = ""

    def readline(self, size: int | None = -1) -> bytes:
        try:
            return super().readline(-1 if size is None else size)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputFileError(self.source, f"gzip stream is corrupt: {exc}") from None

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputFileError(self.source, f"gzip stream is corrupt: {exc}") from None


def refused_format(head: bytes) -> str | None:
    """The reason an input starting with ``head`` cannot be read, or None if it can be."""
    for magic, what in _REFUSED:
        if head.startswith(magic):
            advice = next(text for word, text in _ADVICE.items() if word in what)
            return f"{what}: {advice}"
    return None


@contextmanager
def open_source(reader: BinaryIO, source: str) -> Iterator[BinaryIO]:
    """``reader`` as the lines' bytes: decompressed if gzip; ``InputFileError`` naming the
    format if it is one we do not read. ``source`` names the input in messages."""
    buffered = reader if isinstance(reader, io.BufferedReader) else io.BufferedReader(
        _Raw(reader), buffer_size=_BUFFER
    )
    head = buffered.peek(8)[:8]
    reason = refused_format(head)
    if reason is not None:
        raise InputFileError(source, reason)
    if not head.startswith(GZIP_MAGIC):
        yield buffered
        return
    with _GzipFile(fileobj=buffered, mode="rb") as unzipped:
        unzipped.source = source
        yield cast(BinaryIO, unzipped)  # GzipFile is a binary reader; typeshed says IO[bytes]


__all__ = ["GZIP_MAGIC", "open_source", "refused_format"]
