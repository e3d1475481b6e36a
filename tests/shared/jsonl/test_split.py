from __future__ import annotations

import io

import orjson
import pytest

from shared.jsonl import split_input
from shared.jsonl.records import staged_line
from shared.run import layout
from shared.storage.local import LocalStorage
from tests.shared.jsonl.conftest import Planner, gen, jsonl, keyed, rejected, shard_files


def staged_size(line: int, request: dict[str, object]) -> int:
    return len(staged_line(line, orjson.dumps(request)))


def test_staged_input_and_sidecar(plan: Planner, store: LocalStorage):
    data = b"\n".join(
        [
            keyed("a", doc_id=7, tags=["x", "y"]),
            orjson.dumps(gen("bare")),
            keyed(None, "no key"),
        ]
    )
    result = plan(data)
    assert (result.lines, result.accepted, result.rejected) == (3, 3, 0)
    [(staged, sidecar)] = shard_files(store, result)
    assert staged.splitlines(keepends=True) == [
        staged_line(1, orjson.dumps(gen())),
        staged_line(2, orjson.dumps(gen("bare"))),
        staged_line(3, orjson.dumps(gen("no key"))),
    ]
    assert jsonl(sidecar) == [
        {"line": 1, "key": "a", "extra": {"doc_id": 7, "tags": ["x", "y"]}},
        {"line": 2, "key": "line-2"},
        {"line": 3, "key": "line-3"},
    ]
    [shard] = result.shards
    assert (shard.index, shard.requests, shard.first_line, shard.last_line) == (0, 3, 1, 3)
    assert shard.bytes == len(staged)
    assert result.estimated_tokens == shard.estimated_tokens == 1 + 1 + 2
    assert result.input_bytes == len(data)
    assert rejected(store) == []


@pytest.mark.parametrize(("slack", "shards"), [(0, [2, 1]), (-1, [1, 1, 1]), (1, [2, 1])])
def test_byte_limit_is_exact(plan: Planner, store: LocalStorage, slack: int, shards: list[int]):
    size = staged_size(1, gen())
    data = b"\n".join(keyed(k) for k in "abc")
    result = plan(data, shard_max_bytes=2 * size + slack)
    assert [s.requests for s in result.shards] == shards
    for shard, (staged, _) in zip(result.shards, shard_files(store, result), strict=True):
        assert shard.bytes == len(staged) <= 2 * size + slack


def test_request_count_cut(plan: Planner):
    result = plan(b"\n".join(keyed(str(k)) for k in range(7)), shard_max_requests=3)
    assert [(s.first_line, s.last_line, s.requests) for s in result.shards] == [
        (1, 3, 3),
        (4, 6, 3),
        (7, 7, 1),
    ]
    assert [s.index for s in result.shards] == [0, 1, 2]


def test_staged_line_over_the_shard_limit_is_rejected(plan: Planner, store: LocalStorage):
    size = staged_size(2, gen("x" * 50))
    data = b"\n".join([keyed("a"), keyed("b", "x" * 50), keyed("c")])
    result = plan(data, shard_max_bytes=size - 1, line_max_bytes=10_000)
    assert result.accepted == 2
    [record] = rejected(store)
    assert record["line"] == 2
    assert record["reason"] == f"staged line of {size} bytes exceeds shard_max_bytes ({size - 1})"


def test_oversize_line_is_rejected_whole(plan: Planner, store: LocalStorage):
    big = keyed("big", "é" * 20_000)
    data = b"\n".join([keyed("a"), big, keyed("b")]) + b"\n"
    result = plan(data, shard_max_bytes=1000)
    assert (result.lines, result.accepted, result.rejected) == (3, 2, 1)
    [record] = rejected(store)
    assert record["line"] == 2
    assert record["reason"] == (
        f"line of {len(big)} bytes exceeds the 1000-byte line limit (SHARDLINE_LINE_MAX_BYTES)")
    assert record["raw"] == big.decode()


def test_duplicates_first_wins_and_names_the_first_line(plan: Planner, store: LocalStorage):
    data = b"\n".join(
        [keyed("a"), keyed("b"), keyed("a", "again"), keyed("line-5"), orjson.dumps(gen())]
    )
    result = plan(data)
    assert result.duplicates == 2
    assert (result.accepted, result.rejected) == (3, 2)
    assert [(r["line"], r["reason"]) for r in rejected(store)] == [
        (3, "duplicate key 'a' (first seen on line 1)"),
        (5, "duplicate key 'line-5' (first seen on line 4)"),
    ]
    assert rejected(store)[0]["raw"] == keyed("a", "again").decode()
    [(staged, sidecar)] = shard_files(store, result)
    assert [r["line"] for r in jsonl(sidecar)] == [1, 2, 4]
    assert [r["key"] for r in jsonl(staged)] == ["1", "2", "4"]
    assert result.shards[0].bytes == len(staged)
    assert result.shards[0].requests == 3


