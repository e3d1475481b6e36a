from __future__ import annotations

import io
import random
from pathlib import Path

import orjson
import pytest

from shared.errors import RunError
from shared.jsonl import (
    MISSING_ERROR,
    OutcomeStats,
    OutOfOrder,
    classify_output,
    fail_all,
    is_retryable,
    normalize_error,
    retryable_lines,
    select_lines,
    stage_parts,
)
from shared.jsonl.records import staged_line
from tests.shared.jsonl.conftest import gen, jsonl


def part(lines: list[int], text: str = "hi") -> bytes:
    return b"".join(staged_line(n, orjson.dumps(gen(text))) for n in lines)


def response(n: int, prompt: int = 10, total: int = 15) -> dict[str, object]:
    return {
        "candidates": [{"content": {"parts": [{"text": f"answer {n}"}], "role": "model"}}],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": total - prompt,
            "totalTokenCount": total,
        },
    }


def collect(output: list[bytes], lines: list[int], tmp: Path, **options):
    results, errors = io.BytesIO(), io.BytesIO()
    stats = classify_output(
        io.BytesIO(b"\n".join(output) + b"\n"),
        io.BytesIO(part(lines)),
        results,
        errors,
        tmp_dir=str(tmp),
        **options,
    )
    return stats, jsonl(results.getvalue()), jsonl(errors.getvalue())


@pytest.mark.parametrize("memory_bytes", [64 << 20, 2000])  # in memory, and many sorted runs
def test_scrambled_output_comes_back_sorted(tmp_path: Path, memory_bytes: int):
    lines = list(range(1, 301))
    output = [orjson.dumps({"key": str(n), "response": response(n)}) for n in lines]
    random.Random(3).shuffle(output)
    stats, results, errors = collect(output, lines, tmp_path, memory_bytes=memory_bytes)
    assert [r["line"] for r in results] == lines
    assert results[4]["response"] == response(5)
    assert errors == []
    assert stats.responses == stats.lines == stats.output_lines == 300
    assert stats.tokens.prompt == 3000
    assert stats.tokens.candidates == 1500
    assert stats.tokens.total == 4500
    assert list(tmp_path.iterdir()) == []


def test_response_bytes_are_kept(tmp_path: Path):
    body = {"candidates": [{"content": {"parts": [{"text": "é 😀 \u2028"}]}}], "z": 1, "a": 2.5}
    _, results, _ = collect([orjson.dumps({"response": body, "key": "1"})], [1], tmp_path)
    assert results == [{"line": 1, "response": body}]
    assert list(results[0]["response"]) == ["candidates", "z", "a"]


def test_error_spellings_and_retryable(tmp_path: Path):
    output = [
        b'{"key":"1","error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}',
        b'{"key":"2","status":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}',
        b'{"key":"3","status":{"code":13,"message":"oops"}}',
        b'{"key":"4","error":{"code":"503","message":"overloaded"}}',
        b'{"key":"5"}',
        b'{"key":"6","response":null}',
        b'{"key":"7","status":"UNAVAILABLE"}',
    ]
    stats, results, errors = collect(output, list(range(1, 8)), tmp_path)
    assert results == []
    assert [(e["error"]["code"], e["error"]["status"], e["retryable"]) for e in errors] == [
        (429, "RESOURCE_EXHAUSTED", True),
        (400, "INVALID_ARGUMENT", False),
        (13, "INTERNAL", True),
        (503, "UNAVAILABLE", True),
        (None, "UNKNOWN", False),
        (None, "UNKNOWN", False),
        (None, "UNAVAILABLE", True),
    ]
    assert errors[0]["error"]["message"] == "slow down"
    assert "neither a response nor an error" in errors[4]["error"]["message"]
    assert "not an object" in errors[5]["error"]["message"]
    assert (stats.errors, stats.retryable, stats.missing) == (7, 4, 0)


