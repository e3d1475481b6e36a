"""Upload of one file: the google-genai SDK's ``files.upload`` against ours, same emulator.

One emulator process (its memory not counted); each upload runs in its own child process
(its peak RSS is the child's ``ru_maxrss``), alternating SDK / ours, best of ``--rounds``:

- **sdk**: ``genai.Client(...).files.upload(file=path)`` (resumable protocol, 8 MiB chunks);
- **ours**: what the upload stage does (``shared.pipeline.upload``): ``start_upload``, then
  ``upload_from`` reading the part through ``LocalStorage.open_read`` at the configured
  chunk size (``--chunk-mb``, default: ``SHARDLINE_UPLOAD_CHUNK_BYTES``'s default).

The emulator's own CPU seconds per upload are printed too (the server's share of the
work). Throughput is the file's size over the wall time of the upload calls alone (imports and
client set-up excluded for both). The uploaded files are deleted afterwards.

Usage: .venv/bin/python benchmarks/upload_vs_sdk.py [--size-mb 250] [--rounds 2]
       [--chunk-mb 8,64]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def generate(path: Path, size: int) -> None:
    filler = "lorem ipsum dolor sit amet " * 34
    written = n = 0
    with path.open("wb", buffering=1 << 20) as out:
        while written < size:
            n += 1
            line = b'{"key":"%d","request":{"contents":[{"parts":[{"text":"%s %d"}]}]}}\n' % (
                n, filler.encode(), n)
            out.write(line)
            written += len(line)


def child_sdk(base_url: str, path: str) -> dict[str, float]:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=base_url))
    started, started_cpu = time.perf_counter(), time.process_time()
    file = client.files.upload(file=path, config=types.UploadFileConfig(mime_type="jsonl"))
    report = _report(started, started_cpu)
    assert file.name is not None
    client.files.delete(name=file.name)
    return report


def child_ours(base_url: str, path: str, chunk: int) -> dict[str, float]:
    from pydantic import SecretStr

    from shared.provider.gemini.client import GeminiClient, build_http_client
    from shared.settings import Settings
    from shared.storage.local import LocalStorage

    source = Path(path)
    storage = LocalStorage(source.parent)
    settings = Settings(api_base_url=base_url)
    chunk = chunk or settings.upload_chunk_bytes
    with GeminiClient(build_http_client(settings), api_key=SecretStr(KEY)) as client:
        started, started_cpu = time.perf_counter(), time.process_time()
        session = client.start_upload(source.stat().st_size, display_name="bench")
        granularity = session.chunk_granularity
        file = client.upload_from(
            session.url,
            lambda offset: storage.open_read(source.name, offset=offset),
            source.stat().st_size,
            chunk_size=max(granularity, chunk // granularity * granularity),
            granularity=granularity,
        )
        report = _report(started, started_cpu)
        client.delete_file(file.name)
    return report


def _report(started: float, started_cpu: float) -> dict[str, float]:
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - started_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk-mb", default="0", help="our chunk sizes, 0 = the default")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--child", nargs=4, metavar=("WHAT", "URL", "PATH", "CHUNK"))
    args = parser.parse_args()
    if args.child:
        what, url, path, chunk = args.child
        report = child_sdk(url, path) if what == "sdk" else child_ours(url, path, int(chunk))
        print(json.dumps(report))
        return
    work = Path(tempfile.mkdtemp(prefix="upload-bench-", dir=args.tmp))
    port = _free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--api-key", KEY,
         "--time-scale", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base_url)
        path = work / "part.jsonl"
        generate(path, args.size_mb * 1_000_000)
        size = path.stat().st_size
        chunks = [int(float(mb) * 1024 * 1024) for mb in args.chunk_mb.split(",")]
        runs: list[tuple[str, int]] = [("sdk", 0)] + [("ours", chunk) for chunk in chunks]
        best: dict[tuple[str, int], dict[str, Any]] = {}
        for _ in range(args.rounds):
            for what, chunk in runs:
                server_cpu = _cpu_of(emulator.pid)
                report = json.loads(subprocess.run(
                    [sys.executable, __file__, "--child", what, base_url, str(path), str(chunk)],
                    stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT,
                ).stdout)
                report["server_cpu"] = _cpu_of(emulator.pid) - server_cpu
                if (what, chunk) not in best or report["seconds"] < best[what, chunk]["seconds"]:
                    best[what, chunk] = report
        sdk = best["sdk", 0]
        print(f"file {size / 1e6:.0f} MB; best of {args.rounds}")
        print(f"  sdk files.upload: {sdk['seconds']:.2f} s ({size / 1e6 / sdk['seconds']:.0f} "
              f"MB/s, cpu {sdk['cpu']:.2f} s, server cpu {sdk['server_cpu']:.2f} s), peak RSS "
              f"{sdk['rss_mb']:.0f} MB")
        for what, chunk in runs[1:]:
            ours = best[what, chunk]
            label = f"{chunk >> 20} MiB chunks" if chunk else "default chunks"
            print(f"  ours ({label}): {ours['seconds']:.2f} s "
                  f"({size / 1e6 / ours['seconds']:.0f} MB/s, cpu {ours['cpu']:.2f} s, server cpu "
                  f"{ours['server_cpu']:.2f} s), peak "
                  f"RSS {ours['rss_mb']:.0f} MB; ours/sdk throughput "
                  f"{sdk['seconds'] / ours['seconds']:.2f}x, cpu {sdk['cpu'] / ours['cpu']:.2f}x")
    finally:
        emulator.terminate()
        emulator.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (the emulator: the server's work)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


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
    os.environ.setdefault("SHARDLINE_API_KEY", KEY)
    main()