def test_duplicates_across_shards_rewrite_only_affected_shards(plan: Planner, store: LocalStorage):
    keys = ["k1", "k2", "k3", "k4", "k1", "k6", "k2", "k8", "k9"]
    result = plan(b"\n".join(keyed(k, text=k * 10) for k in keys), shard_max_requests=3)
    # shards before dedupe: lines 1-3, 4-6, 7-9; lines 5 and 7 are duplicates
    assert [(s.first_line, s.last_line, s.requests) for s in result.shards] == [
        (1, 3, 3),
        (4, 6, 2),
        (8, 9, 2),
    ]
    for shard, (staged, sidecar) in zip(result.shards, shard_files(store, result), strict=True):
        assert shard.bytes == len(staged)
        lines = [r["line"] for r in jsonl(sidecar)]
        assert [int(r["key"]) for r in jsonl(staged)] == lines
        assert shard.estimated_tokens == len(lines) * 5
    assert result.estimated_tokens == 7 * 5


def test_a_shard_emptied_by_duplicates_is_dropped_and_later_shards_renumbered(
    plan: Planner, store: LocalStorage
):
    keys = ["a", "b", "a", "b", "c", "d"]  # shards of 2: [a b] [a b]=dups [c d]
    result = plan(b"\n".join(keyed(k) for k in keys), shard_max_requests=2)
    assert [(s.index, s.first_line, s.last_line) for s in result.shards] == [(0, 1, 2), (1, 5, 6)]
    assert [r["key"] for r in jsonl(store.read_bytes(layout.shard_sidecar(1)))] == ["c", "d"]
    assert not store.exists(layout.shard_input(2))
    assert not store.exists(layout.shard_sidecar(2))
    assert (result.lines, result.accepted, result.rejected) == (6, 4, 2)


def test_rejections_merge_in_line_order_with_oversize_and_duplicates(
    plan: Planner, store: LocalStorage
):
    big = b"x" * 5000
    data = b"\n".join([keyed("a"), big, keyed("a"), b"nope", keyed("a"), big]) + b"\n"
    result = plan(data, shard_max_bytes=1000)
    records = rejected(store)
    assert [r["line"] for r in records] == [2, 3, 4, 5, 6]
    assert records[0]["raw"] == records[4]["raw"] == big.decode()
    assert (result.accepted, result.rejected, result.duplicates) == (1, 5, 2)


def test_text_encodings_and_terminators(plan: Planner, store: LocalStorage):
    lines = [
        keyed("é", "日本語 😀 ünïcödé"),
        b"",
        b"   ",
        b'{"key":"bad","request":{"contents":[{"parts":[{"text":"\xff"}]}]}}',
        keyed("z"),
    ]
    data = b"\xef\xbb\xbf" + b"\r\n".join(lines)  # BOM, CRLF, no final newline
    result = plan(data)
    assert (result.lines, result.accepted, result.rejected) == (5, 2, 3)
    records = rejected(store)
    assert [(r["line"], r["reason"]) for r in records[:2]] == [(2, "empty line"), (3, "blank line")]
    assert records[2]["line"] == 4
    assert records[2]["reason"].startswith("invalid UTF-8")
    assert records[2]["raw_base64"]
    [(staged, sidecar)] = shard_files(store, result)
    assert jsonl(sidecar)[0]["key"] == "é"
    assert "日本語 😀" in staged.decode()
    assert result.input_bytes == len(data)


@pytest.mark.parametrize("data", [b"", b"\n", b"\n\n", b"\xef\xbb\xbf"])
def test_nothing_usable(plan: Planner, store: LocalStorage, data: bytes):
    result = plan(data)
    assert result.shards == []
    assert result.accepted == 0
    assert result.lines == result.rejected == data.count(b"\n") + (data == b"\xef\xbb\xbf")
    assert store.exists(layout.PLAN_REJECTED)


def test_embed_kind(plan: Planner, store: LocalStorage):
    data = b"\n".join(
        [
            orjson.dumps({"key": "e1", "request": {"content": {"parts": [{"text": "a"}]}}}),
            orjson.dumps({"content": {"parts": [{"text": "b"}]}}),
            keyed("g"),
        ]
    )
    result = plan(data, kind="embed")
    assert (result.accepted, result.rejected) == (2, 1)


def test_replanning_writes_the_same_objects(plan: Planner, store: LocalStorage):
    data = b"\n".join(keyed(k) for k in ["a", "b", "a", "c", "d"])
    first = plan(data, shard_max_requests=2)
    before = shard_files(store, first)
    again = plan(data, shard_max_requests=2)
    assert again == first
    assert shard_files(store, again) == before


class FailingReader(io.BytesIO):
    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if b"boom" in line:
            raise OSError("connection reset")
        return line


def test_a_failed_pass_leaves_no_partial_shard(store: LocalStorage, tmp_path):
    data = b"\n".join([keyed("a"), keyed("b"), b"boom"])
    with pytest.raises(OSError, match="connection reset"):
        split_input(
            FailingReader(data),
            store,
            kind="generate",
            shard_max_bytes=10_000,
            shard_max_requests=1,
            source="in",
            tmp_dir=str(tmp_path),
        )
    assert store.exists(layout.shard_input(0))  # finished before the failure
    assert not store.exists(layout.shard_input(1))  # the open one is discarded
    assert not store.exists(layout.PLAN_REJECTED)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # temp files cleaned up
