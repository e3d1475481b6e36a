"""Run metrics read from the records (RunsCollector), the event counters, the endpoint."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared import events
from shared.admission import Admission
from shared.coordination import coordination_redis
from shared.errors import RetryLater
from shared.metrics.runs import RunsCollector
from shared.metrics.server import serve_metrics
from shared.pipeline.create import create_attempt
from shared.pipeline.plan import plan_run
from shared.pipeline.upload import upload_attempt


def scrape(collector: RunsCollector) -> dict[tuple[str, frozenset], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return parse(generate_latest(registry).decode())


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_live_run_then_a_finished_one(harness) -> None:
    settings = harness.settings.model_copy(update={"metrics_cache_seconds": 0.0})
    harness.emulator.set_faults({"jobs": [{"pending_seconds": 3600.0}]})  # stays PENDING
    ctx = harness.start(30, shard_max_requests=10)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_attempt(ctx, 0, 1)
    created = ctx.store.job(0, 1, 0)
    assert created is not None and created.created_at is not None
    later = created.created_at + timedelta(hours=45)

    live = scrape(RunsCollector(settings, now=lambda: later))
    assert value(live, "shardline_runs", state="running") == 1
    assert value(live, "shardline_shards", state="running") == 1
    assert value(live, "shardline_shards", state="uploading") == 2  # planned, not sent
    assert value(live, "shardline_jobs", state="PENDING") == 1
    assert value(live, "shardline_jobs", state="UPLOADING") == 2
    assert value(live, "shardline_oldest_live_job_age_seconds") == pytest.approx(45 * 3600, abs=5)
    assert value(live, "shardline_live_jobs_near_expiry") == 1
    assert value(live, "shardline_run_idle_seconds", run_id=ctx.run_id) >= 45 * 3600 - 5
    assert value(live, "shardline_requests_total", outcome="results") == 0

    harness.emulator.set_faults({})
    harness.emulator.reset()
    ctx2 = harness.start(12)
    summary = harness.run(ctx2)
    done = scrape(RunsCollector(settings))
    assert value(done, "shardline_runs", state="succeeded") == 1
    assert value(done, "shardline_runs", state="running") == 1  # the first one still is
    assert value(done, "shardline_requests_total", outcome="results") == 12
    assert value(done, "shardline_requests_total", outcome="rejected") == 0
    assert value(done, "shardline_tokens_total", model=summary.model, kind="total") == (
        summary.tokens.total
    ) > 0
    assert summary.cost.total is not None
    assert value(done, "shardline_cost_usd_total", model=summary.model) == pytest.approx(
        summary.cost.total
    )


def test_one_read_serves_scrapes_for_the_cache_time(harness) -> None:
    settings = harness.settings.model_copy(update={"metrics_cache_seconds": 3600.0})
    collector = RunsCollector(settings)
    before = value(scrape(collector), "shardline_runs", state="succeeded")
    harness.run(harness.start(5))
    assert value(scrape(collector), "shardline_runs", state="succeeded") == before
    # A new process (a restart) reads the records afresh: right at once.
    assert value(scrape(RunsCollector(settings)), "shardline_runs", state="succeeded") == (
        before + 1
    )


def test_deleted_and_broken_runs(harness) -> None:
    import shutil
    from pathlib import Path

    from shared.run import layout

    settings = harness.settings.model_copy(update={"metrics_cache_seconds": 0.0})
    gone, broken = harness.start(2), harness.start(2)
    shutil.rmtree(gone.output_uri)
    (Path(broken.output_uri) / layout.MANIFEST).write_text("{not json")
    samples = scrape(RunsCollector(settings))
    assert value(samples, "shardline_runs_missing") == 1
    assert value(samples, "shardline_runs_unreadable") == 1


def test_key_load_comes_from_the_admission_ledger(harness) -> None:
    settings = harness.settings.model_copy(update={"metrics_cache_seconds": 0.0})
    admission = Admission(coordination_redis(settings), settings)
    fingerprint = harness.start(1).keys.fingerprints[0]
    admission.acquire_file_bytes(fingerprint, "run-x:s0:a1:p0", 1234)
    samples = scrape(RunsCollector(settings, admission=lambda: admission))
    assert value(samples, "shardline_key_file_bytes", key=fingerprint) == 1234
    assert value(samples, "shardline_key_file_budget_bytes", key=fingerprint) == (
        settings.file_storage_budget_bytes
    )
    assert value(samples, "shardline_key_max_live_jobs", key=fingerprint) == (
        settings.max_live_jobs_per_project
    )


def test_admission_waits_are_counted(harness) -> None:
    settings = harness.settings.model_copy(update={"max_live_jobs_per_project": 1})
    admission = Admission(coordination_redis(settings), settings)
    before = events.ADMISSION_WAITS.labels(reason="jobs")._value.get()
    admission.acquire_job("fp-0123abcd", "run-a:s0:a1:p0", "m", 10)
    with pytest.raises(RetryLater):
        admission.acquire_job("fp-0123abcd", "run-a:s1:a1:p0", "m", 10)
    assert events.ADMISSION_WAITS.labels(reason="jobs")._value.get() == before + 1


def test_provider_calls_and_errors_by_code(harness) -> None:
    calls = events.PROVIDER_CALLS.labels(provider="gemini", code="200")
    errors = events.PROVIDER_ERRORS.labels(provider="gemini", code="503")
    ok_before, errors_before = calls._value.get(), errors._value.get()
    harness.emulator.set_faults({"http": [{"endpoint": "batches.get", "code": 503, "times": 2}]})
    harness.run(harness.start(5))
    assert calls._value.get() > ok_before
    assert errors._value.get() == errors_before + 2


def test_reconciler_findings_are_counted() -> None:
    before = events.RECONCILER_FINDINGS.labels(kind="chains_restarted")._value.get()
    passes = events.RECONCILER_PASSES._value.get()
    events.reconciler_pass({"chains_restarted": 2, "unreadable": 0})
    assert events.RECONCILER_FINDINGS.labels(kind="chains_restarted")._value.get() == before + 2
    assert events.RECONCILER_PASSES._value.get() == passes + 1
    assert events.RECONCILER_LAST_PASS._value.get() > 0


def test_the_endpoint(harness) -> None:
    settings = harness.settings.model_copy(
        update={"metrics_host": "127.0.0.1", "metrics_cache_seconds": 0.0}
    )
    harness.run(harness.start(4))
    assert serve_metrics(settings) is None  # off unless a port is set
    server = serve_metrics(settings, 0)
    assert server is not None
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
        assert answer.status_code == 200
        samples = parse(answer.text)
        assert value(samples, "shardline_runs", state="succeeded") >= 1
        assert ("shardline_provider_calls_total",
                frozenset({"provider": "gemini", "code": "200"}.items())) in samples
        assert value(samples, "shardline_admission_waits_total", reason="file_bytes") >= 0
        assert serve_metrics(settings, 0) is server  # one endpoint per process
    finally:
        server.shutdown()
        server.server_close()
    again = serve_metrics(settings, 0)  # the closed one is not handed out
    assert again is not None and again is not server
    again.shutdown()
    again.server_close()
