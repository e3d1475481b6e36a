"""The two pure decisions: may this execution run the step, and when is a subject overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.liveness import Lease, admits, overdue_at

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)


def lease(state: str, *, deadline: datetime = NOW, ticket: str | None = "t1",
          holder: str | None = None, restarts: int = 0) -> Lease:
    return Lease(subject="s00001", step="poll", attempt=1, state=state,  # type: ignore[arg-type]
                 ticket=ticket, holder=holder, deadline=deadline, restarts=restarts)


def test_nothing_recorded_or_done_admits_anyone() -> None:
    assert admits(None, ticket="x", holder="h", now=NOW, grace=GRACE)
    assert admits(lease("done"), ticket="x", holder="h", now=NOW, grace=GRACE)


def test_a_live_lease_of_another_execution_makes_a_second_delivery_step_aside() -> None:
    held = lease("running", holder="first", deadline=NOW + timedelta(seconds=30))
    assert not admits(held, ticket="t1", holder="second", now=NOW, grace=GRACE)
    assert admits(held, ticket="t1", holder="first", now=NOW, grace=GRACE)


def test_a_lapsed_lease_lets_the_second_delivery_take_over() -> None:
    lapsed = lease("running", holder="first", deadline=NOW - timedelta(seconds=1))
    assert admits(lapsed, ticket="t1", holder="second", now=NOW, grace=GRACE)


def test_a_waiting_record_admits_its_own_message_and_turns_away_stale_copies() -> None:
    waiting = lease("waiting", ticket="new", deadline=NOW + timedelta(seconds=100))
    assert admits(waiting, ticket="new", holder="h", now=NOW, grace=GRACE)
    assert not admits(waiting, ticket="old", holder="h", now=NOW, grace=GRACE)
    assert admits(lease("waiting", ticket=None), ticket="any", holder="h", now=NOW,
                  grace=GRACE)


def test_a_stale_copy_takes_over_once_the_expected_message_is_overdue() -> None:
    waiting = lease("waiting", ticket="new", deadline=NOW - GRACE)
    assert admits(waiting, ticket="old", holder="h", now=NOW, grace=GRACE)
    assert not admits(waiting, ticket="old", holder="h", now=NOW - timedelta(seconds=1),
                      grace=GRACE)


def test_overdue_is_the_lease_expiry_or_the_due_time_plus_a_growing_grace() -> None:
    assert overdue_at(lease("running", holder="h"), GRACE) == NOW
    assert overdue_at(lease("waiting"), GRACE) == NOW + GRACE
    assert overdue_at(lease("waiting", restarts=1), GRACE) == NOW + 2 * GRACE
    assert overdue_at(lease("waiting", restarts=9), GRACE) == NOW + 16 * GRACE
    assert overdue_at(lease("done"), GRACE) is None
