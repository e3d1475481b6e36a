"""End to end on the OpenAI-style provider: a Celery worker process on Redis, the emulator
as a process serving ``/openai/v1``, per-request faults retried, both output files read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.run.records import Summary
from tests.fixtures.openai_input import expected_chat_keys, openai_env, write_chat_input
from tests.integration.conftest import API_KEY, part_count, read_jsonl, shardline, wait_summary

pytestmark = pytest.mark.integration

LINES = 1200
#: 10 % of first-attempt requests answer 503 (retried), 2 % of second attempts 400 (final).
FAULTS = {
    "seed": 5,
    "jobs": [
        {"display_name_contains": "-a01-", "request_errors": {"rate": 0.1, "code": 503}},
        {"display_name_contains": "-a02-", "request_errors": {"rate": 0.02, "code": 400}},
    ],
}


def _check(out: Path, expected: dict[int, str | None]) -> Summary:
    results = read_jsonl(out / "results.jsonl")
    errors = read_jsonl(out / "errors.jsonl")
    rejected = read_jsonl(out / "rejected.jsonl")
    summary = Summary.model_validate_json((out / "summary.json").read_bytes())
    line_of = {key: line for line, key in expected.items() if key is not None}
    ok, failed = [r["key"] for r in results], [e["key"] for e in errors]
    assert len(set(ok)) == len(ok) and not set(ok) & set(failed)
    assert set(ok) | set(failed) == set(line_of)
    assert {r["line"] for r in rejected} == {n for n, k in expected.items() if k is None}
    assert [line_of[k] for k in ok] == sorted(line_of[k] for k in ok)
    for result in results:
        assert result["response"]["object"] == "chat.completion"
        assert result["response"]["choices"][0]["message"]["content"]
        if result["key"].startswith("k-"):
            assert result["doc"] == line_of[result["key"]]
    for error in errors:  # the provider's own code and message, after two attempts
        assert error["error"]["code"] == 400 and error["attempts"] == 2
    assert summary.accounted and summary.counts.results == len(results)
    assert summary.tokens.prompt > 0 and summary.tokens.candidates > 0
    assert summary.cost.total is not None and "$0.15/$0.6" in summary.cost.basis
    return summary


def test_openai_on_a_worker_process(
    emulator_process_factory: Any, redis_url: str, worker_factory: Any, pipeline_env: Any,
    tmp_path: Path,
) -> None:
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    handle = emulator.handle
    env = pipeline_env(handle.base_url, "unused-gemini-key", tmp_path, broker=redis_url,
                       **openai_env(handle))
    worker_factory(env)
    source, out = tmp_path / "requests.jsonl", tmp_path / "out"
    write_chat_input(source, LINES)

    submitted = shardline("submit", str(source), "--out", str(out),
                          "--shard-max-requests", "300", env=env)
    run_id = submitted.stdout.strip()
    summary = wait_summary(out)

    assert summary.run_id == run_id and summary.model == "gpt-4o-mini"
    _check(out, expected_chat_keys(LINES))
    jobs = [j for j in handle.jobs() if j["displayName"].startswith(f"shardline-{run_id}")]
    names = [j["displayName"] for j in jobs]
    assert len(names) == len(set(names)), "a part was created twice"
    assert len(jobs) == part_count(out) == len(summary.jobs) > summary.shards >= 4
    assert all(name.startswith("batch_") for name in summary.jobs)
    assert not [f for f in handle.files()], "input, output and error files are all deleted"
    calls = handle.stats()["requests"]
    assert calls["openai.files.content"] >= 2 * summary.shards  # output and error files


def test_openai_embeddings_embedded(
    emulator_process_factory: Any, pipeline_env: Any, tmp_path: Path
) -> None:
    emulator = emulator_process_factory("--api-key", API_KEY, "--time-scale", "600")
    handle = emulator.handle
    env = pipeline_env(handle.base_url, "unused", tmp_path, broker=None)
    env.update({f"SHARDLINE_{k.upper()}": v for k, v in openai_env(handle).items()})
    del env["SHARDLINE_PROVIDER"]  # chosen per run instead
    source, out = tmp_path / "texts.jsonl", tmp_path / "out"
    source.write_text("".join(
        json.dumps({"key": f"t-{n}", "request": {"input": f"text {n}"}}) + "\n"
        for n in range(50)
    ))

    result = shardline("run", str(source), "--out", str(out), "--kind", "embed",
                       "--provider", "openai", "--json", env=env)

    assert json.loads(result.stdout)["state"] == "succeeded"
    results = read_jsonl(out / "results.jsonl")
    assert [r["key"] for r in results] == [f"t-{n}" for n in range(50)]
    assert all(len(r["response"]["data"][0]["embedding"]) == 1536 for r in results)
    summary = Summary.model_validate_json((out / "summary.json").read_bytes())
    assert summary.model == "text-embedding-3-small" and summary.tokens.prompt > 0
    assert "$0.02" in summary.cost.basis
