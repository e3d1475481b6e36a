"""The deadline check restarts what is overdue, after verifying it against storage."""

from __future__ import annotations

from datetime import timedelta

from shared.liveness import (
    MERGE,
    PLAN,
    StepWatch,
    check_deadlines,
    expect,
    message_ticket,
    read_lease,
    shard_subject,
)
from shared.run import layout
from shared.run.records import ShardOutcome, utcnow
from shared.storage import open_storage
from tests.shared.liveness.conftest import Calls, World


def running(world: World, subject: str, step: str = "upload") -> StepWatch:
    held = StepWatch(world.storage, world.index, world.settings, run_id=world.run_id,
                     output_uri=world.output_uri, subject=subject, step=step,  # type: ignore[arg-type]
                     attempt=2, ticket="t")
    assert held.begin()
    return held


def after(world: World, seconds: float):  # type: ignore[no-untyped-def]
    return utcnow() + timedelta(seconds=seconds)


def test_nothing_overdue_nothing_read(world: World, calls: Calls) -> None:
    for shard in range(50):
        running(world, shard_subject(shard))
    opened: list[str] = []

    def storage_for(uri: str):  # type: ignore[no-untyped-def]
        opened.append(uri)
        return open_storage(uri)

    world.index.mark_built()
    report = check_deadlines(world.settings, world.index, calls, storage_for=storage_for)
    assert report.due == 0 and opened == [] and calls.chains == []


def test_a_lapsed_lease_restarts_the_shard_chain_once(world: World, calls: Calls) -> None:
    running(world, "s00003")
    world.index.mark_built()
    later = after(world, world.settings.lease_seconds + 1)
    report = check_deadlines(world.settings, world.index, calls, now=later)
    assert report.restarted == [f"{world.run_id}/s00003"]
    [(run_id, shard, attempt, task_id)] = calls.chains
    assert (run_id, shard, attempt) == (world.run_id, 3, 2)
    lease = read_lease(world.storage, "s00003")
    assert lease is not None and lease.state == "waiting"
    assert lease.ticket == message_ticket(task_id)
    assert lease.restarts == 1
    # Checked again at once: the restart is not overdue yet; nothing is sent twice.
    check_deadlines(world.settings, world.index, calls, now=later)
    assert len(calls.chains) == 1


def test_a_restart_that_is_lost_too_is_retried_later_each_time(world: World,
                                                               calls: Calls) -> None:
    running(world, "s00000")
    world.index.mark_built()
    grace = world.settings.liveness_grace_seconds
    moment = after(world, world.settings.lease_seconds + 1)
    check_deadlines(world.settings, world.index, calls, now=moment)
    check_deadlines(world.settings, world.index, calls, now=moment + timedelta(seconds=grace + 1))
    assert len(calls.chains) == 1, "the first restart waits two graces"
    check_deadlines(world.settings, world.index, calls,
                    now=moment + timedelta(seconds=2 * grace + 1))
    assert len(calls.chains) == 2


def test_an_overdue_poll_is_restarted_and_a_renewed_lease_only_reindexed(
        world: World, calls: Calls) -> None:
    held = running(world, "s00001", "poll")
    held.wait("retry", 10)
    held2 = running(world, "s00002", "collect")
    world.index.mark_built()
    stale = world.index.score(world.run_id, "s00002")
    grace = world.settings.liveness_grace_seconds
    later = after(world, 10 + grace + 1)
    # s00002's task renewed its lease, but the index missed it (say Redis was unreachable).
    held2.renew(now=later)
    world.index.client.zadd("shardline:{deadlines}:index",
                            {f"{world.run_id}|s00002": stale})
    report = check_deadlines(world.settings, world.index, calls, now=later)
    assert [c[1] for c in calls.chains] == [1]
    assert report.reindexed == 1
    assert world.index.score(world.run_id, "s00002") > later.timestamp()


def test_a_lost_plan_and_a_lost_merge_are_sent_again(world: World, calls: Calls) -> None:
    for subject, step in ((PLAN, "plan"), (MERGE, "merge")):
        expect(world.storage, world.index, world.settings, run_id=world.run_id,
               output_uri=world.output_uri, subject=subject, step=step,  # type: ignore[arg-type]
               attempt=0, ticket="lost", due=utcnow())
    world.index.mark_built()
    check_deadlines(world.settings, world.index, calls,
                    now=after(world, world.settings.liveness_grace_seconds + 1))
    assert [p[0] for p in calls.plans] == [world.run_id]
    assert [m[0] for m in calls.merges] == [world.run_id]


