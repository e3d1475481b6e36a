"""The request cache's cost per line at 0 % and 100 % hit rates, beside the plan's own pass.

For N lines (default 1 M, ~250-byte prompts, 50,000-line shards):

1. ``split_input`` stages the shards (the plan's pass without the cache: the reference);
2. ``apply_cache`` against an empty cache (0 % hits): hash every line, list the buckets,
   write the keys files;
3. the cache is filled as the collect stage would fill it: ``remember`` once per shard of
   (key, ~400-byte response) pairs;
4. the shards are staged again and ``apply_cache`` runs at 100 % hits: lookups, ranged
   reads of every response, ``cached.jsonl`` written, the staged inputs emptied.

Each timed step runs in a child process, so its peak RSS is its own. ``--s3-endpoint URL``
puts the cache on S3 (a fresh bucket there, deleted afterwards), so every list and read
pays object-storage latency; the run's own files stay local in both cases.

Usage: .venv/bin/python benchmarks/cache_lookup.py [--lines 1000000]
       [--s3-endpoint http://127.0.0.1:8333]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.cache import RequestCache, apply_cache, namespace
from shared.jsonl import split_input
from shared.run import layout
from shared.run.records import ShardPlan
from shared.storage import open_storage

SHARD_REQUESTS = 50_000
WORDS = ["the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he", "was", "for",
         "on", "are", "as", "with", "his", "they", "at", "be", "this"]
SPACE = namespace(endpoint="http://bench", model="gemini-2.5-flash", kind="generate")


def write_input(path: Path, lines: int) -> None:
    rng = random.Random(7)
    with path.open("w") as out:
        for n in range(lines):
            prompt = " ".join(rng.choice(WORDS) for _ in range(60))
            out.write(json.dumps({"key": f"k{n}", "request": {
                "contents": [{"parts": [{"text": f"{n}: {prompt}"}]}]}, "doc": n}) + "\n")


def split(source: Path, run_uri: str) -> list[dict[str, Any]]:
    with source.open("rb") as reader:
        result = split_input(reader, open_storage(run_uri), kind="generate",
                             shard_max_bytes=2_000_000_000, shard_max_requests=SHARD_REQUESTS,
                             source=str(source))
    return [shard.model_dump() for shard in result.shards]


def lookup(run_uri: str, cache_uri: str, shards: list[dict[str, Any]]) -> int:
    found = apply_cache(open_storage(run_uri), RequestCache(open_storage(cache_uri)), SPACE,
                        [ShardPlan.model_validate(shard) for shard in shards])
    return sum(shard.cached for shard in found)


def fill(run_uri: str, cache_uri: str, shards: list[dict[str, Any]]) -> int:
    run, cache = open_storage(run_uri), RequestCache(open_storage(cache_uri))
    response = b'{"candidates":[{"content":{"parts":[{"text":"%s"}],"role":"model"}}]}' % (
        b"an answer " * 32)
    total = 0
    for shard in shards:
        with run.open_read(layout.shard_cache_keys(shard["index"])) as rows:
            pairs = [(row.split()[1], response) for row in rows]
        total += cache.remember(pairs)
    return total


def warm_up(cache_uri: str) -> None:
    """Create the bucket (SeaweedFS creates it on the first write)."""
    open_storage(cache_uri).write_bytes("warm-up", b"x")


def clean_up(cache_uri: str) -> int:
    return open_storage(cache_uri.rsplit("/", 1)[0]).delete_prefix("")


def in_child(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float, int]:
    """``fn(*args)`` in a child: (result, wall s, cpu s, peak RSS bytes)."""
    parent, child = multiprocessing.Pipe()

    def run() -> None:
        started, cpu = time.perf_counter(), time.process_time()
        value = fn(*args)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        child.send((value, time.perf_counter() - started, time.process_time() - cpu,
                    usage.ru_maxrss * 1024))

    process = multiprocessing.get_context("fork").Process(target=run)
    process.start()
    child.close()
    try:
        value = parent.recv()
    except EOFError:
        raise SystemExit(f"{fn.__name__} died (exit code {process.join() or process.exitcode})"
                         ) from None
    process.join()
    return value  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--s3-endpoint", help="put the cache on this S3 endpoint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        root = Path(tmp)
        source = root / "in.jsonl"
        write_input(source, args.lines)
        if args.s3_endpoint:
            os.environ["AWS_ENDPOINT_URL"] = args.s3_endpoint
            os.environ.setdefault("AWS_REGION", "us-east-1")
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "shardline")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "shardline-secret")
            cache_uri = f"s3://bench-cache-{uuid.uuid4().hex[:10]}/cache"
            # Storage clients start threads: only ever in the children (they fork).
            in_child(warm_up, cache_uri)
        else:
            cache_uri = str(root / "cache")
        run_uri = str(root / "run")
        rows: list[tuple[str, float, float, int, str]] = []
        shards, wall, cpu, rss = in_child(split, source, run_uri)
        rows.append(("split_input (the plan without cache)", wall, cpu, rss, ""))
        plan_wall = wall
        hits, wall, cpu, rss = in_child(lookup, run_uri, cache_uri, shards)
        rows.append(("apply_cache, 0 % hits", wall, cpu, rss, f"{hits:,} hits"))
        filled, wall, cpu, rss = in_child(fill, run_uri, cache_uri, shards)
        rows.append(("remember (collect's writes)", wall, cpu, rss, f"{filled:,} entries"))
        shards, *_ = in_child(split, source, run_uri)
        hits, wall, cpu, rss = in_child(lookup, run_uri, cache_uri, shards)
        rows.append(("apply_cache, 100 % hits", wall, cpu, rss, f"{hits:,} hits"))
        if args.s3_endpoint:
            in_child(clean_up, cache_uri)
    where = f"S3 at {args.s3_endpoint}" if args.s3_endpoint else "local disk"
    print(f"\n{args.lines:,} lines, cache on {where}\n")
    print("| step | wall s | CPU s | µs/line (wall) | peak RSS | |")
    print("|---|---|---|---|---|---|")
    for name, wall, cpu, rss, note in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / args.lines * 1e6:.1f} | "
              f"{rss / 2**20:.0f} MiB | {note} |")
    print()
    for name, wall, *_ in rows[1:]:
        print(f"{name} / split_input: {wall / plan_wall:.2f}")


if __name__ == "__main__":
    main()