def test_missing_lines_and_strays(tmp_path: Path):
    output = [
        orjson.dumps({"key": "2", "response": response(2)}),
        orjson.dumps({"key": "99", "response": response(99)}),  # not in this part
        orjson.dumps({"key": "request-1", "response": response(1)}),  # not our key
        orjson.dumps({"key": "07", "response": response(7)}),  # not canonical
        b"{not json",
        b"[1,2]",
        b"   ",
        orjson.dumps({"metadata": {"key": "4"}, "response": response(4)}),  # inline form
    ]
    stats, results, errors = collect(output, [2, 3, 4], tmp_path)
    assert [r["line"] for r in results] == [2, 4]
    assert errors == [{"line": 3, "error": MISSING_ERROR, "retryable": True}]
    assert (stats.strays, stats.missing, stats.retryable) == (5, 1, 1)
    assert stats.output_lines == 7
    assert stats.tokens.prompt == 20  # strays are not counted
    assert stats.output_lines == (
        stats.responses + stats.errors - stats.missing + stats.strays + stats.duplicates
    )


def test_duplicates_response_beats_error_and_first_response_wins(tmp_path: Path):
    output = [
        b'{"key":"1","error":{"code":500,"message":"x"}}',
        orjson.dumps({"key": "1", "response": response(1, prompt=1, total=2)}),
        orjson.dumps({"key": "1", "response": response(1, prompt=100, total=200)}),
        b'{"key":"2","error":{"code":500,"message":"first"}}',
        b'{"key":"2","error":{"code":400,"message":"second"}}',
    ]
    stats, results, errors = collect(output, [1, 2], tmp_path)
    assert results == [{"line": 1, "response": response(1, prompt=1, total=2)}]
    assert [e["error"]["message"] for e in errors] == ["first"]
    assert stats.duplicates == 3
    assert (stats.tokens.prompt, stats.tokens.total) == (1, 2)


def test_thoughts_and_cached_tokens_and_embeddings(tmp_path: Path):
    usage = {
        "promptTokenCount": 5,
        "cachedContentTokenCount": 3,
        "thoughtsTokenCount": 7,
        "totalTokenCount": 20,
    }
    output = [
        orjson.dumps({"key": "1", "response": {"usageMetadata": usage}}),
        orjson.dumps({"key": "2", "response": {"embedding": {"values": [0.1, 0.2]}}}),
    ]
    stats, results, _ = collect(output, [1, 2], tmp_path)
    assert len(results) == 2
    assert stats.tokens.model_dump() == {
        "prompt": 5,
        "candidates": 0,
        "thoughts": 7,
        "cached": 3,
        "total": 20,
    }


def test_nan_in_a_response_is_still_an_answer(tmp_path: Path):
    stats, results, _ = collect([b'{"key":"1","response":{"score":NaN}}'], [1], tmp_path)
    assert stats.responses == 1
    assert results == [{"line": 1, "response": {"score": None}}]


def test_empty_output_makes_every_line_missing(tmp_path: Path):
    results, errors = io.BytesIO(), io.BytesIO()
    stats = classify_output(io.BytesIO(b""), io.BytesIO(part([1, 5])), results, errors)
    assert stats == OutcomeStats(lines=2, errors=2, retryable=2, missing=2)
    assert [e["line"] for e in jsonl(errors.getvalue())] == [1, 5]


def test_custom_retryable_predicate(tmp_path: Path):
    output = [b'{"key":"1","error":{"code":400,"message":"x"}}']
    stats, _, errors = collect(output, [1], tmp_path, retryable=lambda error: True)
    assert errors[0]["retryable"] is True
    assert stats.retryable == 1


