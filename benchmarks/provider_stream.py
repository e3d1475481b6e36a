"""Peak memory and speed of streaming one big staged part to the OpenAI-style and Anthropic
providers (the emulator in its own process), beside a plain read of the same file.

    .venv/bin/python benchmarks/provider_stream.py [--mb 150] [--line-bytes 1500]

Prints MB/s of staged bytes (best of two) and the peak RSS growth of this process (sampled
every 5 ms, worst of two) for: a plain ``read`` of the part (reference); the Anthropic create
(the part read twice: once to measure the JSON body, once translated into it); the OpenAI
upload (the same two passes into the multipart body). Temp files are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import httpx
import orjson
import psutil
from pydantic import SecretStr

from shared.jsonl.records import staged_line
from shared.provider import build_provider
from shared.settings import Settings

MB = 1_000_000
KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_part(path: Path, total: int, line_bytes: int) -> int:
    filler = "x" * max(1, line_bytes - 120)
    count = 0
    with path.open("wb") as out:
        written = 0
        while written < total:
            count += 1
            body = {"max_tokens": 16,
                    "messages": [{"role": "user", "content": f"{count} {filler}"}]}
            line = staged_line(count, orjson.dumps(body))
            out.write(line)
            written += len(line)
    return count


def _measure(action: Callable[[], None]) -> tuple[float, float]:
    """(seconds, peak RSS growth in MB) of ``action``."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        action()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return seconds, (peak - base) / MB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=150)
    parser.add_argument("--line-bytes", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shardline-bench-") as tmp:
        part = Path(tmp) / "part.jsonl"
        lines = _write_part(part, args.mb * MB, args.line_bytes)
        size = part.stat().st_size
        port = _free_port()
        env = {**os.environ, "EMULATOR_DATA_DIR": str(Path(tmp) / "emu")}
        emulator = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(port), "--api-key", KEY,
             "--time-scale", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(f"{base}/_emulator/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)

            @contextmanager
            def source(offset: int) -> Iterator[BinaryIO]:
                with part.open("rb") as handle:
                    handle.seek(offset)
                    yield handle  # type: ignore[misc]

            def plain() -> None:
                with part.open("rb") as handle:
                    while handle.read(8 * 1024 * 1024):
                        pass

            settings = Settings(openai_base_url=f"{base}/openai/v1",
                                anthropic_base_url=f"{base}/anthropic", http_timeout_seconds=600)
            openai = build_provider(settings, SecretStr(KEY), provider="openai",
                                    model="gpt-4o-mini", kind="generate")
            anthropic = build_provider(settings, SecretStr(KEY), provider="anthropic",
                                       model="claude-haiku-4-5", kind="generate")

            def upload() -> None:
                session = openai.start_upload(size, display_name="bench")
                openai.send_upload(session, source, size, chunk_size=8 * 1024 * 1024,
                                   start_offset=0)

            def create() -> None:
                anthropic.create_job(model="claude-haiku-4-5", kind="generate",
                                     display_name="bench", file_name="inline:bench",
                                     source=source)

            print(f"part: {size / MB:.0f} MB, {lines} lines")
            print("| phase | MB/s of staged bytes | peak RSS growth MB |")
            print("| --- | ---: | ---: |")
            results = {}
            phases = (("reference: plain read", plain),
                      ("anthropic: translate + streamed create", create),
                      ("openai: translate + multipart upload", upload))
            for name, action in phases:  # each twice: the first call also warms the client
                runs = [_measure(action) for _ in range(2)]
                seconds = min(s for s, _ in runs)
                growth = max(g for _, g in runs)
                results[name] = seconds
                print(f"| {name} | {size / MB / seconds:.0f} | {growth:.1f} |")
            reference = results["reference: plain read"]
            for name, seconds in results.items():
                print(f"{name}: {seconds / reference:.1f}x the plain read's time")
            openai.close()
            anthropic.close()
        finally:
            emulator.terminate()
            emulator.wait(30)


if __name__ == "__main__":
    main()
