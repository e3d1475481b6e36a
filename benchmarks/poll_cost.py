"""Polling cost: CPU of one Celery worker keeping N live jobs polled, and broker traffic.

Sets up one run of N one-request shards (``shard_max_requests=1``) whose jobs stay live on
the emulator (time scale 0.01: the 30 s pending phase lasts ~50 min), then starts one real
worker process (``celery worker --pool threads -c 1``, Redis broker on the given database)
and sends it the N ``poll`` tasks, each re-scheduling itself every ``--interval`` seconds as
in production (``SHARDLINE_POLL_INITIAL_SECONDS = SHARDLINE_POLL_MAX_SECONDS``). After one
round of warm-up, for ``--window`` seconds it measures:

- the worker process's CPU seconds (user + system, psutil) and the polls done (the sum of
  the job records' ``polls``): CPU per poll;
- the commands the broker database receives (``MONITOR`` on the Redis server, only lines of
  that database counted): Redis commands per poll.

and projects the cost of N jobs at a 60 s interval as a fraction of one core.

Uses and empties (FLUSHDB) only the Redis database it is given; nothing else on the server is
touched. The emulator and the worker are its own child processes, stopped at the end.

Usage: SHARDLINE_TEST_REDIS_DB=14 .venv/bin/python benchmarks/poll_cost.py [--jobs 1000]
       [--interval 10] [--window 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=40.0)
    parser.add_argument(
        "--redis-db", type=int, default=int(os.environ.get("SHARDLINE_TEST_REDIS_DB", "14"))
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="poll-bench-"))
    port = _free_port()
    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    env = {
        "SHARDLINE_API_KEY": KEY,
        "SHARDLINE_API_BASE_URL": f"http://127.0.0.1:{port}",
        "SHARDLINE_STATE_URI": str(work / "state"),
        "SHARDLINE_BROKER_URL": broker,
        "SHARDLINE_POLL_INITIAL_SECONDS": str(args.interval),
        "SHARDLINE_POLL_MAX_SECONDS": str(args.interval),
        "SHARDLINE_MAX_LIVE_JOBS_PER_KEY": str(args.jobs + 100),
        "SHARDLINE_SECRETS_DIR": "",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import psutil
    import redis

    broker_db = redis.Redis.from_url(broker)
    broker_db.flushdb()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--api-key", KEY,
         "--time-scale", "0.01", "--max-live-jobs", str(args.jobs + 100)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(f"http://127.0.0.1:{port}")
        run_id, output_uri, store = _set_up(work, args.jobs)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-l", "warning",
             "-Q", "shardline", "--pool", "threads", "-c", "1", "-n", "pollbench@%h",
             "--without-mingle", "--without-gossip"],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from shared import names
        from workers.app import app

        for shard in range(args.jobs):
            app.send_task(names.TASK_POLL, args=(run_id, output_uri, shard, 1),
                          queue=names.QUEUE)
        process = psutil.Process(worker.pid)
        deadline = time.monotonic() + 120 + args.interval
        while _polls(store, args.jobs) < 2 * args.jobs:  # every job polled twice: warm
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not poll every job twice in time")
            time.sleep(1)
        counter = _MonitorCount(args.redis_db)
        counter.start()
        polls_before = _polls(store, args.jobs)
        cpu_before = _cpu(process)
        time.sleep(args.window)
        cpu = _cpu(process) - cpu_before
        polls = _polls(store, args.jobs) - polls_before
        commands = counter.stop()
        per_poll_ms = cpu / polls * 1000
        at_60 = args.jobs / 60 * per_poll_ms / 1000
        print(f"{args.jobs} live jobs, one worker (1 thread), poll interval {args.interval:g} s, "
              f"window {args.window:g} s")
        print(f"  polls in the window: {polls} ({polls / args.window:.1f}/s); worker CPU "
              f"{cpu:.2f} s = {per_poll_ms:.2f} ms a poll")
        print(f"  broker database: {commands} Redis commands = {commands / polls:.1f} a poll")
        print(f"  projected at a 60 s interval: {args.jobs / 60:.1f} polls/s = "
              f"{at_60 * 100:.1f} % of a core (target <= 5 %)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        emulator.terminate()
        emulator.wait(30)
        broker_db.flushdb()
        shutil.rmtree(work, ignore_errors=True)


def _set_up(work: Path, jobs: int) -> tuple[str, str, object]:
    """A run of ``jobs`` one-request shards, uploaded and created (jobs live)."""
    from shared.pipeline.context import RunContext
    from shared.pipeline.create import create_attempt
    from shared.pipeline.plan import plan_run
    from shared.pipeline.start import register_run
    from shared.pipeline.upload import upload_attempt
    from shared.run.spec import RunOptions, RunSpec
    from shared.settings import Settings

    source = work / "requests.jsonl"
    with source.open("w", encoding="utf-8") as out:
        for n in range(jobs):
            request = {"contents": [{"parts": [{"text": f"q {n}"}]}]}
            out.write(json.dumps({"key": f"k{n}", "request": request}) + "\n")
    settings = Settings()
    spec = RunSpec(input_uri=str(source), output_uri=str(work / "out"),
                   options=RunOptions(shard_max_requests=1))
    started = register_run(settings, spec)
    ctx = RunContext(settings, started.run_id, started.output_uri)
    plan_run(ctx)
    for shard in range(jobs):
        upload_attempt(ctx, shard, 1)
        create_attempt(ctx, shard, 1)
    return started.run_id, started.output_uri, ctx.store


def _polls(store: object, jobs: int) -> int:
    total = 0
    for shard in range(jobs):
        job = store.job(shard, 1, 0)  # type: ignore[attr-defined]
        total += job.polls if job is not None else 0
    return total


def _cpu(process: object) -> float:
    times = process.cpu_times()  # type: ignore[attr-defined]
    return float(times.user + times.system)


class _MonitorCount(threading.Thread):
    """Counts the commands ``MONITOR`` shows for one database."""

    def __init__(self, db: int) -> None:
        super().__init__(daemon=True)
        self._tag = f"[{db} ".encode()
        self._process = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "monitor"],
                                         stdout=subprocess.PIPE)
        self.count = 0

    def run(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if self._tag in line:
                self.count += 1

    def stop(self) -> int:
        self._process.terminate()
        self._process.wait(10)
        self.join(10)
        return self.count


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(base_url: str) -> None:
    import httpx

    for _ in range(400):
        try:
            if httpx.get(f"{base_url}/_emulator/health").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the emulator did not start")


if __name__ == "__main__":
    main()
