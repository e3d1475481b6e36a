from __future__ import annotations

import io
import random

import orjson
import pytest

from shared.jsonl import MISSING_ERROR, concat, join_shard
from shared.jsonl.records import error_record, result_record, sidecar_line
from shared.storage.local import LocalStorage
from tests.shared.jsonl.conftest import jsonl


def results(*lines: int) -> io.BytesIO:
    return io.BytesIO(b"".join(result_record(n, orjson.dumps({"text": f"r{n}"})) for n in lines))


def errors(*pairs: tuple[int, str]) -> io.BytesIO:
    return io.BytesIO(
        b"".join(
            error_record(n, {"code": 500, "message": message, "status": "INTERNAL"}, True)
            for n, message in pairs
        )
    )


def sidecar() -> io.BytesIO:
    return io.BytesIO(
        sidecar_line(1, "a", {"doc": 1, "tags": ["x"]})
        + sidecar_line(2, "b", None)
        + sidecar_line(4, "d", {"zeta": True, "alpha": None})
        + sidecar_line(5, "line-5", None)
        + sidecar_line(7, "g", None)
        + sidecar_line(8, "h", None)
    )


def test_finish_shard_across_three_attempts():
    attempts = [
        (1, results(1), errors((2, "a1"), (4, "a1"), (5, "a1"), (7, "a1"))),
        # attempt 2 in two parts (an expired job halved)
        (2, results(2), errors((4, "a2"))),
        (2, results(), errors((5, "a2"), (7, "a2"))),
        (3, results(4, 8), errors((5, "a3"))),
        (3, results(99), errors()),  # an outcome for a line not in the sidecar
    ]
    out_results, out_errors = io.BytesIO(), io.BytesIO()
    totals = join_shard(sidecar(), attempts, out_results, out_errors)
    assert out_results.getvalue().splitlines() == [
        b'{"key":"a","doc":1,"tags":["x"],"response":{"text":"r1"}}',
        b'{"key":"b","response":{"text":"r2"}}',
        b'{"key":"d","zeta":true,"alpha":null,"response":{"text":"r4"}}',
        b'{"key":"h","response":{"text":"r8"}}',
    ]
    error_lines = jsonl(out_errors.getvalue())
    assert error_lines == [
        {
            "key": "line-5",
            "error": {"code": 500, "message": "a3", "status": "INTERNAL"},
            "attempts": 3,
        },
        {
            "key": "g",
            "error": {"code": 500, "message": "a2", "status": "INTERNAL"},
            "attempts": 2,
        },
    ]
    assert list(error_lines[0]) == ["key", "error", "attempts"]
    assert totals.model_dump() == {
        "lines": 6,
        "results": 4,
        "errors": 2,
        "missing": 0,
        "retried": 4,
        "orphans": 1,
    }


def test_a_success_is_never_written_twice():
    attempts = [(1, results(1), errors()), (2, results(1), errors((1, "late")))]
    out = io.BytesIO()
    totals = join_shard(io.BytesIO(sidecar_line(1, "a", None)), attempts, out, io.BytesIO())
    assert out.getvalue() == b'{"key":"a","response":{"text":"r1"}}\n'
    assert totals.results == 1


def test_a_line_without_outcome_is_missing_not_lost():
    out_errors = io.BytesIO()
    totals = join_shard(sidecar(), [(1, results(1, 2, 4, 5), errors())], io.BytesIO(), out_errors)
    assert jsonl(out_errors.getvalue()) == [
        {"key": "g", "error": MISSING_ERROR, "attempts": 0},
        {"key": "h", "error": MISSING_ERROR, "attempts": 0},
    ]
    assert (totals.lines, totals.results, totals.errors, totals.missing) == (6, 4, 2, 2)


def test_concat_streams_shards_in_order(tmp_path):
    store = LocalStorage(tmp_path, fsync=False)
    store.write_bytes("s0/results.jsonl", b"a\nb\n")
    store.write_bytes("s1/results.jsonl", b"")
    store.write_bytes("s2/results.jsonl", b"c\n")
    out = io.BytesIO()
    keys = ["s0/results.jsonl", "s1/results.jsonl", "s2/results.jsonl"]
    assert concat(store, keys, out) == 6
    assert out.getvalue() == b"a\nb\nc\n"


