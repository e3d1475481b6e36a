"""The run budget and the cost figures of the summary, on the in-process emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.budget import BUDGET_EXCEEDED, part_estimate
from shared.errors import InputError
from shared.pipeline.plan import plan_run


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _shard_cost(harness, ctx) -> float:
    plan = plan_run(ctx)
    first = plan.shards[0]
    cost = part_estimate(ctx.manifest.model, first.requests, first.estimated_tokens,
                         harness.settings.estimate_output_tokens).total
    assert cost is not None and cost > 0
    return cost


def test_parts_past_the_budget_are_not_submitted(harness) -> None:
    probe = harness.start(30, shard_max_requests=10)
    per_shard = _shard_cost(harness, probe)
    ctx = harness.start(30, shard_max_requests=10,
                          spec_fields={"cache": False, "max_cost": per_shard * 1.5})
    summary = harness.run(ctx)
    assert len(harness.emulator.jobs()) == 1  # the probe submitted nothing
    assert summary.state == "partial" and summary.accounted
    assert summary.counts.results == 10 and summary.counts.errors == 20
    errors = _lines(Path(ctx.output_uri) / "errors.jsonl")
    assert [e["key"] for e in errors] == [f"k{n}" for n in range(11, 31)]
    assert {e["error"]["status"] for e in errors} == {BUDGET_EXCEEDED}
    plan = ctx.store.plan()
    assert plan is not None and plan.held == 20
    assert plan.estimated_cost is not None and plan.estimated_cost.total == pytest.approx(
        per_shard, rel=1e-3)


def test_a_budget_that_covers_the_run_changes_nothing(harness) -> None:
    ctx = harness.start(20, shard_max_requests=10, spec_fields={"max_cost": 100.0})
    summary = harness.run(ctx)
    assert summary.state == "succeeded" and summary.counts.results == 20


def test_cache_hits_cost_nothing_against_the_budget(harness) -> None:
    harness.run(harness.start(20, shard_max_requests=10))
    tiny = 1e-9
    ctx = harness.start(20, shard_max_requests=10, spec_fields={"max_cost": tiny})
    summary = harness.run(ctx)
    assert summary.state == "succeeded" and summary.counts.cached == 20


def test_a_budget_needs_a_known_price(harness) -> None:
    ctx = harness.start(5, spec_fields={"max_cost": 1.0})
    ctx.manifest.model = "gemini-unknown-9"
    with pytest.raises(InputError, match="max_cost needs a price for gemini-unknown-9"):
        plan_run(ctx)  # the plan task turns this into a failed run that says why


def test_the_summary_gives_actual_estimated_and_interactive_cost(harness) -> None:
    ctx = harness.start(20, shard_max_requests=10)
    summary = harness.run(ctx)
    assert summary.cost.total is not None and summary.cost.total > 0
    assert summary.interactive_cost is not None and summary.interactive_cost.total is not None
    assert summary.interactive_cost.total == pytest.approx(2 * summary.cost.total, rel=1e-2)
    assert summary.estimated_cost is not None and summary.estimated_cost.total is not None
    assert "batch price" in summary.cost.basis and "interactive" in summary.interactive_cost.basis
