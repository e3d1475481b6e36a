"""Collect of one job's output against the naive script a user would write, in one run.

One emulator process (its memory not counted) runs one ``batchGenerateContent`` job over a
generated part input (our staged lines: ``{"key":"<N>","request":...}``, ~4.4 KB as in
issue #12's 1 GB / 228,690-line run). Then, in
child processes (each its own peak RSS, ``ru_maxrss``), alternating, best of ``--rounds``:

- **naive**: the google-genai SDK's ``files.download`` (the whole file in memory),
  ``json.loads`` of every line, a dict by key, every line written back (``json.dumps``) in key
  order;
- **ours**: what the collect stage does for a part (``shared.pipeline.collect``): our
  client's streamed download into a ``LocalStorage`` (fsync on), then ``classify_output`` into
  the part's results and errors files on the same storage.

With ``--baseline DIR`` (another checkout's root) "ours" also runs with that code, on the
same output, and the results/errors files are compared byte for byte. ``--keep-order`` has
the emulator write the output in input order (as the live API documents); by default it
scrambles it (16 buckets), so the sort runs.

Usage: .venv/bin/python benchmarks/collect_vs_naive.py [--lines 50000] [--line-bytes 4400]
       [--keep-order] [--rounds 2] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import inspect
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


def generate(path: Path, lines: int, line_bytes: int) -> int:
    """Our staged part input: key = line number, a prompt of about ``line_bytes``."""
    filler = "lorem ipsum dolor sit amet " * max(1, line_bytes // 27)
    with path.open("wb", buffering=1 << 20) as out:
        for n in range(1, lines + 1):
            request = {"contents": [{"parts": [{"text": f"Summarise #{n}: {filler}"}]}]}
            out.write(b'{"key":"%d","request":%s}\n' % (n, json.dumps(request).encode()))
    return path.stat().st_size


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_job(base_url: str, part: Path) -> str:
    """Upload the part with our client, run the job, return the responses file's name."""
    from pydantic import SecretStr

    from shared.provider.gemini.client import GeminiClient, build_http_client
    from shared.settings import Settings

    settings = Settings(api_base_url=base_url)
    client = GeminiClient(build_http_client(settings), api_key=SecretStr(KEY))
    with client:
        size = part.stat().st_size
        uploaded = client.upload(lambda offset: _opened(part, offset), size, display_name="b")
        job = client.create_batch("gemini-2.5-flash", display_name="b", file_name=uploaded.name)
        while not job.done:
            time.sleep(0.5)
            job = client.get_batch(job.name)
        assert job.responses_file, job
        return job.responses_file


def _opened(path: Path, offset: int) -> Any:
    reader = path.open("rb")
    reader.seek(offset)
    return reader


def child_naive(base_url: str, name: str, out: str) -> dict[str, float]:
    from google import genai
    from google.genai import types

    started, started_cpu = time.perf_counter(), time.process_time()
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=base_url))
    data = client.files.download(file=name)
    rows = {}
    for raw in data.splitlines():
        line = json.loads(raw)
        rows[int(line["key"])] = line
    with open(out, "w", encoding="utf-8") as results:
        for key in sorted(rows):
            results.write(json.dumps(rows[key]) + "\n")
    return _report(started, started_cpu, lines=len(rows))


