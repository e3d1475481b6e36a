"""End to end on real parts (a Celery worker process, Redis, the emulator as a process):
the request cache across runs, the estimate, the budget, and 429s that are waited out."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.budget import BUDGET_EXCEEDED
from tests.integration.conftest import API_KEY, read_jsonl, shardline, wait_summary

pytestmark = pytest.mark.integration


def _write(path: Path, prompts: list[str]) -> Path:
    with path.open("w") as out:
        for n, prompt in enumerate(prompts, 1):
            request = {"contents": [{"parts": [{"text": prompt}]}]}
            out.write(json.dumps({"key": f"k{n}", "request": request, "doc": n}) + "\n")
    return path


def _jobs_of(emulator: Any, run_id: str) -> list[dict[str, Any]]:
    return [j for j in emulator.handle.jobs() if j["displayName"].startswith(f"shardline-{run_id}")]


def _submit(source: Path, out: Path, env: dict[str, str], *extra: str) -> str:
    done = shardline("submit", str(source), "--out", str(out), "--shard-max-requests", "100",
                     *extra, env=env)
    return done.stdout.strip()


def test_the_cache_across_runs_on_a_worker(
    emulator_process_factory, redis_url, worker_factory, pipeline_env, tmp_path: Path
) -> None:
    emulator = emulator_process_factory("--api-key", API_KEY, "--time-scale", "600")
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=redis_url)
    worker_factory(env)
    first_prompts = [f"question {n}" for n in range(600)]
    first = _submit(_write(tmp_path / "a.jsonl", first_prompts), tmp_path / "out-a", env)
    assert wait_summary(tmp_path / "out-a").counts.cached == 0

    # 90 % overlap: 540 old prompts, 60 new ones among them.
    overlap = first_prompts[60:]
    overlap[100:100] = [f"new question {n}" for n in range(60)]
    source = _write(tmp_path / "b.jsonl", overlap)
    uploads = len(emulator.handle.uploads())
    estimate = json.loads(shardline("estimate", str(source), "--shard-max-requests", "100",
                                    "--json", env=env).stdout)
    assert (estimate["lines"], estimate["cached"], estimate["to_send"]) == (600, 540, 60)
    assert estimate["cost"]["total"] > 0 and len(emulator.handle.uploads()) == uploads
    second = _submit(source, tmp_path / "out-b", env)
    summary = wait_summary(tmp_path / "out-b")
    assert summary.counts.cached == 540 and summary.counts.results == 600
    assert sum(j["requestCount"] for j in _jobs_of(emulator, second)) == 60
    results = read_jsonl(tmp_path / "out-b" / "results.jsonl")
    assert [r["doc"] for r in results] == list(range(1, 601))

    # The same input again: not one upload, not one job.
    uploads = len(emulator.handle.uploads())
    third = _submit(tmp_path / "a.jsonl", tmp_path / "out-c", env)
    summary = wait_summary(tmp_path / "out-c")
    assert summary.state == "succeeded" and summary.counts.cached == 600
    assert _jobs_of(emulator, third) == [] and len(emulator.handle.uploads()) == uploads
    assert _jobs_of(emulator, first)
    assert (read_jsonl(tmp_path / "out-c" / "results.jsonl")
            == read_jsonl(tmp_path / "out-a" / "results.jsonl"))
    stats = json.loads(shardline("cache", "stats", "--json", env=env).stdout)
    assert stats["entries"] == 660


def test_budget_and_spend_limit_429s_on_a_worker(
    emulator_process_factory, redis_url, worker_factory, pipeline_env, tmp_path: Path
) -> None:
    # The spend-based limit: 429 RESOURCE_EXHAUSTED on create, more times in a row than a
    # step tolerates transient failures (25); it must be waited out, not given up on.
    faults = {"http": [{"endpoint": "batches.create", "code": 429, "times": 70,
                        "retry_delay_seconds": 0.05,
                        "message": "Spend limit exceeded for this project (per 10 minutes)."}]}
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(faults)}
    )
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=redis_url,
                       http_max_retries="0")
    worker_factory(env)
    source = _write(tmp_path / "in.jsonl", [f"budget question {n}" for n in range(400)])
    estimate = json.loads(shardline("estimate", str(source), "--shard-max-requests", "100",
                                    "--json", env=env).stdout)
    per_shard = estimate["cost"]["total"] / 4
    run_id = _submit(source, tmp_path / "out", env, "--max-cost", f"{per_shard * 2.5:.8f}")
    summary = wait_summary(tmp_path / "out", timeout=240)
    assert summary.state == "partial" and summary.accounted
    assert (summary.counts.results, summary.counts.errors) == (200, 200)
    errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert Counter(e["error"]["status"] for e in errors) == {BUDGET_EXCEEDED: 200}
    assert [e["doc"] for e in errors] == list(range(201, 401))
    assert len(_jobs_of(emulator, run_id)) == 2
    seen = emulator.handle.stats()["responses"]
    assert seen["batches.create 429"] == 70 and seen["batches.create 200"] == 2
    assert summary.estimated_cost is not None and summary.estimated_cost.total is not None
    assert summary.estimated_cost.total <= per_shard * 2.5
