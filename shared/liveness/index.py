"""The deadline index: a Redis sorted set of when each live subject becomes overdue.

The deadline check asks ``ZRANGEBYSCORE index -inf now`` every few seconds: O(log n + k)
for n live subjects and k overdue ones, so 100,000 live shards cost the same as ten. Every
candidate is verified against its lease record in storage before anything is restarted, so
a stale or doubled entry costs one read, never a wrong restart.

Keys (one hash tag, so a Redis Cluster keeps them in one slot):

- ``shardline:{deadlines}:index`` — sorted set, member ``<run_id>|<subject>``, score the
  moment it becomes overdue (seconds since the epoch). A marker member ``~built`` with score
  +inf says the set was built from storage; when Redis loses the key (flush, restart without
  persistence, eviction) the marker goes with it and the next check rebuilds the set from
  the lease records (:func:`shared.liveness.check.rebuild_index`).
- ``shardline:{deadlines}:queued`` — the same for subjects waiting for a message sent
  without a countdown (a chain's next step, a restart): such a message may wait behind a
  backlog, so the check looks at this set only while the queue is empty, and at its
  oldest entries (``QUEUED_PATIENCE`` graces late) always.
- ``shardline:{deadlines}:runs`` — hash, run id → output URI (where its records are).
- ``shardline:{deadlines}:open:<run_id>`` — set of the run's shard subjects not yet final;
  the task that empties it expects the merge (see :meth:`DeadlineIndex.close_shard`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from shared import names

INDEX = names.REDIS_DEADLINES
QUEUED = names.REDIS_DEADLINES_QUEUED
RUNS = names.REDIS_DEADLINE_RUNS
REBUILD_LOCK = names.REDIS_DEADLINE_REBUILD
CHECK_LOCK = names.REDIS_DEADLINE_CHECK
BUILT = "~built"
_SEP = "|"
open_key = names.redis_open_shards


def member(run_id: str, subject: str) -> str:
    return f"{run_id}{_SEP}{subject}"


def parse_member(value: str) -> tuple[str, str]:
    run_id, _, subject = value.rpartition(_SEP)
    return run_id, subject


def _score(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


class DeadlineIndex:
    """Typed access to the deadline keys of one coordination Redis (``decode_responses``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def put(self, run_id: str, output_uri: str, subject: str, overdue: datetime | None,
            *, shard: bool, queued: bool = False) -> None:
        """Index (or, with ``overdue=None``, un-index) one subject."""
        pipe = self.client.pipeline(transaction=False)
        key = member(run_id, subject)
        if overdue is None:
            pipe.zrem(INDEX, key)
            pipe.zrem(QUEUED, key)
        else:
            pipe.zrem(INDEX if queued else QUEUED, key)
            pipe.zadd(QUEUED if queued else INDEX, {key: _score(overdue)})
            pipe.hset(RUNS, run_id, output_uri)
            if shard:
                pipe.sadd(open_key(run_id), subject)
        pipe.execute()

    def close_shard(self, run_id: str, subject: str) -> bool:
        """The shard is final: True if this call removed the run's last open shard."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(INDEX, member(run_id, subject))
        pipe.zrem(QUEUED, member(run_id, subject))
        pipe.srem(open_key(run_id), subject)
        pipe.scard(open_key(run_id))
        _, _, removed, left = pipe.execute()
        return bool(removed) and left == 0

    def due(self, now: datetime, limit: int, *, queued_until: datetime) -> list[tuple[str, str]]:
        """Up to ``limit`` (run id, subject) pairs overdue at ``now`` (queued ones: overdue
        at ``queued_until``), most overdue first."""
        found: list[object] = [
            *self.client.zrangebyscore(INDEX, "-inf", _score(now), start=0, num=limit),
            *self.client.zrangebyscore(QUEUED, "-inf", _score(queued_until), start=0,
                                       num=limit),
        ]
        return [parse_member(str(value)) for value in found]

    def score(self, run_id: str, subject: str) -> float | None:
        key = member(run_id, subject)
        value = self.client.zscore(INDEX, key)
        if value is None:
            value = self.client.zscore(QUEUED, key)
        return None if value is None else float(value)

    def output_uri(self, run_id: str) -> str | None:
        value = self.client.hget(RUNS, run_id)
        return None if value is None else str(value)

    def forget_run(self, run_id: str) -> None:
        """The run is finished: drop what the index keeps about it (its members go one by
        one as the check meets them)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(RUNS, run_id)
        pipe.delete(open_key(run_id))
        pipe.execute()

    def built(self) -> bool:
        return self.client.zscore(INDEX, BUILT) is not None

    def mark_built(self) -> None:
        self.client.zadd(INDEX, {BUILT: float("inf")})

    def claim(self, key: str, seconds: float) -> bool:
        """A fleet-wide turn: True for the one caller that set ``key`` (it expires)."""
        return bool(self.client.set(key, "1", nx=True, px=max(1, int(seconds * 1000))))

    def release(self, key: str) -> None:
        self.client.delete(key)
