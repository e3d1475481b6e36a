"""What one orphan-sweep pass costs, against a bare listing of the same files and jobs.

For each size N: a fresh ``python -m emulator`` child process holding N files and N batch
jobs of other clients, plus N files and N jobs named like Shardline's parts of one
registered, unfinished run whose records say nothing about them (the most expensive case:
every part's records are read). Then the same provider listing is timed alone (files.list +
batches.list through the BatchProvider) and as part of a dry-run sweep (listing, record
reads, decisions). Prints both and their ratio; the per-item time across sizes shows whether
a pass grows linearly.

    .venv/bin/python benchmarks/sweep_pass.py --sizes 100,1000
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from shared.pipeline.start import register_run
from shared.pipeline.sweep import sweep_orphans
from shared.provider import build_provider
from shared.run import layout
from shared.run.spec import RunSpec
from shared.settings import Settings

KEY = "bench-key"
BODY = b'{"key":"a","request":{"contents":[{"parts":[{"text":"hi"}]}]}}\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def upload(client: httpx.Client, display_name: str) -> None:
    started = client.post(
        "/upload/v1beta/files",
        json={"file": {"display_name": display_name}},
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(BODY)),
        },
    )
    started.raise_for_status()
    client.post(
        started.headers["x-goog-upload-url"],
        content=BODY,
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
    ).raise_for_status()


def create_job(client: httpx.Client, display_name: str) -> None:
    item = {"request": {"contents": [{"parts": [{"text": "hi"}]}]}, "metadata": {"key": "a"}}
    body = {"batch": {"displayName": display_name,
                      "inputConfig": {"requests": {"requests": [item]}}}}
    client.post("/v1beta/models/gemini-2.5-flash:batchGenerateContent", json=body)\
        .raise_for_status()


def run_once(size: int, work: Path) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--time-scale", "1",
         "--max-live-jobs", str(4 * size)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(base_url=base, headers={"x-goog-api-key": KEY}, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get("/_emulator/health").raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.1)
        source = work / "in.jsonl"
        source.write_bytes(BODY)
        settings = Settings(api_key=SecretStr(KEY), api_base_url=base,
                            state_uri=str(work / f"state-{size}"))
        run = register_run(settings, RunSpec(input_uri=str(source),
                                             output_uri=str(work / f"out-{size}")))
        for index in range(size):
            upload(client, f"someone-else-{index}")
            upload(client, layout.display_name(run.run_id, index, 1, 0))
            create_job(client, f"nightly-{index}")
            create_job(client, layout.display_name(run.run_id, index, 1, 1))
        provider = build_provider(settings, SecretStr(KEY))
        started = time.perf_counter()
        listed = len(list(provider.list_files())) + len(list(provider.list_jobs()))
        bare = time.perf_counter() - started
        provider.close()
        started = time.perf_counter()
        report = sweep_orphans(settings, dry_run=True)
        swept = time.perf_counter() - started
        assert listed == 4 * size == report.files_seen + report.jobs_seen, report
        assert not report.actions  # all in the grace period, or not ours
        client.close()
    finally:
        child.terminate()
        child.wait(30)
    return {"items": listed, "bare": bare, "sweep": swept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="N per kind, comma separated")
    args = parser.parse_args()
    print("| N | items listed | bare listing s | sweep pass s | sweep / listing "
          "| sweep ms per item |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            figures = run_once(size, Path(tmp))
            print(f"| {size:,} | {int(figures['items']):,} | {figures['bare']:.2f} "
                  f"| {figures['sweep']:.2f} | {figures['sweep'] / figures['bare']:.1f} "
                  f"| {1000 * figures['sweep'] / figures['items']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
