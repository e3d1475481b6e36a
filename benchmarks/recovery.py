"""Recovery time after a SIGKILL at each stage, on the shipped defaults.

For each stage a worker armed with a failpoint (``shared.failpoints``) takes a run until it
kills itself there; a new worker starts at once, and the time from its start to the run's
``summary.json`` is measured. A clean run of the same input gives the reference: what the
run needs anyway. Every setting is the shipped default (visibility timeout 600 s, lease
60 s, grace 60 s, deadline check every 20 s, polls from 10 s) unless ``--quick`` shortens
the liveness timings. Real parts: a private ``redis-server``, the emulator as a process,
``celery -A workers worker`` processes, local storage.

    .venv/bin/python benchmarks/recovery.py                  # every stage, defaults
    .venv/bin/python benchmarks/recovery.py --stages poll.after_get=kill@3
    .venv/bin/python benchmarks/recovery.py --rolling        # SIGTERM every worker in turn

``--rolling`` measures a rolling restart instead: with jobs that take ~20 s (time scale 6),
a run is timed from submit to summary once undisturbed and once while each of its workers
in turn is stopped politely (SIGTERM) right after its successor started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import Celery

REPO = Path(__file__).resolve().parents[1]
STAGES = [
    "plan.mid_pass=kill@150",
    "upload.after_chunk=kill@1",
    "create.after_call=kill@2",
    "poll.after_get=kill@3",
    "collect.after_download=kill@2",
    "merge.mid_concat=kill@2",
]
#: Upload chunks (and the emulator's granularity) of 4 KiB, so that a shard of a few kB is
#: uploaded in several chunks and ``upload.after_chunk`` has a chunk to die after.
CHUNK = 4096
QUICK = {"SHARDLINE_LEASE_SECONDS": "3", "SHARDLINE_LIVENESS_GRACE_SECONDS": "2",
         "SHARDLINE_DEADLINE_CHECK_SECONDS": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def generate(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, lines + 1):
            request = {"contents": [{"parts": [{"text": f"question {n}"}]}]}
            out.write(json.dumps({"key": f"k-{n}", "request": request}) + "\n")


class Fleet:
    """A private Redis, the emulator, and worker processes, all children of this script."""

    def __init__(self, work: Path, *, quick: bool, time_scale: float) -> None:
        self.work = work
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.redis_port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        self.emulator = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(port), "--api-key", "bench",
             "--time-scale", str(time_scale)],
            cwd=REPO, env={**os.environ, "EMULATOR_UPLOAD_CHUNK_GRANULARITY": str(CHUNK)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.broker = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = {**os.environ, "SHARDLINE_API_KEY": "bench",
                    "SHARDLINE_API_BASE_URL": f"http://127.0.0.1:{port}",
                    "SHARDLINE_BROKER_URL": self.broker, "SHARDLINE_SECRETS_DIR": "",
                    "SHARDLINE_STATE_URI": str(work / "state"), "PYTHONUNBUFFERED": "1",
                    "SHARDLINE_UPLOAD_CHUNK_BYTES": str(CHUNK),
                    **(QUICK if quick else {})}
        self.workers: list[subprocess.Popen[bytes]] = []
        time.sleep(2)

    def flush(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "flushall"], check=True,
                       stdout=subprocess.DEVNULL)

    def worker(self, failpoints: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if failpoints:
            env["SHARDLINE_FAILPOINTS"] = failpoints
        log = self.work / f"worker-{len(self.workers)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "shardline",
             "--pool", "threads", "-c", "4", "-n", f"bench-{len(self.workers)}@%h",
             "--without-mingle", "--without-gossip", "-l", "info"],
            cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self.workers.append(process)
        wait_for(lambda: "ready." in log.read_text(errors="replace")
                 or process.poll() is not None, 60, "a worker")
        return process

    def submit(self, source: Path, output: Path, key: str) -> None:
        client = Celery("bench", broker=self.broker, set_as_current=False)
        spec = {"input_uri": str(source), "output_uri": str(output), "idempotency_key": key,
                "options": {"shard_max_requests": 100}}
        client.send_task("shardline.start_run", args=[spec], queue="shardline")
        client.close()

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        for process in (self.emulator, self.redis):
            process.send_signal(signal.SIGKILL)
            process.wait(10)


def one_run(fleet: Fleet, source: Path, name: str, failpoints: str | None) -> float:
    """Seconds from the (new) worker's start to the summary."""
    fleet.flush()
    output = fleet.work / f"out-{name}"
    summary = output / "summary.json"
    if failpoints:
        armed = fleet.worker(failpoints)
        fleet.submit(source, output, name)
        wait_for(lambda: armed.poll() is not None, 300, f"the kill at {failpoints}")
    started = time.monotonic()
    fleet.worker()
    if not failpoints:
        fleet.submit(source, output, name)
    wait_for(summary.exists, 900, f"the summary of {name}")
    seconds = time.monotonic() - started
    fleet.stop_workers()
    return seconds


def rolling_run(fleet: Fleet, source: Path, name: str, restarts: int) -> float:
    """Seconds from submit to summary while ``restarts`` workers are replaced in turn."""
    fleet.flush()
    output = fleet.work / f"out-{name}"
    current = fleet.worker()
    started = time.monotonic()
    fleet.submit(source, output, name)
    for _ in range(restarts):
        time.sleep(8.0)  # jobs are live and their polls held by the current worker
        successor = fleet.worker()
        current.send_signal(signal.SIGTERM)
        current.wait(120)
        current = successor
    wait_for((output / "summary.json").exists, 900, f"the summary of {name}")
    seconds = time.monotonic() - started
    fleet.stop_workers()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", nargs="*", default=STAGES)
    parser.add_argument("--lines", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="lease 3 s, grace 2 s, check 1 s")
    parser.add_argument("--time-scale", type=float, default=1200.0)
    parser.add_argument("--rolling", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shardline-recovery-"))
    fleet = Fleet(work, quick=args.quick, time_scale=6.0 if args.rolling else args.time_scale)
    try:
        source = work / "input.jsonl"
        generate(source, args.lines)
        if args.rolling:
            calm = rolling_run(fleet, source, "calm", 0)
            rolled = rolling_run(fleet, source, "rolled", 2)
            print(f"undisturbed run: {calm:.1f} s; with 2 rolling restarts: {rolled:.1f} s; "
                  f"delay {rolled - calm:+.1f} s ({rolled / calm:.2f}x)")
            return 0
        clean = one_run(fleet, source, "clean", None)
        print(f"clean run: {clean:.1f} s ({args.lines} lines, {-(-args.lines // 100)} shards)")
        print(f"{'killed at':32} {'new worker start -> summary':>28} {'minus clean':>12}")
        for index, stage in enumerate(args.stages):
            seconds = one_run(fleet, source, f"kill-{index}", stage)
            print(f"{stage:32} {seconds:27.1f}s {seconds - clean:11.1f}s", flush=True)
    finally:
        fleet.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
