"""Peak memory of sending a run's shard chains to a real Redis broker, by shard count.

Each count runs in a child process (so ``ru_maxrss`` is its own) that acts as a worker does
(``task_join_will_block``: no result subscription per sent task) and sends every batch the
``send_shards`` tasks would send, one after another, in that one process: the worst case
for one worker. Prints the peak RSS above the process's RSS after imports and a warm-up
send, per count, and the ratio to the smallest count.

With ``--chord`` it builds the run's canvas the way it was built before the batches (one
chord holding every chain) instead, without sending it: the figure behind issue #10's
"50,000 shards took 407 MB just to build the task graph".

Usage: .venv/bin/python benchmarks/send_shards.py [--counts 1000,10000,50000]
       [--broker redis://127.0.0.1:6379/11] [--chord]
The broker's database is flushed before and after each count: give it one of its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
from celery import chain, chord
from celery._state import _set_task_join_will_block
from shared.settings import Settings
from workers.app import configure
from workers import canvas

count, broker, as_chord = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
app = configure(Settings(broker_url=broker, state_uri="/tmp/shardline-bench-state"))
_set_task_join_will_block(True)  # as in a worker process


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


canvas.send_shards("bench", "/tmp/out", list(range(10)), first=0)  # warm-up: connections
base = rss_mib()
shards = list(range(count))
if as_chord:
    built = chord([canvas.shard_chain("bench", "/tmp/out", s, 1) for s in shards],
                  canvas.merge_step("bench", "/tmp/out"))
else:
    first = 0
    while first < count:
        first += canvas.send_shards("bench", "/tmp/out", shards, first=first)
print(json.dumps({"count": count, "base_mib": base, "peak_above_base_mib": rss_mib() - base}))
"""


def flush(broker: str) -> None:
    import redis

    redis.Redis.from_url(broker).flushdb()


def measure(count: int, broker: str, as_chord: bool) -> dict[str, float]:
    flush(broker)
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(count), broker, "1" if as_chord else "0"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=3600,
        )
    finally:
        flush(broker)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,10000,50000")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--chord", action="store_true", help="build one chord (before)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    first: float | None = None
    for count in counts:
        result = measure(count, args.broker, args.chord)
        peak = result["peak_above_base_mib"]
        first = peak if first is None else first
        ratio = f"x{peak / first:.2f} of {counts[0]}" if first >= 1 else "flat"
        print(f"{'chord' if args.chord else 'batches'}: {count:>6} shards: peak "
              f"{peak:7.1f} MiB above the {result['base_mib']:.0f} MiB base ({ratio})")


if __name__ == "__main__":
    main()
