from __future__ import annotations

import io
from pathlib import Path

import pytest

from shared.jsonl.lines import LineReader


def read(data: bytes, max_bytes: int = 100, tmp: str | None = None):
    reader = LineReader(io.BytesIO(data), max_bytes=max_bytes, tmp_dir=tmp)
    out = []
    for line in reader:
        out.append((line.number, line.raw().read(), line.oversize))
    return out, reader


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"\n", [b""]),
        (b"a", [b"a"]),
        (b"a\n", [b"a"]),
        (b"a\nb", [b"a", b"b"]),
        (b"a\n\n", [b"a", b""]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"a\rb\n", [b"a\rb"]),
        (b"\xef\xbb\xbfa\nb", [b"a", b"b"]),
        (b"a\n\xef\xbb\xbfb", [b"a", b"\xef\xbb\xbfb"]),
        (b"\xef\xbb\xbf", [b""]),
    ],
)
def test_physical_lines(data, expected):
    lines, reader = read(data)
    assert [raw for _, raw, _ in lines] == expected
    assert [number for number, _, _ in lines] == list(range(1, len(expected) + 1))
    assert reader.bytes_read == len(data)
    assert reader.lines == len(expected)


def test_cap_is_inclusive_and_counts_content_only():
    exact = b"x" * 10
    lines, _ = read(exact + b"\r\n" + exact + b"\n" + exact, max_bytes=10)
    assert [(raw, over) for _, raw, over in lines] == [(exact, False)] * 3


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n", b""])
def test_oversize_line_is_spooled_whole(tmp_path: Path, terminator: bytes):
    # ~10 KB of every byte but "\n", ending in a lone CR that is content
    big = bytes(b for b in range(256) if b != 10) * 40 + b"\r"
    data = b"ok\n" + big + terminator + b"after\n"
    lines, reader = read(data, max_bytes=100, tmp=str(tmp_path))
    if terminator == b"":  # no terminator: "after" belongs to the big line
        assert lines[1][1] == big + b"after"
    else:  # big + "\n" ends in "\r\n": that CR is the terminator's; before "\r\n" it is content
        assert lines[1][1] == (big[:-1] if terminator == b"\n" else big)
        assert lines[2][1] == b"after"
    assert lines[1][2] is True
    assert lines[0] == (1, b"ok", False)
    assert reader.bytes_read == len(data)
    assert list(tmp_path.iterdir()) == []  # spool removed


def test_crlf_split_across_spool_chunks(tmp_path: Path):
    # The line's content ends exactly where the first readline stops: "\r" then "\n".
    data = b"y" * 12 + b"\r\n" + b"z\n"
    lines, _ = read(data, max_bytes=10, tmp=str(tmp_path))
    assert lines[0][1:] == (b"y" * 12, True)
    assert lines[1][1] == b"z"


def test_bom_on_a_line_at_the_cap_is_not_oversize(tmp_path: Path):
    data = b"\xef\xbb\xbf" + b"x" * 10 + b"\n"
    lines, _ = read(data, max_bytes=10, tmp=str(tmp_path))
    assert lines == [(1, b"x" * 10, False)]


def test_contents_gives_bytes_and_a_line_object_only_when_oversize(tmp_path: Path):
    data = b"\xef\xbb\xbfa\r\n" + b"x" * 50 + b"\n\nlast"
    reader = LineReader(io.BytesIO(data), max_bytes=10, tmp_dir=str(tmp_path))
    seen = []
    for item in reader.contents():
        seen.append((reader.lines, item if isinstance(item, bytes) else (item.number, item.size)))
    assert seen == [(1, b"a"), (2, (2, 50)), (3, b""), (4, b"last")]
    assert reader.bytes_read == len(data)
