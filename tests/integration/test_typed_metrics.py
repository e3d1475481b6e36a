"""Typed results and run metrics end to end: a Celery worker process over real Redis, the
emulator as an HTTP server spoiling answers, and the worker's real /metrics endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.emulator import free_port
from tests.integration.conftest import API_KEY, REPO, read_jsonl, shardline, wait_summary

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["title", "score"],
}
#: First attempts: 30 % of answers are stringified JSON (retried, then fine); shard 1:
#: every answer cut in half, on every attempt (ends as INVALID_OUTPUT errors).
FAULTS = {
    "seed": 11,
    "jobs": [
        {"display_name_contains": "-a01-",
         "malformed_output": {"rate": 0.3, "shape": "wrong_shape"}},
        {"display_name_contains": "-s00001-",
         "malformed_output": {"rate": 1.0, "shape": "not_json"}},
    ],
}
LINES = 60
SHARD_REQUESTS = "20"


def write_typed_input(path: Path, lines: int) -> None:
    config = {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    with path.open("w") as out:
        for n in range(1, lines + 1):
            request = {"contents": [{"parts": [{"text": f"rate item {n}"}]}],
                       "generationConfig": config}
            out.write(json.dumps({"key": f"k{n}", "request": request}) + "\n")


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert answer.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_typed_results_and_metrics_on_a_worker(
    emulator_process_factory, redis_url, worker_factory, pipeline_env, tmp_path: Path
) -> None:
    emulator = emulator_process_factory(
        "--api-key", API_KEY, "--time-scale", "600", env={"EMULATOR_FAULTS": json.dumps(FAULTS)}
    )
    port = free_port()
    env = pipeline_env(
        emulator.handle.base_url, API_KEY, tmp_path, broker=redis_url,
        metrics_port=str(port), metrics_host="127.0.0.1", metrics_cache_seconds="0",
        max_request_attempts="2",
    )
    worker = worker_factory(env)
    schema, source, out = tmp_path / "schema.json", tmp_path / "in.jsonl", tmp_path / "out"
    schema.write_text(json.dumps(SCHEMA))
    write_typed_input(source, LINES)

    run_id = shardline(
        "submit", str(source), "--out", str(out), "--shard-max-requests", SHARD_REQUESTS,
        "--output-schema", str(schema), env=env,
    ).stdout.strip()
    summary = wait_summary(out)

    # Typed results: shard 1's lines never validate; every other line did, after retries.
    results, errors = read_jsonl(out / "results.jsonl"), read_jsonl(out / "errors.jsonl")
    assert summary.state == "partial" and summary.accounted
    assert len(errors) == 20 and len(results) == LINES - 20
    for line in errors:
        assert line["error"]["status"] == "INVALID_OUTPUT" and line["attempts"] == 2
        assert line["error"]["message"].startswith("the response text is not JSON")
        assert line["error"]["text"]
    for line in results:
        text = line["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert set(json.loads(text)) == {"title", "score"}
    assert len(summary.jobs) > summary.shards, "the wrong-shaped answers were not retried"

    # Metrics: the worker's real endpoint.
    samples = scrape(port)
    assert value(samples, "shardline_runs", state="partial") == 1
    assert value(samples, "shardline_requests_total", outcome="results") == LINES - 20
    assert value(samples, "shardline_requests_total", outcome="errors") == 20
    assert value(samples, "shardline_tokens_total", model=summary.model, kind="total") == (
        summary.tokens.total
    )
    assert value(samples, "shardline_provider_calls_total", provider="gemini", code="200") > 0
    assert value(samples, "shardline_oldest_live_job_age_seconds") == 0

    # Right after a crash and restart: the records say the same.
    worker.kill()
    restarted = worker_factory(env)
    again = scrape(port)
    assert value(again, "shardline_runs", state="partial") == 1
    assert value(again, "shardline_requests_total", outcome="errors") == 20
    assert value(again, "shardline_provider_calls_total", provider="gemini", code="200") == 0
    assert restarted.alive() and run_id


def test_shardline_run_serves_metrics_while_it_runs(
    emulator_process_factory, pipeline_env, tmp_path: Path
) -> None:
    emulator = emulator_process_factory("--api-key", API_KEY, "--time-scale", "30")
    port = free_port()
    # The port in the environment too: the embedded worker's worker_init asks for it again.
    env = pipeline_env(emulator.handle.base_url, API_KEY, tmp_path, broker=None,
                       metrics_host="127.0.0.1", metrics_cache_seconds="0",
                       metrics_port=str(port))
    source, out = tmp_path / "in.jsonl", tmp_path / "out"
    write_typed_input(source, 10)
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "run", str(source), "--out", str(out),
         "--metrics-port", str(port)],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        seen_running = False
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            try:
                samples = scrape(port)
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if value(samples, "shardline_jobs", state="PENDING") + value(
                samples, "shardline_jobs", state="RUNNING"
            ) >= 1:
                seen_running = value(samples, "shardline_runs", state="running") == 1
                break
            time.sleep(0.2)
        assert seen_running, "the endpoint never showed the live run's job"
        assert process.wait(120) == 0, process.stderr.read() if process.stderr else ""
        assert "raised" not in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    with pytest.raises(httpx.HTTPError):  # the endpoint ends with the run
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