def child_ours(base_url: str, name: str, out: str, part: str) -> dict[str, float]:
    from pydantic import SecretStr

    try:
        from shared.jsonl import classify_output
        from shared.provider.gemini.client import GeminiClient, build_http_client
    except ImportError:  # a --baseline checkout from before the layout of issue #9
        from shared.provider.client import (  # type: ignore[import-not-found,no-redef]
            GeminiClient,
            build_http_client,
        )

        from shared.jsonl import (  # type: ignore[attr-defined,no-redef]
            collect_output as classify_output,
        )
    from shared.settings import Settings
    from shared.storage.local import LocalStorage

    started, started_cpu = time.perf_counter(), time.process_time()
    storage = LocalStorage(out)
    shutil.copyfile(part, Path(out) / "part.jsonl")
    settings = Settings(api_base_url=base_url)
    with (
        GeminiClient(build_http_client(settings), api_key=SecretStr(KEY)) as client,
        client.download(name) as chunks,
        storage.open_write("output.jsonl") as output,
    ):
        for chunk in chunks:
            output.write(chunk)
    downloaded = time.perf_counter()

    def collect(**options: Any) -> Any:
        with (
            storage.open_read("output.jsonl") as output,
            storage.open_read("part.jsonl") as part_input,
            storage.open_write("results.jsonl") as results,
            storage.open_write("errors.jsonl") as errors,
        ):
            return classify_output(output, part_input, results, errors, tmp_dir=out, **options)

    # as shared.pipeline.collect does: bet on the input's order, sort when that fails
    in_order = "in_order" in inspect.signature(classify_output).parameters
    try:
        stats = collect(in_order=True) if in_order else collect()
    except Exception as exc:
        if type(exc).__name__ != "OutOfOrder":
            raise
        stats = collect(in_order=False)
    report = _report(started, started_cpu, lines=stats.lines)
    report["download_seconds"] = downloaded - started
    report["responses"] = stats.responses
    return report


def _report(started: float, started_cpu: float, **extra: float) -> dict[str, float]:
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - started_cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--line-bytes", type=int, default=4400, help="input line size")
    parser.add_argument("--keep-order", action="store_true")
    parser.add_argument("--baseline", default=None, help="root of a checkout to compare with")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--child", nargs=5, metavar=("WHAT", "URL", "NAME", "OUT", "PART"))
    args = parser.parse_args()
    if args.child:
        what, url, name, out, part = args.child
        if what == "naive":
            print(json.dumps(child_naive(url, name, out)))
        else:
            sys.path.insert(0, what)  # the root whose code runs
            print(json.dumps(child_ours(url, name, out, part)))
        return
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="collect-bench-", dir=args.tmp))
    port = free_port()
    flags = ["--keep-order"] if args.keep_order else []
    emulator = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--api-key", KEY,
         "--time-scale", "200", *flags],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base_url)
        part = work / "part.jsonl"
        size = generate(part, args.lines, args.line_bytes)
        name = run_job(base_url, part)
        print(f"{args.lines:,} lines, part {size / 1e6:.0f} MB, output in "
              f"{'input' if args.keep_order else 'scrambled'} order")
        runs = [("ours", str(ROOT))] + ([("baseline", args.baseline)] if args.baseline else [])
        best: dict[str, dict[str, float]] = {}
        for round_ in range(args.rounds):
            for label, root in [("naive", "naive"), *runs]:
                out = work / f"{label}-{round_}"
                if label != "naive":
                    out.mkdir()
                report = json.loads(subprocess.run(
                    [sys.executable, __file__, "--child", root, base_url, name, str(out),
                     str(part)],
                    stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT,
                ).stdout)
                if label not in best or report["seconds"] < best[label]["seconds"]:
                    best[label] = report
                if label == "naive" or round_ > 0:
                    output_size = None
                else:
                    output_size = (out / "output.jsonl").stat().st_size
                    print(f"  output {output_size / 1e6:.0f} MB")
        naive = best["naive"]
        print(f"  naive (SDK download, json.loads, dict, write in key order): "
              f"{naive['seconds']:.2f} s (cpu {naive['cpu']:.2f} s), peak RSS "
              f"{naive['rss_mb']:.0f} MB")
        for label, _ in runs:
            ours = best[label]
            print(f"  {label} (download to storage + collect_output): {ours['seconds']:.2f} s "
                  f"(download {ours['download_seconds']:.2f} s; cpu {ours['cpu']:.2f} s), "
                  f"peak RSS {ours['rss_mb']:.0f} MB; naive/{label}: wall "
                  f"{naive['seconds'] / ours['seconds']:.2f}x, cpu "
                  f"{naive['cpu'] / ours['cpu']:.2f}x, memory "
                  f"{ours['rss_mb'] / naive['rss_mb']:.2f} of naive's")
        if args.baseline:
            same = all(
                filecmp.cmp(work / "ours-0" / f, work / "baseline-0" / f, shallow=False)
                for f in ("results.jsonl", "errors.jsonl")
            )
            print(f"  results/errors byte-identical to the baseline's: {same}")
    finally:
        emulator.terminate()
        emulator.wait(30)
        shutil.rmtree(work, ignore_errors=True)


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