def test_sidecar_head_slices_what_a_parse_would_build():
    from shared.jsonl.records import sidecar_head

    cases = [
        ("a", None),
        ('tricky ,"extra":{ "key" \\', {"extra": {"n": 1}, "x": [1, {"y": "}}"}]}),
        ("é😀", {"doc": 7}),
    ]
    for key, extra in cases:
        head = sidecar_head(sidecar_line(3, key, extra))
        line = orjson.loads(head + b"}")
        assert line == {"key": key, **(extra or {})}
        assert list(line) == ["key", *(extra or {})]


def reference_finish(sidecar_bytes: bytes, attempts: list[tuple[int, bytes, bytes]]):
    """The k-way merge join_shard is defined by, written plainly (parse, don't slice)."""
    outcomes = []
    for stream, (attempt, results_bytes, errors_bytes) in enumerate(attempts):
        for kind, data in ((0, results_bytes), (1, errors_bytes)):
            for sequence, record in enumerate(data.splitlines()):
                line = orjson.loads(record)["line"]
                outcomes.append((line, attempt, 2 * stream + kind, sequence, orjson.loads(record)))
    outcomes.sort()
    results_out, errors_out = [], []
    seen: set[int] = set()
    for side in jsonl(sidecar_bytes):
        group = [o for o in outcomes if o[0] == side["line"]]
        seen.add(side["line"])
        head = {"key": side["key"], **side.get("extra", {})}
        success = next((o[4] for o in group if "response" in o[4]), None)
        if success is not None:
            results_out.append({**head, "response": success["response"]})
        elif group:
            tried = len({o[1] for o in group})
            errors_out.append({**head, "error": group[-1][4]["error"], "attempts": tried})
        else:
            errors_out.append({**head, "error": MISSING_ERROR, "attempts": 0})
    orphans = sum(1 for o in outcomes if o[0] not in seen)
    return results_out, errors_out, orphans


@pytest.mark.parametrize("seed", range(12))
def test_finish_shard_matches_the_plain_merge(seed: int):
    rng = random.Random(seed)
    lines = sorted(rng.sample(range(1, 60), 25))
    sidecar_bytes = b"".join(
        sidecar_line(n, f"k{n}", {"n": n} if rng.random() < 0.5 else None) for n in lines
    )
    attempts = []
    single = seed % 2 == 0  # one attempt of one part: join_shard's two-file path
    for attempt in range(1, 2 if single else rng.choice([2, 3]) + 1):
        for _part in range(1 if single else rng.choice([1, 2])):
            picked = sorted(rng.sample(range(1, 62), 20))  # some not in the sidecar: orphans
            ok = [n for n in picked if rng.random() < 0.5]
            bad = [n for n in picked if n not in ok or rng.random() < 0.1]
            ok += [n for n in ok if rng.random() < 0.1]  # a line twice in one file
            bad += [n for n in bad if rng.random() < 0.2]
            messages = [(n, f"a{attempt}-{index}") for index, n in enumerate(sorted(bad))]
            outcomes = (results(*sorted(ok)).getvalue(), errors(*messages).getvalue())
            attempts.append((attempt, *outcomes))
    rng.shuffle(attempts)  # any order: outcomes are taken by attempt, then file
    out_results, out_errors = io.BytesIO(), io.BytesIO()
    totals = join_shard(
        io.BytesIO(sidecar_bytes),
        [(a, io.BytesIO(r), io.BytesIO(e)) for a, r, e in attempts],
        out_results,
        out_errors,
    )
    expected_results, expected_errors, orphans = reference_finish(sidecar_bytes, attempts)
    assert jsonl(out_results.getvalue()) == expected_results
    assert jsonl(out_errors.getvalue()) == expected_errors
    assert (totals.lines, totals.results, totals.orphans) == (25, len(expected_results), orphans)
    for line in jsonl(out_results.getvalue()) + jsonl(out_errors.getvalue()):
        assert next(iter(line)) == "key"
