"""The reconciler restarts what nobody moves, and leaves alone what is moving."""

from __future__ import annotations

import time
from datetime import timedelta

from shared.admission import Admission
from shared.coordination import coordination_redis
from shared.pipeline.create import create_attempt
from shared.pipeline.plan import plan_run
from shared.pipeline.reconcile import reconcile, stale_after
from shared.pipeline.upload import upload_attempt
from shared.run.records import utcnow


class Calls:
    def __init__(self) -> None:
        self.chains: list[tuple[str, int, int]] = []
        self.merges: list[str] = []
        self.plans: list[str] = []

    def kwargs(self) -> dict:
        return {
            "restart_chain": lambda run, out, shard, attempt: self.chains.append(
                (run, shard, attempt)),
            "restart_merge": lambda run, out: self.merges.append(run),
            "restart_plan": lambda run, out: self.plans.append(run),
        }


def test_fresh_runs_are_left_alone(harness) -> None:
    ctx = harness.start(10, shard_max_requests=5)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    calls = Calls()
    report = reconcile(harness.settings, **calls.kwargs())
    assert report.runs_checked == 1
    assert calls.chains == calls.merges == calls.plans == []


def test_stale_shards_get_their_latest_attempt_restarted(harness) -> None:
    ctx = harness.start(10, shard_max_requests=5)
    plan_run(ctx)
    harness.drive_shard(ctx, 0)
    upload_attempt(ctx, 1, 1)
    create_attempt(ctx, 1, 1)
    calls = Calls()
    later = utcnow() + stale_after(harness.settings) + timedelta(seconds=1)
    reconcile(harness.settings, now=later, **calls.kwargs())
    assert calls.chains == [(ctx.run_id, 1, 1)] and calls.merges == []


def test_a_run_with_every_shard_final_gets_its_merge(harness) -> None:
    ctx = harness.start(10, shard_max_requests=5)
    plan = plan_run(ctx)
    for shard in plan.shards:
        harness.drive_shard(ctx, shard.index)
    calls = Calls()
    later = utcnow() + stale_after(harness.settings) + timedelta(seconds=1)
    reconcile(harness.settings, now=later, **calls.kwargs())
    assert calls.merges == [ctx.run_id] and calls.chains == []
    harness.run(ctx)
    calls = Calls()
    assert reconcile(harness.settings, now=later, **calls.kwargs()).runs_checked == 0


def test_an_unplanned_run_is_planned_again(harness) -> None:
    ctx = harness.start(4)
    calls = Calls()
    later = utcnow() + stale_after(harness.settings) + timedelta(seconds=1)
    reconcile(harness.settings, now=later, **calls.kwargs())
    assert calls.plans == [ctx.run_id]


def test_leaked_admission_holdings_are_freed(harness) -> None:
    ctx = harness.start(4)
    plan_run(ctx)
    upload_attempt(ctx, 0, 1)
    create_attempt(ctx, 0, 1)
    clock = [time.time()]
    admission = Admission(
        coordination_redis(harness.settings), harness.settings, clock=lambda: clock[0]
    )
    fingerprint = ctx.keys.fingerprints[0]
    live, leaked = f"{ctx.run_id}:0:1:0", f"{ctx.run_id}:9:1:0"
    # A worker died after acquiring a slot for a part it never recorded.
    admission.acquire_job(fingerprint, leaked, "gemini-2.5-flash", 10)

    def holders() -> set[str]:
        return {h.holder for h in admission.snapshot(fingerprint).jobs}

    assert holders() == {live, leaked}
    report = reconcile(harness.settings, admission=admission, **Calls().kwargs())
    assert report.live_jobs[fingerprint] == {live}
    assert report.admission_dropped == 0 and holders() == {live, leaked}  # grace period
    clock[0] += 3600
    report = reconcile(harness.settings, admission=admission, **Calls().kwargs())
    assert report.admission_dropped == 1 and holders() == {live}
