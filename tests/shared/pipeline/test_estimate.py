"""``estimate_run``: the plan's figures without a run."""

from __future__ import annotations

from pathlib import Path

from shared.pipeline.estimate import estimate_run
from shared.run.spec import RunOptions, RunSpec
from tests.shared.pipeline.conftest import write_requests


def _spec(source: Path, **fields) -> RunSpec:
    return RunSpec(input_uri=str(source), output_uri="-",
                   options=RunOptions(shard_max_requests=10), **fields)


def test_an_estimate_counts_what_the_plan_would_send(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 45, bad=(3,))
    estimate = estimate_run(harness.settings, _spec(source))
    assert (estimate.lines, estimate.accepted, estimate.rejected) == (45, 44, 1)
    assert (estimate.shards, estimate.jobs, estimate.to_send, estimate.cached) == (5, 5, 44, 0)
    assert estimate.estimated_output_tokens == 44 * harness.settings.estimate_output_tokens
    assert estimate.cost.total is not None and estimate.interactive_cost.total is not None
    assert abs(estimate.interactive_cost.total - 2 * estimate.cost.total) < 1e-5
    assert estimate.waves == 1 and estimate.best_seconds == harness.settings.estimate_job_seconds
    assert harness.emulator.uploads() == [] and harness.emulator.jobs() == []


def test_the_limits_make_waves(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 45)
    harness.settings.max_live_jobs_per_project = 2
    estimate = estimate_run(harness.settings, _spec(source))
    assert estimate.waves == 3 and "live jobs" in estimate.limited_by


def test_an_unknown_model_says_so(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 5)
    estimate = estimate_run(harness.settings, _spec(source, model="gemini-9-ultra"))
    assert estimate.cost.total is None
    assert "no price known for gemini-9-ultra" in estimate.cost.basis


def test_a_budget_in_the_estimate_holds_what_the_run_would(harness, tmp_path: Path) -> None:
    source = write_requests(tmp_path / "in.jsonl", 30)
    full = estimate_run(harness.settings, _spec(source))
    assert full.cost.total is not None
    capped = estimate_run(harness.settings, _spec(source, max_cost=full.cost.total / 2))
    assert capped.held == 20 and capped.to_send == 10 and capped.jobs == 1