def test_part_input_out_of_order_is_a_run_error(tmp_path: Path):
    with pytest.raises(RunError):
        classify_output(io.BytesIO(b""), io.BytesIO(part([2, 1])), io.BytesIO(), io.BytesIO())


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ({"code": 429}, True),
        ({"code": 500}, True),
        ({"code": 502}, True),
        ({"code": 503}, True),
        ({"code": 504}, True),
        ({"code": 4}, True),
        ({"code": 8}, True),
        ({"code": 13}, True),
        ({"code": 14}, True),
        ({"status": "RESOURCE_EXHAUSTED"}, True),
        ({"status": "internal"}, True),
        ({"status": "UNAVAILABLE"}, True),
        ({"status": "DEADLINE_EXCEEDED"}, True),
        ({"status": "MISSING"}, True),
        ({"code": 400, "status": "INVALID_ARGUMENT"}, False),
        ({"code": 403}, False),
        ({"code": 404}, False),
        ({"code": 3}, False),
        ({"status": "UNKNOWN"}, False),
        ({"status": "CANCELLED"}, False),
        ({"code": True}, False),
        ({}, False),
    ],
)
def test_is_retryable(error, retryable):
    assert is_retryable(error) is retryable


def test_normalize_error_fills_status_from_code():
    assert normalize_error({"error": {"code": 404, "message": "gone"}}) == {
        "code": 404,
        "message": "gone",
        "status": "NOT_FOUND",
    }
    assert normalize_error({"error": {"code": 999}})["status"] == "UNKNOWN"
    assert normalize_error({"error": {"message": {"nested": 1}}})["message"] == '{"nested":1}'


def test_fail_all(tmp_path: Path):
    errors = io.BytesIO()
    error = {"code": None, "message": "job expired", "status": "EXPIRED"}
    assert fail_all(io.BytesIO(part([3, 4, 9])), errors, error, retryable=True) == 3
    assert jsonl(errors.getvalue()) == [
        {"line": n, "error": error, "retryable": True} for n in (3, 4, 9)
    ]


def test_retryable_lines_and_select_lines():
    errors = io.BytesIO()
    fail_all(io.BytesIO(part([1, 2])), errors, {"code": 500, "message": "x"}, retryable=True)
    fail_all(io.BytesIO(part([5])), errors, {"code": 400, "message": "x"}, retryable=False)
    errors.seek(0)
    wanted = list(retryable_lines(errors))
    assert wanted == [1, 2]
    out = io.BytesIO()
    assert select_lines(io.BytesIO(part([1, 2, 3, 5])), wanted, out) == 2
    assert out.getvalue() == part([1, 2])
    with pytest.raises(RunError, match="line 4"):
        select_lines(io.BytesIO(part([1, 2, 3, 5])), [4], io.BytesIO())


class Parts:
    def __init__(self) -> None:
        self.files: dict[int, io.BytesIO] = {}

    def open(self, index: int):
        from contextlib import contextmanager

        @contextmanager
        def writer():
            buffer = io.BytesIO()
            yield buffer
            self.files[index] = buffer

        return writer()


def test_stage_parts_from_several_sources_under_limits():
    parts = Parts()
    sources = [io.BytesIO(part([1, 2, 3, 4])), io.BytesIO(part([5, 6, 7]))]
    size = len(staged_line(1, orjson.dumps(gen())))
    staged = stage_parts(sources, [2, 3, 4, 5, 7], parts.open, max_bytes=2 * size, max_requests=10)
    assert [(p.index, p.first_line, p.last_line, p.requests) for p in staged] == [
        (0, 2, 3, 2),
        (1, 4, 5, 2),
        (2, 7, 7, 1),
    ]
    assert parts.files[1].getvalue() == part([4, 5])
    assert all(p.bytes == len(parts.files[p.index].getvalue()) for p in staged)
    assert all(p.estimated_tokens == p.requests for p in staged)


@pytest.mark.parametrize(("count", "sizes"), [(5, [3, 2]), (1, [1]), (4, [2, 2])])
def test_stage_parts_min_parts_halves(count: int, sizes: list[int]):
    parts = Parts()
    lines = list(range(1, count + 1))
    staged = stage_parts(
        [io.BytesIO(part(lines))], lines, parts.open, max_bytes=10**9, max_requests=50, min_parts=2
    )
    assert [p.requests for p in staged] == sizes


