"""The request cache across runs, on the in-process emulator: never pay twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from shared.cache import RequestCache
from shared.pipeline.context import RunContext
from shared.pipeline.start import register_run
from shared.run import layout
from shared.run.spec import RunOptions, RunSpec
from shared.storage import open_storage


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, prompts: list[str], keys: list[str] | None = None) -> Path:
    with path.open("w") as out:
        for n, prompt in enumerate(prompts, 1):
            key = keys[n - 1] if keys else f"k{n}"
            request = {"contents": [{"parts": [{"text": prompt}]}]}
            out.write(json.dumps({"key": key, "request": request, "n": n}) + "\n")
    return path


def _start(harness, prompts: list[str], keys: list[str] | None = None, **spec: Any
           ) -> RunContext:
    stamp = time.monotonic_ns()
    source = _write(harness.tmp / f"in-{stamp}.jsonl", prompts, keys)
    options = RunOptions(shard_max_requests=spec.pop("shard_max_requests", 10))
    run = RunSpec(input_uri=str(source), output_uri=str(harness.tmp / f"out-{stamp}"),
                  options=options, **spec)
    started = register_run(harness.settings, run)
    return RunContext(harness.settings, started.run_id, started.output_uri)


def _sent(harness) -> int:
    """Requests the provider was asked, over every batch job so far."""
    return sum(job["requestCount"] for job in harness.emulator.jobs())


def _results(ctx: RunContext) -> list[dict[str, Any]]:
    return _lines(Path(ctx.output_uri) / layout.RESULTS)


def test_a_second_run_of_the_same_input_sends_nothing(harness) -> None:
    prompts = [f"prompt {n}" for n in range(25)]
    first = harness.run(ctx := _start(harness, prompts))
    assert first.counts.cached == 0 and _sent(harness) == 25
    jobs, uploads = len(harness.emulator.jobs()), len(harness.emulator.uploads())
    again = _start(harness, prompts)
    second = harness.run(again)
    assert len(harness.emulator.jobs()) == jobs and len(harness.emulator.uploads()) == uploads
    assert second.counts.model_dump() == {
        "lines": 25, "results": 25, "errors": 0, "rejected": 0, "cached": 25}
    assert second.accounted and second.state == "succeeded" and second.jobs == []
    assert second.tokens.total == 0 and second.cost.total == 0
    assert _results(again) == _results(ctx)  # same keys, metadata, responses, input order


def test_an_input_that_overlaps_by_90_percent_sends_only_the_rest(harness) -> None:
    harness.run(_start(harness, [f"prompt {n}" for n in range(100)]))
    before = _sent(harness)
    prompts = [f"prompt {n}" for n in range(10, 100)] + [f"new {n}" for n in range(10)]
    prompts[40:40] = prompts[-10:]  # the new lines in the middle
    del prompts[-10:]
    ctx = _start(harness, prompts)
    summary = harness.run(ctx)
    assert _sent(harness) - before == 10
    assert summary.counts.cached == 90 and summary.counts.results == 100
    assert [r["n"] for r in _results(ctx)] == list(range(1, 101))
    plan = ctx.store.plan()
    assert plan is not None and plan.cached == 90


def test_one_changed_byte_is_a_miss(harness) -> None:
    harness.run(_start(harness, ["alpha", "beta"]))
    before = _sent(harness)
    summary = harness.run(_start(harness, ["alpha", "betb"]))
    assert _sent(harness) - before == 1 and summary.counts.cached == 1


def test_identical_requests_under_other_keys_each_go_to_the_provider(harness) -> None:
    ctx = _start(harness, ["same", "same", "same"], keys=["a", "b", "c"])
    summary = harness.run(ctx)
    assert _sent(harness) == 3 and summary.counts.cached == 0
    # Run again with one more copy: the three earlier answers come back, the fourth is asked.
    again = _start(harness, ["same"] * 4, keys=["a", "b", "c", "d"])
    second = harness.run(again)
    assert _sent(harness) == 4 and second.counts.cached == 3
    assert [r["key"] for r in _results(again)] == ["a", "b", "c", "d"]


def test_per_request_errors_are_never_cached(harness) -> None:
    harness.emulator.set_faults({"seed": 3, "jobs": [{"request_errors": {
        "rate": 0.3, "code": 400, "status": "INVALID_ARGUMENT", "message": "bad"}}]})
    prompts = [f"p{n}" for n in range(30)]
    first = harness.run(_start(harness, prompts))
    failed = first.counts.errors
    assert failed > 0
    harness.emulator.set_faults({})
    before = _sent(harness)
    second = harness.run(_start(harness, prompts))
    assert _sent(harness) - before == failed
    assert second.counts.cached == 30 - failed and second.counts.errors == 0


def test_a_run_without_the_cache_neither_reads_nor_writes_it(harness) -> None:
    prompts = [f"q{n}" for n in range(12)]
    harness.run(_start(harness, prompts, cache=False))
    cache = RequestCache(open_storage(harness.settings.cache_location()))
    assert cache.stats().entries == 0
    harness.run(_start(harness, prompts))
    before = _sent(harness)
    summary = harness.run(_start(harness, prompts, cache=False))
    assert _sent(harness) - before == 12 and summary.counts.cached == 0


def test_a_partly_cached_shard_joins_hits_and_answers_in_input_order(harness) -> None:
    harness.run(_start(harness, [f"x{n}" for n in range(0, 30, 2)], shard_max_requests=50))
    ctx = _start(harness, [f"x{n}" for n in range(30)], shard_max_requests=7)
    summary = harness.run(ctx)
    assert summary.counts.cached == 15 and summary.counts.results == 30
    assert [r["n"] for r in _results(ctx)] == list(range(1, 31))
    shard = ctx.store.attempt(0, 1)
    assert shard is not None and shard.parts[0].requests == 3  # x1, x3, x5 of x0..x6


def test_a_broken_cache_costs_the_savings_not_the_run(harness) -> None:
    cache_root = Path(harness.settings.cache_location())
    cache_root.mkdir(parents=True)
    (cache_root / "v1").write_text("not a directory")  # every read and write of it fails
    ctx = _start(harness, [f"b{n}" for n in range(15)])
    summary = harness.run(ctx)
    assert summary.state == "succeeded" and summary.counts.results == 15
    assert summary.counts.cached == 0 and _sent(harness) == 15


def test_a_corrupt_segment_makes_the_plan_go_without_the_cache(harness) -> None:
    prompts = [f"c{n}" for n in range(15)]
    harness.run(_start(harness, prompts))
    cache = RequestCache(open_storage(harness.settings.cache_location()))
    segment = next(iter(cache.storage.list("v1/")))
    cache.storage.write_bytes(segment.key, b"garbage\n")
    summary = harness.run(_start(harness, prompts))
    assert summary.state == "succeeded" and summary.counts.cached == 0 and _sent(harness) == 30
