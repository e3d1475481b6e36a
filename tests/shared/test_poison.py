"""The delivery count behind poison messages: deaths count, endings clear."""

from __future__ import annotations

import fakeredis
import pytest

from shared.poison import COUNT_TTL_SECONDS, DELIVERIES_PREFIX, Deliveries


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries(fakeredis.FakeRedis(decode_responses=True), limit=3)


def test_a_message_is_poison_after_limit_deliveries_died(deliveries: Deliveries) -> None:
    counts = [deliveries.begin("t1") for _ in range(4)]  # three deaths, then a fourth start
    assert counts == [1, 2, 3, 4]
    assert [deliveries.is_poison(c) for c in counts] == [False, False, False, True]


def test_an_ending_clears_the_count(deliveries: Deliveries) -> None:
    deliveries.begin("t1")
    deliveries.begin("t1")
    deliveries.end("t1")  # e.g. a countdown retry: not a death
    assert deliveries.begin("t1") == 1
    assert deliveries.begin("other") == 1


def test_counts_expire(deliveries: Deliveries) -> None:
    deliveries.begin("t1")
    ttl = deliveries._redis.ttl(DELIVERIES_PREFIX + "t1")
    assert 0 < ttl <= COUNT_TTL_SECONDS


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        Deliveries(fakeredis.FakeRedis(), limit=0)
