"""What one deadline check costs in Redis with 100,000 live shards indexed.

Fills the deadline index (both sorted sets, as workers do) with ``--shards`` live subjects
whose deadlines lie ahead, then times the check's Redis part (``DeadlineIndex.due``: two
``ZRANGEBYSCORE`` up to now) with nothing due and with 500 due, against one ``PING`` on the
same client. Uses the Redis database ``--db`` of 127.0.0.1:6379 and deletes its keys after.

    .venv/bin/python benchmarks/deadline_index.py --shards 100000 --db 12
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import redis

from shared.liveness import DeadlineIndex
from shared.liveness.index import INDEX, QUEUED, RUNS


def per_second(call, seconds: float = 2.0) -> float:  # type: ignore[no-untyped-def]
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=100_000)
    parser.add_argument("--db", type=int, default=12)
    args = parser.parse_args()
    client = redis.Redis(host="127.0.0.1", port=6379, db=args.db, decode_responses=True)
    index = DeadlineIndex(client)
    now = datetime.now(UTC)
    try:
        pipe = client.pipeline(transaction=False)
        for shard in range(args.shards):
            run = f"run-{shard // 1000}"
            ahead = now + timedelta(seconds=60 + shard % 600)
            pipe.zadd(QUEUED if shard % 4 == 0 else INDEX, {f"{run}|s{shard:05d}":
                                                            ahead.timestamp()})
            if shard % 1000 == 0:
                pipe.hset(RUNS, run, f"s3://bucket/{run}")
                pipe.execute()
        pipe.execute()
        memory = client.memory_usage(INDEX) or 0
        ping = per_second(client.ping)
        idle = per_second(lambda: index.due(now, 500, queued_until=now))
        later = now + timedelta(seconds=61)  # the first ~500 deadlines have passed
        due = len(index.due(later, 500, queued_until=later))
        busy = per_second(lambda: index.due(later, 500, queued_until=later))
    finally:
        client.delete(INDEX, QUEUED, RUNS)
    print(f"{args.shards:,} live subjects indexed, main set {memory / 1e6:.1f} MB")
    print(f"PING                          {ping:9,.0f}/s  1.0")
    print(f"due(): nothing due            {idle:9,.0f}/s  {ping / idle:.1f} x PING")
    print(f"due(): {due} due (500 + 500 cap) {busy:9,.0f}/s  {ping / busy:.1f} x PING")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
