"""Peak RSS of the emulator while it takes, processes and serves back a big batch.

For each size: start ``python -m emulator`` as a child process, upload a generated JSONL
input (streamed from a generator in 8 MiB chunks, never built in memory), create a batch
from it, wait until it SUCCEEDS, stream the output back, delete both files, stop the
emulator. Prints the emulator's peak RSS (``VmHWM`` from /proc, plus psutil sampling) and the
timings; the smallest size is the reference run, so the ratio shows whether memory grows
with the input.

    .venv/bin/python benchmarks/emulator_rss.py --sizes-mb 64,1024
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
LINE_BYTES = 1024
CHUNK = 8 * 1024 * 1024
KEY = "bench-key"


def line(index: int) -> bytes:
    """One input line of exactly LINE_BYTES bytes (newline included)."""
    head = b'{"key":"k%09d","request":{"contents":[{"parts":[{"text":"' % index
    tail = b'"}],"role":"user"}]}}\n'
    words = b"photosynthesis margherita basil tomato cloud river prompt %d " % index
    body_len = LINE_BYTES - len(head) - len(tail)
    body = (words * (body_len // len(words) + 1))[:body_len]
    return head + body + tail


def chunks(total_lines: int) -> Iterator[bytes]:
    """The input in CHUNK-sized pieces, generated on the fly."""
    buffer = bytearray()
    for index in range(total_lines):
        buffer += line(index)
        if len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    if buffer:
        yield bytes(buffer)


class RssSampler(threading.Thread):
    """Samples a process's RSS every 50 ms; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def vm_hwm(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) * 1024
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_once(size_mb: int) -> dict[str, float]:
    total_lines = size_mb * 1024 * 1024 // LINE_BYTES
    total = total_lines * LINE_BYTES
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--time-scale", "1000",
         "--api-key", KEY],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/_emulator/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        baseline = psutil.Process(child.pid).memory_info().rss
        sampler = RssSampler(child.pid)
        sampler.start()
        client = httpx.Client(base_url=base, headers={"x-goog-api-key": KEY}, timeout=600)

        t0 = time.perf_counter()
        started = client.post(
            "/upload/v1beta/files",
            json={"file": {"display_name": "bench"}},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": str(total),
                "X-Goog-Upload-Header-Content-Type": "application/jsonl",
            },
        )
        url = started.headers["x-goog-upload-url"]
        offset = 0
        for piece in chunks(total_lines):
            last = offset + len(piece) >= total
            answer = httpx.post(
                url, content=piece, timeout=600,
                headers={"X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                         "X-Goog-Upload-Offset": str(offset)},
            )
            answer.raise_for_status()
            offset += len(piece)
        file_name = answer.json()["file"]["name"]
        t_upload = time.perf_counter() - t0

        t1 = time.perf_counter()
        body = {"batch": {"display_name": "bench", "input_config": {"file_name": file_name}}}
        job = client.post("/v1beta/models/gemini-2.5-flash:batchGenerateContent", json=body)
        job.raise_for_status()
        name = job.json()["name"]
        while True:
            operation = client.get(f"/v1beta/{name}").json()
            if operation.get("done"):
                break
            time.sleep(0.5)
        assert operation["metadata"]["state"] == "BATCH_STATE_SUCCEEDED", operation
        t_process = time.perf_counter() - t1

        t2 = time.perf_counter()
        output = operation["response"]["responsesFile"]
        out_bytes = out_lines = 0
        with client.stream("GET", f"/download/v1beta/{output}:download",
                           params={"alt": "media"}) as stream:
            for block in stream.iter_bytes(1 << 20):
                out_bytes += len(block)
                out_lines += block.count(b"\n")
        t_download = time.perf_counter() - t2
        assert out_lines == total_lines, (out_lines, total_lines)

        client.delete(f"/v1beta/{file_name}")
        client.delete(f"/v1beta/{output}")
        sampler.stop_event.set()
        sampler.join()
        hwm = vm_hwm(child.pid)
        client.close()
        return {
            "size_mb": size_mb,
            "lines": total_lines,
            "output_mb": out_bytes / 2**20,
            "baseline_rss_mb": baseline / 2**20,
            "peak_rss_sampled_mb": sampler.peak / 2**20,
            "peak_rss_vmhwm_mb": hwm / 2**20,
            "upload_s": t_upload,
            "process_s": t_process,
            "download_s": t_download,
        }
    finally:
        child.terminate()  # the emulator removes its temp data dir on the way out
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", default="64,1024", help="Comma separated input sizes.")
    args = parser.parse_args()
    rows = [run_once(int(size)) for size in args.sizes_mb.split(",")]
    print(
        f"{'input MB':>9} {'lines':>9} {'output MB':>10} {'base RSS':>9} {'peak RSS':>9} "
        f"{'VmHWM':>7} {'upload s':>9} {'process s':>10} {'download s':>11}"
    )
    for row in rows:
        print(
            f"{row['size_mb']:>9} {row['lines']:>9} {row['output_mb']:>10.0f} "
            f"{row['baseline_rss_mb']:>8.0f}M {row['peak_rss_sampled_mb']:>8.0f}M "
            f"{row['peak_rss_vmhwm_mb']:>6.0f}M {row['upload_s']:>9.1f} "
            f"{row['process_s']:>10.1f} {row['download_s']:>11.1f}"
        )
    reference, largest = rows[0], rows[-1]
    print(
        f"peak RSS ratio {largest['size_mb']} MB / {reference['size_mb']} MB input: "
        f"{largest['peak_rss_vmhwm_mb'] / reference['peak_rss_vmhwm_mb']:.2f} "
        f"(input {largest['size_mb'] / reference['size_mb']:.0f}x larger)"
    )


if __name__ == "__main__":
    main()
