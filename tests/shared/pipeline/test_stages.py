"""The stages in order, on a real emulator: the happy path and what each record says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import AccessError, InputFileError, RetryLater, SpecError
from shared.pipeline.merge import merge_run
from shared.pipeline.plan import plan_run
from shared.pipeline.progress import read_progress
from shared.pipeline.start import register_run
from shared.run import layout
from shared.run.spec import RunSpec


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_accounts_for_every_line(harness) -> None:
    ctx = harness.start(45, bad=(7, 30), shard_max_requests=10)
    summary = harness.run(ctx)
    out = Path(ctx.output_uri)
    results = _lines(out / layout.RESULTS)
    assert [r["key"] for r in results] == [f"k{n}" for n in range(1, 46) if n not in (7, 30)]
    assert all(r["n"] == int(r["key"][1:]) for r in results)
    assert [r["line"] for r in _lines(out / layout.REJECTED)] == [7, 30]
    assert summary.counts.model_dump() == {"lines": 45, "results": 43, "errors": 0, "rejected": 2}
    assert summary.accounted and summary.state == "succeeded"
    assert summary.shards == 5 and len(summary.jobs) == 5
    assert summary.tokens.total > 0 and summary.cost.total is not None
    assert read_progress(ctx.store).state == "succeeded"


def test_merge_waits_for_every_shard(harness) -> None:
    ctx = harness.start(20, shard_max_requests=10)
    plan_run(ctx)
    harness.drive_shard(ctx, 0)
    with pytest.raises(RetryLater, match="1 of 2 shards final, waiting for shard 1"):
        merge_run(ctx)
    harness.drive_shard(ctx, 1)
    assert merge_run(ctx).counts.results == 20


def test_plan_is_done_once(harness) -> None:
    ctx = harness.start(12, shard_max_requests=5)
    first = plan_run(ctx)
    assert plan_run(ctx) == first
    assert [s.requests for s in first.shards] == [5, 5, 2]


def test_provider_files_are_deleted_when_their_job_ends(harness) -> None:
    ctx = harness.start(10)
    harness.run(ctx)
    assert harness.emulator.files() == []  # inputs and generated outputs alike


def test_start_is_idempotent_per_key(harness, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"contents": [{"parts": [{"text": "x"}]}]}\n')
    spec = RunSpec(input_uri=str(source), output_uri=str(tmp_path / "o"), idempotency_key="day-1")
    first = register_run(harness.settings, spec)
    again = register_run(harness.settings, spec)
    assert first.created and not again.created and first.run_id == again.run_id
    other = spec.model_copy(update={"output_uri": str(tmp_path / "elsewhere")})
    with pytest.raises(SpecError, match="already used by this client for a different run spec"):
        register_run(harness.settings, other)


def test_start_names_a_missing_input(harness, tmp_path: Path) -> None:
    spec = RunSpec(input_uri=str(tmp_path / "nope.jsonl"), output_uri=str(tmp_path / "o"))
    with pytest.raises(InputFileError, match=r"nope\.jsonl: no such file"):
        register_run(harness.settings, spec)


def test_two_runs_never_share_an_output(harness, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"contents": [{"parts": [{"text": "x"}]}]}\n')
    out = str(tmp_path / "o")
    register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=out))
    with pytest.raises(AccessError, match="holds another run"):
        register_run(harness.settings, RunSpec(input_uri=str(source), output_uri=out))
