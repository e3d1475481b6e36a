"""A step's lease in storage and in the index: take, renew, hand on, wait, finish."""

from __future__ import annotations

import time
from datetime import timedelta

from shared.liveness import MERGE, StepWatch, expect, read_lease, shard_subject
from shared.run.records import utcnow
from tests.shared.liveness.conftest import World


def watch(world: World, *, subject: str = "s00000", step: str = "upload",
          ticket: str | None = "t1", holder: str | None = None) -> StepWatch:
    return StepWatch(world.storage, world.index, world.settings, run_id=world.run_id,
                     output_uri=world.output_uri, subject=subject, step=step,  # type: ignore[arg-type]
                     attempt=1, ticket=ticket, holder=holder)


def test_begin_records_a_running_lease_and_indexes_its_expiry(world: World) -> None:
    first = watch(world, holder="first")
    assert first.begin()
    lease = read_lease(world.storage, "s00000")
    assert lease is not None and lease.state == "running" and lease.holder == "first"
    score = world.index.score(world.run_id, "s00000")
    assert score == lease.deadline.timestamp()
    assert lease.deadline - utcnow() <= timedelta(seconds=world.settings.lease_seconds)


def test_a_second_delivery_steps_aside_while_the_first_holds_the_lease(world: World) -> None:
    assert watch(world, holder="first").begin()
    assert not watch(world, holder="second").begin()
    lease = read_lease(world.storage, "s00000")
    assert lease is not None and lease.holder == "first"


def test_a_lapsed_lease_is_taken_over(world: World) -> None:
    assert watch(world, holder="first").begin()
    later = utcnow() + timedelta(seconds=world.settings.lease_seconds + 1)
    assert watch(world, holder="second").begin(now=later)


def test_the_heartbeat_pushes_the_expiry_on(world: World) -> None:
    world.settings = world.settings.model_copy(update={"lease_seconds": 3.0})
    held = watch(world)
    assert held.begin()
    before = read_lease(world.storage, "s00000")
    held.start_heartbeat()
    time.sleep(2.5)  # a renewal every second
    held.stop_heartbeat()
    after = read_lease(world.storage, "s00000")
    assert before is not None and after is not None and after.deadline > before.deadline
    assert world.index.score(world.run_id, "s00000") == after.deadline.timestamp()


def test_a_holder_that_lost_its_lease_stops_renewing_and_writes_nothing(world: World) -> None:
    first = watch(world, holder="first")
    assert first.begin()
    later = utcnow() + timedelta(seconds=world.settings.lease_seconds + 1)
    assert watch(world, holder="second").begin(now=later)
    assert not first.renew()
    first.hand_on("create", 1, "next")
    lease = read_lease(world.storage, "s00000")
    assert lease is not None and lease.holder == "second" and lease.state == "running"


def test_wait_records_the_retry_and_its_due_time(world: World) -> None:
    held = watch(world, step="poll")
    assert held.begin()
    now = utcnow()
    held.wait("retry-2", 300, now=now)
    lease = read_lease(world.storage, "s00000")
    assert lease is not None and (lease.state, lease.ticket) == ("waiting", "retry-2")
    assert lease.deadline == now + timedelta(seconds=300)
    grace = world.settings.liveness_grace_seconds
    assert world.index.score(world.run_id, "s00000") == (lease.deadline.timestamp() + grace)
    # The old copy of the poll's message finds a newer one expected and steps aside.
    assert not watch(world, step="poll", ticket="retry-1").begin()
    assert watch(world, step="poll", ticket="retry-2").begin()


def test_hand_on_expects_the_next_step_now(world: World) -> None:
    held = watch(world)
    assert held.begin()
    held.hand_on("create", 1, "create-id")
    lease = read_lease(world.storage, "s00000")
    assert lease is not None and (lease.state, lease.step, lease.ticket) == (
        "waiting", "create", "create-id")


def test_the_last_shard_to_finish_expects_the_merge(world: World) -> None:
    for shard in (0, 1):
        expect(world.storage, world.index, world.settings, run_id=world.run_id,
               output_uri=world.output_uri, subject=shard_subject(shard), step="upload",
               attempt=1, ticket=None, due=utcnow())
    first = watch(world, subject="s00000", step="collect")
    assert first.begin()
    first.finish()
    assert world.index.score(world.run_id, "s00000") is None
    assert read_lease(world.storage, MERGE) is None
    last = watch(world, subject="s00001", step="collect")
    assert last.begin()
    last.finish()
    merge = read_lease(world.storage, MERGE)
    assert merge is not None and merge.state == "waiting" and merge.ticket is None
    assert world.index.score(world.run_id, MERGE) is not None
