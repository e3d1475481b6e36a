"""shared.jsonl.sniff: a file that is not JSONL at all is refused before anything is copied."""

from __future__ import annotations

import io

import pytest

from shared.errors import InputFileError
from shared.jsonl.sniff import SNIFF_BYTES, SNIFF_LINES, refuse_non_jsonl

PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def sniff(data: bytes) -> None:
    refuse_non_jsonl(io.BytesIO(data), "/in/x.jsonl")


@pytest.mark.parametrize("data", [
    PASSWD,
    b"SHARDLINE_API_KEY=AIza-secret\x00PATH=/usr/bin\x00",
    b"a,b,c\n1,2,3\n" * 10,
    b"\n\n   \nnot json\n",
    b"[1, 2]\n\"text\"\n42\n",  # JSON, but no object
    b"-----BEGIN PRIVATE KEY-----\nMIIE\n",
])
def test_a_file_that_is_not_jsonl_is_refused_naming_it(data: bytes) -> None:
    with pytest.raises(InputFileError, match=r"^/in/x\.jsonl: not JSONL"):
        sniff(data)


@pytest.mark.parametrize("data", [
    b'{"key": "k1", "request": {}}\n',
    b"\xef\xbb\xbf{\"contents\": []}\n",
    b"{oops\n{oops\n{oops\n{oops\n" + b'{"key": "k5"}\n',  # one object in the first five
    b"",
    b"\n  \n",
    b"\x1f\x8b\x08\x00rest-of-a-gzip-stream",
    b"\xff\xfe{\x00}\x00",
])
def test_what_may_be_jsonl_is_left_to_the_line_checks(data: bytes) -> None:
    sniff(data)


def test_only_the_first_lines_are_judged() -> None:
    late = b"{oops\n" * SNIFF_LINES + b'{"key": "k"}\n'
    with pytest.raises(InputFileError, match=f"first {SNIFF_LINES} non-blank"):
        sniff(late)


def test_a_first_line_longer_than_the_window_is_not_judged() -> None:
    huge = b'{"key": "k", "request": {"text": "' + b"x" * SNIFF_BYTES + b'"}}\n'
    sniff(huge)
    sniff(b"not json\n" + b"x" * SNIFF_BYTES)  # only one complete line: not enough to judge
