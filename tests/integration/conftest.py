"""Helpers shared by the integration tests: a realistic input and the output checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shared.run.records import Summary
from shared.run.store import RunStore
from shared.storage import open_storage

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key"

#: A share of first attempts answered 503 (retried, then fine), and a few final 400s.
FAULTS = {
    "seed": 5,
    "jobs": [
        {"display_name_contains": "-a01-", "request_errors": {
            "rate": 0.05, "code": 503, "status": "UNAVAILABLE", "message": "overloaded"}},
    ],
}


def write_input(path: Path, lines: int) -> dict[int, str | None]:
    """Lines with keys and metadata, bare requests, and a few unusable lines.

    Returns line number → expected key (None for lines that must be rejected).
    """
    expected: dict[int, str | None] = {}
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, lines + 1):
            request = {"contents": [{"parts": [{"text": f"question {n} — ünïcode"}]}]}
            if n % 211 == 0:
                out.write('{"key": "bad", "request": \n')
                expected[n] = None
            elif n % 307 == 0:
                out.write(json.dumps({"key": "k-1", "request": request}) + "\n")  # duplicate
                expected[n] = None
            elif n % 10 == 4:
                out.write(json.dumps(request) + "\n")
                expected[n] = f"line-{n}"
            else:
                out.write(json.dumps({"key": f"k-{n}", "request": request, "doc": n}) + "\n")
                expected[n] = f"k-{n}"
    return expected


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [json.loads(line) for line in handle]


def check_output(out: Path, expected: dict[int, str | None]) -> Summary:
    """Every line in exactly one of results/errors/rejected; results in input order."""
    results = read_jsonl(out / "results.jsonl")
    errors = read_jsonl(out / "errors.jsonl")
    rejected = read_jsonl(out / "rejected.jsonl")
    summary = Summary.model_validate_json((out / "summary.json").read_bytes())
    line_of = {key: line for line, key in expected.items() if key is not None}
    result_keys = [r["key"] for r in results]
    error_keys = [e["key"] for e in errors]
    assert len(set(result_keys)) == len(result_keys), "a request succeeded twice"
    assert not set(result_keys) & set(error_keys), "a key is in results and errors"
    assert {r["line"] for r in rejected} == {n for n, k in expected.items() if k is None}
    assert set(result_keys) | set(error_keys) == set(line_of)
    assert [line_of[k] for k in result_keys] == sorted(line_of[k] for k in result_keys)
    assert [line_of[k] for k in error_keys] == sorted(line_of[k] for k in error_keys)
    for result in results:
        assert "response" in result and result["response"]["candidates"]
        if result["key"].startswith("k-"):
            assert result["doc"] == line_of[result["key"]]
    counts = summary.counts
    assert counts.lines == len(expected)
    assert (counts.results, counts.errors, counts.rejected) == (
        len(results), len(errors), len(rejected))
    assert summary.accounted
    return summary


def wait_summary(output: Path, timeout: float = 180.0) -> Summary:
    records = RunStore(open_storage(str(output)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = records.summary()
        if summary is not None:
            return summary
        time.sleep(0.25)
    raise AssertionError(f"no summary in {output} after {timeout} s")


def shardline(*args: str, env: dict[str, str], timeout: float = 300.0,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(f"shardline {' '.join(args)} exited {result.returncode}:\n"
                    f"{result.stdout}\n{result.stderr}")
    return result


def part_count(output: Path) -> int:
    """How many parts (each one batch job) the run's records hold, over every attempt."""
    records = RunStore(open_storage(str(output)))
    plan = records.plan()
    assert plan is not None
    return sum(len(a.parts) for s in plan.shards for a in records.attempts(s.index))
