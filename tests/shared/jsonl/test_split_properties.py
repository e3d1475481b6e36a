"""Whatever the input, every line is counted once and the shards obey their limits."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.jsonl import split_input
from shared.run import layout
from shared.storage.local import LocalStorage

KEYS = st.sampled_from(["a", "b", "c", "é", "😀", "line-1", "line-3"])
TEXT = st.text(max_size=30)


def _keyed(key: str | None, text: str, meta: int | None) -> bytes:
    line: dict[str, object] = {"request": {"contents": [{"parts": [{"text": text}]}]}}
    if key is not None:
        line["key"] = key
    if meta is not None:
        line["meta"] = meta
    return orjson.dumps(line)


LINE = st.one_of(
    st.builds(
        _keyed,
        st.one_of(st.none(), KEYS),
        TEXT,
        st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    ),
    st.builds(lambda t: orjson.dumps({"contents": [{"parts": [{"text": t}]}]}), TEXT),
    st.sampled_from([b"", b"  ", b"[]", b"{", b'{"key":1,"request":{}}', b"\xff\xfe", b"x" * 400]),
    st.binary(max_size=20).filter(lambda b: b"\n" not in b),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(LINE, max_size=25),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    bom=st.booleans(),
    max_bytes=st.integers(min_value=60, max_value=400),
    max_requests=st.integers(min_value=1, max_value=6),
)
def test_every_line_is_accounted_for_once(lines, crlf, final_newline, bom, max_bytes, max_requests):
    data = (b"\r\n" if crlf else b"\n").join(lines)
    if final_newline and lines:
        data += b"\n"
    if bom:
        data = b"\xef\xbb\xbf" + data
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStorage(Path(tmp) / "out", fsync=False)
        result = split_input(
            io.BytesIO(data),
            store,
            kind="generate",
            shard_max_bytes=max_bytes,
            shard_max_requests=max_requests,
            source="prop",
            tmp_dir=tmp,
            bloom_bytes=64,
        )
        expected_lines = data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))
        assert result.lines == expected_lines
        assert result.lines == result.accepted + result.rejected

        rejected = [orjson.loads(r) for r in store.read_bytes(layout.PLAN_REJECTED).splitlines()]
        rejected_lines = [r["line"] for r in rejected]
        assert rejected_lines == sorted(set(rejected_lines))

        accepted_lines: list[int] = []
        user_keys: list[str] = []
        for index, shard in enumerate(result.shards):
            assert shard.index == index
            staged = store.read_bytes(layout.shard_input(index))
            sidecar = [
                orjson.loads(r) for r in store.read_bytes(layout.shard_sidecar(index)).splitlines()
            ]
            assert 0 < shard.requests == len(sidecar) <= max_requests
            assert shard.bytes == len(staged) <= max_bytes
            lines_here = [r["line"] for r in sidecar]
            assert [int(orjson.loads(r)["key"]) for r in staged.splitlines()] == lines_here
            assert (shard.first_line, shard.last_line) == (lines_here[0], lines_here[-1])
            accepted_lines += lines_here
            user_keys += [r["key"] for r in sidecar]
        assert not store.exists(layout.shard_input(len(result.shards)))
        assert accepted_lines == sorted(accepted_lines)
        assert len(user_keys) == len(set(user_keys))
        assert sorted(accepted_lines + rejected_lines) == list(range(1, result.lines + 1))
        for record in rejected:
            if record["reason"].startswith("duplicate key"):
                first = int(record["reason"].rsplit(" ", 1)[1].rstrip(")"))
                assert first in accepted_lines
                assert first < record["line"]
