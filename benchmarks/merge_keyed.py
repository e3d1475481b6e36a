"""Collect (classify + sort a scrambled provider output) and finish_shard against GNU sort.

Builds, for N lines (default 1 M): a part input (staged lines), its sidecar, and a provider
output file in random order (~5 % errors, ~0.1 % lines missing, key first so ``sort`` can
use it). Then, in the same run:

- ``LC_ALL=C sort -t'"' -k4,4n -S <budget> --parallel=1`` on the output file (reference:
  sorting the same lines numerically by key, single-threaded, same memory budget as ours);
- in a child process (its own peak RSS): ``collect_output`` with the sort budget (default:
  the library's, ``shared.jsonl.sort.DEFAULT_MEMORY_BYTES``), then ``finish_shard`` joining
  the outcomes with the sidecar into user-facing lines.

Usage: .venv/bin/python benchmarks/merge_keyed.py [--lines 1000000] [--memory-mb N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def generate(directory: Path, lines: int, seed: int = 2) -> dict[str, int]:
    rng = random.Random(seed)
    order = list(range(1, lines + 1))
    missing = set(rng.sample(order, lines // 1000))
    with (
        open(directory / "part.jsonl", "wb", buffering=1 << 20) as part,
        open(directory / "sidecar.jsonl", "wb", buffering=1 << 20) as sidecar,
    ):
        for n in order:
            request = {"contents": [{"parts": [{"text": f"question number {n} " * 8}]}]}
            part.write(orjson.dumps({"key": str(n), "request": request}) + b"\n")
            sidecar.write(
                orjson.dumps({"line": n, "key": f"doc-{n}", "extra": {"doc_id": n}}) + b"\n"
            )
    rng.shuffle(order)
    with open(directory / "output.jsonl", "wb", buffering=1 << 20) as output:
        for n in order:
            if n in missing:
                continue
            if rng.random() < 0.05:
                line = {"key": str(n), "error": {"code": 503, "message": "overloaded"}}
            else:
                line = {
                    "key": str(n),
                    "response": {
                        "candidates": [
                            {
                                "content": {
                                    "parts": [{"text": f"answer {n} " * 20}],
                                    "role": "model",
                                },
                                "finishReason": "STOP",
                            }
                        ],
                        "usageMetadata": {
                            "promptTokenCount": 40,
                            "candidatesTokenCount": 60,
                            "totalTokenCount": 100,
                        },
                        "modelVersion": "gemini-2.5-flash",
                    },
                }
            output.write(orjson.dumps(line) + b"\n")
    return {"output_bytes": (directory / "output.jsonl").stat().st_size}


def child(directory: str, memory: int) -> None:
    sys.path.insert(0, str(ROOT))  # run as a script: make the repo importable
    from shared.jsonl import collect_output, finish_shard

    base = Path(directory)
    started = time.perf_counter()
    with (
        open(base / "output.jsonl", "rb", buffering=1 << 20) as output,
        open(base / "part.jsonl", "rb", buffering=1 << 20) as part,
        open(base / "results.part", "wb", buffering=1 << 20) as results,
        open(base / "errors.part", "wb", buffering=1 << 20) as errors,
    ):
        stats = collect_output(
            output, part, results, errors, tmp_dir=directory, memory_bytes=memory
        )
    collected = time.perf_counter()
    with (
        open(base / "sidecar.jsonl", "rb", buffering=1 << 20) as sidecar,
        open(base / "results.part", "rb", buffering=1 << 20) as results,
        open(base / "errors.part", "rb", buffering=1 << 20) as errors,
        open(base / "results.jsonl", "wb", buffering=1 << 20) as results_out,
        open(base / "errors.jsonl", "wb", buffering=1 << 20) as errors_out,
    ):
        totals = finish_shard(sidecar, [(1, results, errors)], results_out, errors_out)
    finished = time.perf_counter()
    print(
        json.dumps(
            {
                "collect_seconds": collected - started,
                "finish_seconds": finished - collected,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "responses": stats.responses,
                "errors": stats.errors,
                "missing": stats.missing,
                "tokens_total": stats.tokens.total,
                "results": totals.results,
                "final_errors": totals.errors,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--memory-mb", type=int, default=None, help="sort budget (MiB)")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "MEMORY_BYTES"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    if args.memory_mb is None:
        sys.path.insert(0, str(ROOT))
        from shared.jsonl.sort import DEFAULT_MEMORY_BYTES

        memory = DEFAULT_MEMORY_BYTES
    else:
        memory = args.memory_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        base = Path(tmp)
        sizes = generate(base, args.lines)
        started = time.perf_counter()
        with open(base / "sorted.jsonl", "wb") as sorted_out:
            subprocess.run(
                [
                    "sort",
                    "-t",
                    '"',
                    "-k4,4n",
                    "-S",
                    f"{memory // 1024}K",
                    "--parallel=1",
                    "-T",
                    tmp,
                    str(base / "output.jsonl"),
                ],
                check=True,
                stdout=sorted_out,
                env={**os.environ, "LC_ALL": "C"},
            )
        sort_seconds = time.perf_counter() - started
        report = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--child", tmp, str(memory)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        ours = report["collect_seconds"] + report["finish_seconds"]
        print(
            f"{args.lines} lines, output {sizes['output_bytes'] / 1e6:.0f} MB, "
            f"sort budget {memory >> 20} MiB: "
            f"GNU sort -n {sort_seconds:.2f} s; collect {report['collect_seconds']:.2f} s "
            f"+ finish_shard {report['finish_seconds']:.2f} s = {ours:.2f} s "
            f"(ratio {ours / sort_seconds:.1f}x, collect alone "
            f"{report['collect_seconds'] / sort_seconds:.1f}x); "
            f"peak RSS {report['rss_mb']:.1f} MB; "
            f"{report['responses']} responses, {report['errors']} errors "
            f"({report['missing']} missing), {report['tokens_total']} tokens"
        )


if __name__ == "__main__":
    main()
