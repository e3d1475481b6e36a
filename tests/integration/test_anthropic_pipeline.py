"""End to end on Anthropic Message Batches: a Celery worker process on Redis, the emulator as
a process serving ``/anthropic``, requests inline in each create, overloaded requests retried."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import API_KEY, part_count, read_jsonl, shardline, wait_summary

pytestmark = pytest.mark.integration

LINES = 900
#: A batch has no name to aim at, so 10 % of every attempt's requests answer 529.
FAULTS = {"seed": 5, "jobs": [{"request_errors": {"rate": 0.1, "code": 529}}]}


def _write(path: Path) -> dict[str, int | None]:
    """Keyed lines, a bare body every tenth, one without max_tokens (rejected)."""
    expected: dict[str, int | None] = {}
    with path.open("w") as out:
        for n in range(1, LINES + 1):
            body: dict[str, Any] = {"max_tokens": 64,
                                    "messages": [{"role": "user", "content": f"question {n}"}]}
            if n == 50:
                del body["max_tokens"]
                out.write(json.dumps({"key": "no-max", "request": body}) + "\n")
                expected["no-max"] = None
            elif n % 10 == 4:
                out.write(json.dumps(body) + "\n")
                expected[f"line-{n}"] = n
            else:
                out.write(json.dumps({"key": f"k-{n}", "request": body, "doc": n}) + "\n")
                expected[f"k-{n}"] = n
    return expected


def test_anthropic_on_a_worker_process(
    emulator_process_factory: Any, redis_url: str, worker_factory: Any, pipeline_env: Any,
    tmp_path: Path,
) -> None:
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    handle = emulator.handle
    env = pipeline_env(handle.base_url, "unused-gemini-key", tmp_path, broker=redis_url,
                       anthropic_api_key=API_KEY, anthropic_base_url=handle.anthropic_base_url)
    worker_factory(env)
    source, out = tmp_path / "requests.jsonl", tmp_path / "out"
    expected = _write(source)

    submitted = shardline("submit", str(source), "--out", str(out), "--provider", "anthropic",
                          "--shard-max-requests", "250", env=env)
    summary = wait_summary(out)

    assert summary.run_id == submitted.stdout.strip() and summary.model == "claude-haiku-4-5"
    results, errors = read_jsonl(out / "results.jsonl"), read_jsonl(out / "errors.jsonl")
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [r["line"] for r in rejected] == [50] and "max_tokens" in rejected[0]["reason"]
    kept = {key: line for key, line in expected.items() if line is not None}
    ok, failed = [r["key"] for r in results], [e["key"] for e in errors]
    assert set(ok) | set(failed) == set(kept) and not set(ok) & set(failed)
    assert [kept[k] for k in ok] == sorted(kept[k] for k in ok)
    assert all(r["response"]["type"] == "message" for r in results)
    assert all(r["doc"] == kept[r["key"]] for r in results if r["key"].startswith("k-"))
    for error in errors:  # overloaded three times running: the provider's type and code
        assert error["error"]["status"] == "overloaded_error" and error["attempts"] == 3
    assert summary.accounted and summary.counts.results == len(results) > 0.95 * len(kept)
    assert len(summary.jobs) == part_count(out) > summary.shards >= 4, "529s were retried"
    assert all(name.startswith("msgbatch_") for name in summary.jobs)
    assert summary.tokens.prompt > 0 and "$1.0/$5.0" in summary.cost.basis
    assert handle.jobs() == [], "every batch was deleted once its results were in"
