"""Admission control cost per call, on a real Redis (127.0.0.1:6379, DB 15) and on the
embedded fake, against a plain PING round trip on the same client as the reference.

    .venv/bin/python benchmarks/admission_ops.py --ops 2000

Prints calls per second and the ratio of each call's time to one PING. The keys it makes are
deleted afterwards.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

import fakeredis
import redis
from pydantic import SecretStr

from shared import names
from shared.admission import Admission
from shared.apikeys import fingerprint
from shared.settings import Settings


def rate(ops: int, call: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for index in range(ops):
        call(index)
    return ops / (time.perf_counter() - started)


def measure(label: str, client: redis.Redis, ops: int) -> None:
    settings = Settings(
        max_live_jobs_per_key=10**6, enqueued_token_budget=10**15, file_storage_budget_bytes=10**15
    )
    admission = Admission(client, settings)
    pool = [fingerprint(SecretStr(f"bench-{uuid.uuid4().hex}")) for _ in range(3)]
    fp = pool[0]
    try:
        ping = rate(ops, lambda _: client.ping())
        figures = {
            "acquire_job (new holder)": rate(
                ops, lambda i: admission.acquire_job(fp, f"b:0:1:{i}", "m", 1000)
            ),
            "acquire_job (again, held)": rate(
                ops, lambda i: admission.acquire_job(fp, f"b:0:1:{i}", "m", 1000)
            ),
            "release_job": rate(ops, lambda i: admission.release_job(fp, f"b:0:1:{i}")),
            "choose_key (3 keys)": rate(
                ops, lambda i: admission.choose_key(pool, model="m", tokens=1, size=1)
            ),
        }
        for index in range(ops):  # a key holding `ops` live jobs, then one snapshot
            admission.acquire_job(fp, f"s:0:1:{index}", "m", 1)
        figures[f"snapshot ({ops} holders)"] = rate(20, lambda _: admission.snapshot(fp))
    finally:
        for key_fp in pool:
            for key in client.scan_iter(match=f"{names.REDIS_PREFIX}{{{key_fp}}}:*"):
                client.delete(key)
    print(f"\n{label}: PING {ping:,.0f}/s")
    print("| call | calls/s | time / PING |\n| --- | ---: | ---: |")
    for name, value in figures.items():
        print(f"| {name} | {value:,.0f} | {ping / value:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    real = redis.Redis(host="127.0.0.1", port=6379, db=15, decode_responses=True)
    measure("real Redis 127.0.0.1:6379", real, args.ops)
    real.close()
    fake = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    measure("embedded fakeredis (lupa)", fake, args.ops // 4)


if __name__ == "__main__":
    main()
