"""``shardline demo``: the bundled emulator, a sample input, a real run, the summary.

Needs nothing but the install: the emulator runs as a child process on a free loopback port,
the run uses the embedded broker and local storage. The sample has a few invalid lines (so
``rejected.jsonl`` is not empty), and the emulator is told to answer a share of requests
with errors: retryable ones are resubmitted and succeed, final ones land in ``errors.jsonl``.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

DEMO_KEY = "demo-key"
#: 4 % of requests answered 503 (retried, then fine), 1 % answered 400 (final errors).
DEMO_FAULTS = {
    "seed": 11,
    "jobs": [
        {"display_name_contains": "-a01-", "request_errors": {
            "rate": 0.04, "code": 503, "status": "UNAVAILABLE",
            "message": "The model is overloaded. Please try again later."}},
        {"display_name_contains": "-s00002-a01-", "request_errors": {
            "rate": 0.05, "code": 400, "status": "INVALID_ARGUMENT",
            "message": "Request contains an invalid argument."}},
    ],
}
TOPICS = ["photosynthesis", "a Margherita pizza", "the Rhine", "binary search", "tides",
          "the printing press", "volcanoes", "the immune system", "jazz", "compound interest"]


def write_sample(path: Path, requests: int, *, seed: int = 7) -> int:
    """A realistic input: keyed lines with metadata, bare requests, and a few bad lines."""
    rng = random.Random(seed)
    lines = 0
    with path.open("wb") as out:
        for number in range(1, requests + 1):
            topic = rng.choice(TOPICS)
            request: dict[str, object] = {
                "contents": [{"parts": [{"text": f"Explain {topic} in two sentences."}]}]
            }
            if number % 7 == 0:
                request["generation_config"] = {"temperature": 0.2}
            if number % 500 == 250:
                out.write(b'{"key": "broken-%d", "request": {"contents": [\n' % number)
            elif number % 500 == 499:
                out.write(b'{"key": "k-%d", "request": "not an object"}\n' % (number - 1))
            elif number % 10 == 3:
                out.write(orjson.dumps(request) + b"\n")  # a bare request: key line-N
            else:
                line = {"key": f"k-{number}", "request": request, "doc_id": number,
                        "tags": [topic]}
                out.write(orjson.dumps(line) + b"\n")
            lines += 1
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def emulator_process(data_dir: Path, *, time_scale: float = 120.0) -> Iterator[str]:
    """The bundled emulator as a child process; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "EMULATOR_FAULTS": orjson.dumps(DEMO_FAULTS).decode()}
    log = (data_dir / "emulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port),
         "--api-key", DEMO_KEY, "--time-scale", str(time_scale),
         "--data-dir", str(data_dir / "emulator")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/_emulator/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the emulator did not start; see {data_dir / 'emulator.log'}"
                    ) from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
