"""An input's format is told from its first bytes: gzip is read, UTF-16 and others refused."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest

from shared.errors import InputFileError
from shared.jsonl.lines import LineReader
from shared.jsonl.source import open_source

TEXT = b'{"key":"a","request":{}}\n{"key":"b","request":{}}\r\nlast'


def lines_of(reader: io.BufferedIOBase | io.RawIOBase, source: str = "in.jsonl") -> list[bytes]:
    with open_source(reader, source) as opened:  # type: ignore[arg-type]
        return [line.data for line in LineReader(opened, max_bytes=1 << 20)]


def test_plain_text_reads_as_it_is() -> None:
    assert lines_of(io.BufferedReader(io.BytesIO(TEXT))) == TEXT.replace(b"\r", b"").split(b"\n")


def test_an_unbuffered_reader_is_buffered_first() -> None:
    assert lines_of(io.BytesIO(TEXT)) == TEXT.replace(b"\r", b"").split(b"\n")


def test_gzip_is_decompressed_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"  # no .gz: the magic bytes decide
    path.write_bytes(gzip.compress(TEXT))
    with open(path, "rb") as handle:
        assert lines_of(handle) == TEXT.replace(b"\r", b"").split(b"\n")


def test_concatenated_gzip_members_read_as_one_stream() -> None:
    data = gzip.compress(b"one\n") + gzip.compress(b"two\n")
    assert lines_of(io.BufferedReader(io.BytesIO(data))) == [b"one", b"two"]


def test_a_large_gzip_streams_line_by_line() -> None:
    """Decompression follows the reader: a line longer than the cap is still spooled."""
    big = b"x" * (3 << 20)
    data = gzip.compress(b"short\n" + big + b"\nafter\n")
    with open_source(io.BufferedReader(io.BytesIO(data)), "in.gz") as opened:
        found = [(line.number, line.size, line.oversize)
                 for line in LineReader(opened, max_bytes=1 << 20)]
    assert found == [(1, 5, False), (2, len(big), True), (3, 5, False)]


def test_a_truncated_gzip_is_an_input_error_naming_the_file() -> None:
    data = gzip.compress(os.urandom(100_000))[:-5000]
    with pytest.raises(InputFileError, match=r"^in\.jsonl\.gz: gzip stream is corrupt"):
        lines_of(io.BufferedReader(io.BytesIO(data)), "in.jsonl.gz")


@pytest.mark.parametrize(("data", "says"), [
    ('{"key":"a"}\n'.encode("utf-16"), "UTF-16 text (byte order mark FF FE)"),
    (b"\xfe\xff" + '{"key":"a"}\n'.encode("utf-16-be"), "UTF-16 text (byte order mark FE FF)"),
    ('{"key":"a"}\n'.encode("utf-32"), "UTF-32 text"),
    (b"\x28\xb5\x2f\xfd" + b"\0" * 20, "zstd-compressed"),
    (b"BZh91AY&SY", "bzip2-compressed"),
    (b"PK\x03\x04rest", "a zip archive"),
])
def test_formats_we_do_not_read_are_refused_by_name(data: bytes, says: str) -> None:
    with pytest.raises(InputFileError) as caught:
        lines_of(io.BufferedReader(io.BytesIO(data)))
    assert str(caught.value).startswith(f"in.jsonl: {says}")


def test_an_empty_input_has_no_lines() -> None:
    assert lines_of(io.BufferedReader(io.BytesIO(b""))) == []