def test_a_final_shard_whose_task_died_is_closed_not_restarted(world: World,
                                                               calls: Calls) -> None:
    running(world, "s00000", "collect")
    world.index.mark_built()
    outcome = ShardOutcome(shard=0, state="succeeded", requests=1, results=1, errors=0,
                           attempts=1)
    world.storage.write_bytes(layout.shard_outcome(0), outcome.model_dump_json().encode())
    check_deadlines(world.settings, world.index, calls,
                    now=after(world, world.settings.lease_seconds + 1))
    assert calls.chains == []
    lease = read_lease(world.storage, "s00000")
    assert lease is not None and lease.state == "done"
    merge = read_lease(world.storage, MERGE)
    assert merge is not None and merge.state == "waiting", "the last shard expects the merge"


def test_a_finished_run_is_forgotten(world: World, calls: Calls) -> None:
    running(world, "s00000")
    world.index.mark_built()
    world.storage.write_bytes(layout.SUMMARY, b"{}")
    report = check_deadlines(world.settings, world.index, calls,
                             now=after(world, world.settings.lease_seconds + 1))
    assert report.dropped == 1 and calls.chains == []
    assert world.index.output_uri(world.run_id) is None


def test_a_lost_index_is_rebuilt_from_the_lease_records(world: World, calls: Calls) -> None:
    running(world, "s00000")
    running(world, "s00001").finish()
    world.index.client.flushall()
    report = check_deadlines(world.settings, world.index, calls,
                             now=after(world, world.settings.lease_seconds + 1))
    assert report.rebuilt == 2
    assert world.index.built()
    assert [c[1] for c in calls.chains] == [0]


def test_a_queued_message_behind_a_backlog_is_not_presumed_lost(world: World,
                                                                calls: Calls) -> None:
    held = running(world, "s00000", "upload")
    held.hand_on("create", 2, "create-id:0")
    world.index.mark_built()
    grace = world.settings.liveness_grace_seconds
    calls.ready = 10_000
    check_deadlines(world.settings, world.index, calls, now=after(world, 3 * grace))
    assert calls.chains == [], "the create message may still be in the queue"
    calls.ready = 0
    check_deadlines(world.settings, world.index, calls, now=after(world, 3 * grace))
    assert [c[1] for c in calls.chains] == [0], "queue empty: the message was lost"


def test_a_very_late_queued_message_is_restarted_even_behind_a_backlog(
        world: World, calls: Calls) -> None:
    running(world, "s00000", "upload").hand_on("create", 2, "create-id:0")
    world.index.mark_built()
    calls.ready = 10_000
    grace = world.settings.liveness_grace_seconds
    check_deadlines(world.settings, world.index, calls, now=after(world, 18 * grace))
    assert [c[1] for c in calls.chains] == [0]


def test_an_unreadable_lease_is_reported_by_name_and_the_rest_still_checked(
        world: World, calls: Calls) -> None:
    running(world, "s00000")
    running(world, "s00001")
    world.index.mark_built()
    world.storage.write_bytes(layout.lease("s00000"), b'{"subject": "s00000"}')
    report = check_deadlines(world.settings, world.index, calls,
                             now=after(world, world.settings.lease_seconds + 1))
    assert report.unreadable == [f"{world.run_id}/s00000"]
    assert [c[1] for c in calls.chains] == [1]


def test_a_lost_batch_of_shard_chains_is_sent_again_from_where_it_was(
        world: World, calls: Calls) -> None:
    held = StepWatch(world.storage, world.index, world.settings, run_id=world.run_id,
                     output_uri=world.output_uri, subject=PLAN, step="send", attempt=0,
                     ticket="t")
    assert held.begin()
    held.hand_on("send", 1000, "next-batch:0")
    world.index.mark_built()
    check_deadlines(world.settings, world.index, calls,
                    now=after(world, world.settings.liveness_grace_seconds + 1))
    assert calls.sends == [(world.run_id, 1000)] and calls.plans == []