def test_stage_parts_min_parts_needs_a_total():
    with pytest.raises(ValueError, match="total"):
        stage_parts([], iter([1]), Parts().open, max_bytes=10, max_requests=10, min_parts=2)
    assert stage_parts([], iter([]), Parts().open, max_bytes=10, max_requests=10) == []


def test_spilled_sort_keeps_duplicates_and_strays_as_in_memory(tmp_path: Path):
    rng = random.Random(9)
    lines = list(range(1, 201))
    output = []
    for n in range(1, 230):  # 201..229 are strays
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            if rng.random() < 0.6:
                output.append(orjson.dumps({"key": str(n), "response": response(n, prompt=n)}))
            else:
                code = rng.choice([400, 503])
                output.append(b'{"key":"%d","error":{"code":%d,"message":"m%d"}}' % (n, code, n))
    rng.shuffle(output)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    in_memory = collect(output, lines, tmp_path / "a")
    spilled = collect(output, lines, tmp_path / "b", memory_bytes=3000)  # ~100 runs
    assert spilled == in_memory
    stats = in_memory[0]
    assert stats.duplicates > 0 and stats.strays > 0 and stats.missing > 0
    assert stats.output_lines == len(output)


def _mixed_output(seed: int, shuffle: bool) -> list[bytes]:
    """Responses, errors, duplicates of both, strays (201..229), missing lines, unusable
    lines; each line's records kept together, lines ascending unless ``shuffle``."""
    rng = random.Random(seed)
    output = [b"{not json", b'{"key":"request-1","response":{}}']
    for n in range(1, 230):
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            if rng.random() < 0.6:
                output.append(orjson.dumps({"key": str(n), "response": response(n, prompt=n)}))
            else:
                code = rng.choice([400, 503])
                output.append(b'{"key":"%d","error":{"code":%d,"message":"m%d"}}' % (n, code, n))
    if shuffle:
        rng.shuffle(output)
    return output


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_in_order_join_gives_the_sorted_bytes_and_counts(tmp_path: Path, seed: int):
    output = _mixed_output(seed, shuffle=False)
    lines = list(range(1, 201))
    raw: dict[bool, tuple[object, bytes, bytes]] = {}
    for in_order in (False, True):
        results, errors = io.BytesIO(), io.BytesIO()
        stats = classify_output(
            io.BytesIO(b"\n".join(output) + b"\n"),
            io.BytesIO(part(lines)),
            results,
            errors,
            tmp_dir=str(tmp_path),
            memory_bytes=3000,  # the sorted way spills many runs
            in_order=in_order,
        )
        raw[in_order] = (stats, results.getvalue(), errors.getvalue())
    assert raw[True] == raw[False]
    stats = raw[True][0]
    assert isinstance(stats, OutcomeStats)
    assert stats.duplicates > 0 and stats.strays > 2 and stats.missing > 0
    assert list(tmp_path.iterdir()) == []


def test_in_order_join_stops_at_the_first_line_that_goes_back(tmp_path: Path):
    output = [orjson.dumps({"key": str(n), "response": response(n)}) for n in (1, 2, 4, 3)]
    with pytest.raises(OutOfOrder) as raised:
        collect(output, [1, 2, 3, 4], tmp_path, in_order=True)
    assert (raised.value.line, raised.value.after) == (3, 4)
    # a line's records need not be sorted among themselves: an error before a response
    output = [b'{"key":"1","error":{"code":500,"message":"x"}}', *output[:2]]
    stats, results, errors = collect(output, [1, 2, 3], tmp_path, in_order=True)
    assert [r["line"] for r in results] == [1, 2]
    assert errors == [{"line": 3, "error": MISSING_ERROR, "retryable": True}]
    assert stats.duplicates == 1
