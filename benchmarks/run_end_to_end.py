"""Wall time and peak RSS of ``shardline run`` on a generated input against the emulator.

The emulator runs as its own process (its memory is not counted); ``shardline run`` runs in
the embedded mode (in-process broker and worker, local storage) as a child process, so its
peak RSS (``ru_maxrss`` of the child) is its own. Per-stage times come from the run's
``summary.json``. A GNU ``split -C`` of the same file in the same run is the reference for
the plan stage.

    .venv/bin/python benchmarks/run_end_to_end.py --size-mb 1000 --shard-mb 200 [--keep-order]

``SHARDLINE_EMBEDDED_CONCURRENCY=1`` in the environment runs one worker thread.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(path: Path, size_bytes: int) -> int:
    """~1 KB lines: keyed requests with metadata, like a real prompt set."""
    filler = "lorem ipsum dolor sit amet " * 34
    lines = 0
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size_bytes:
            lines += 1
            line = json.dumps({
                "key": f"doc-{lines}",
                "request": {"contents": [{"parts": [{"text": f"Summarise #{lines}: {filler}"}]}]},
                "source": "bench",
            }) + "\n"
            out.write(line)
            written += len(line)
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--shard-mb", type=int, default=200)
    parser.add_argument("--time-scale", type=float, default=1000.0)
    parser.add_argument("--keep-order", action="store_true",
                        help="the emulator writes outputs in input order, as the live API does")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shardline-bench-"))
    try:
        source = work / "input.jsonl"
        lines = generate(source, args.size_mb * 1_000_000)
        started = time.monotonic()
        subprocess.run(["split", "-C", f"{args.shard_mb}M", str(source), str(work / "split-")],
                       check=True)
        split_seconds = time.monotonic() - started
        for piece in work.glob("split-*"):
            piece.unlink()
        port = free_port()
        emulator = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(port), "--api-key", "bench",
             "--time-scale", str(args.time_scale),
             *(["--keep-order"] if args.keep_order else [])],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)
            env = {**os.environ, "SHARDLINE_API_KEY": "bench",
                   "SHARDLINE_API_BASE_URL": f"http://127.0.0.1:{port}",
                   "SHARDLINE_STATE_URI": str(work / "state"),
                   "SHARDLINE_POLL_INITIAL_SECONDS": "1", "SHARDLINE_POLL_MAX_SECONDS": "5"}
            env.pop("SHARDLINE_BROKER_URL", None)
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "workers.cli", "run", str(source), "--out",
                 str(work / "out"), "--shard-max-bytes", f"{args.shard_mb}MB", "--json"],
                cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
            )
            wall = time.monotonic() - started
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        finally:
            emulator.terminate()
            emulator.wait(30)
        summary = json.loads((work / "out" / "summary.json").read_text())
        out_bytes = (work / "out" / "results.jsonl").stat().st_size
        print(f"input: {args.size_mb} MB, {lines:,} lines, shards of {args.shard_mb} MB "
              f"({summary['shards']} shards, {len(summary['jobs'])} jobs)")
        print(f"counts: {summary['counts']}  accounted={summary['accounted']}")
        print(f"results.jsonl: {out_bytes / 1e6:.0f} MB")
        print(f"wall time of shardline run: {wall:.1f} s; peak RSS {peak_kib / 1024:.0f} MiB")
        print("stage seconds: " + ", ".join(f"{k}={v}" for k, v in summary["timings"].items()))
        print(f"reference: split -C {args.shard_mb}M of the same file: {split_seconds:.2f} s; "
              f"plan/split = {summary['timings']['plan'] / split_seconds:.1f}x")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
