from __future__ import annotations

import base64
import io

import orjson
import pytest

from shared.jsonl.rejections import rejection, write_rejection_streamed


@pytest.mark.parametrize(
    "raw",
    [
        b"plain",
        b'"quoted" \\ \t',
        "é日本😀".encode() * 500_000,  # multi-byte characters across streaming chunks
        b"\xff\xfe bad \xc3" + "é".encode() * 300_000 + b"\xe6\x97",
        b"",
    ],
)
def test_streamed_record_equals_in_memory_record(raw: bytes):
    buffer = io.BytesIO()
    write_rejection_streamed(buffer, 7, "too long", io.BytesIO(raw))
    assert buffer.getvalue() == rejection(7, "too long", raw)
    record = orjson.loads(buffer.getvalue())
    assert record["line"] == 7
    assert record["raw"] == raw.decode("utf-8", "replace")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert base64.b64decode(record["raw_base64"]) == raw
    else:
        assert "raw_base64" not in record
