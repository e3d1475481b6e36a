"""Collect (classify + sort a scrambled provider output) and join_shard against GNU sort.

Builds, for N lines (default 1 M): a part input (staged lines), its sidecar, and a provider
output file in random order (~5 % errors, ~0.1 % lines missing, key first so ``sort`` can
use it). Then, in the same run:

- ``LC_ALL=C sort -t'"' -k4,4n -S <budget> --parallel=1`` on the output file (reference:
  sorting the same lines numerically by key, single-threaded, same memory budget as ours);
- in a child process (its own peak RSS): ``classify_output`` with the sort budget (default:
  the library's, ``shared.jsonl.sort.DEFAULT_MEMORY_BYTES``), then ``join_shard`` joining
  the outcomes with the sidecar into user-facing lines.

With ``--baseline DIR`` (the root of another checkout) the same collect and finish run with
that code too, on the same files, and the outputs are compared byte for byte.

Usage: .venv/bin/python benchmarks/merge_keyed.py [--lines 1000000] [--memory-mb 64,32]
       [--baseline DIR]
"""

from __future__ import annotations

import argparse
import filecmp
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


def child(directory: str, memory: int, root: str, out: str) -> None:
    sys.path.insert(0, root)  # run as a script: make the repo (or the baseline) importable
    try:
        from shared.jsonl import classify_output, join_shard
    except ImportError:  # a --baseline checkout from before the jsonl names of issue #9
        from shared.jsonl import (  # type: ignore[attr-defined,no-redef]
            collect_output as classify_output,
        )
        from shared.jsonl import (  # type: ignore[attr-defined,no-redef]
            finish_shard as join_shard,
        )

    base = Path(directory)
    target = Path(out)
    target.mkdir()
    started = time.perf_counter()
    started_cpu = time.process_time()
    with (
        open(base / "output.jsonl", "rb", buffering=1 << 20) as output,
        open(base / "part.jsonl", "rb", buffering=1 << 20) as part,
        open(target / "results.part", "wb", buffering=1 << 20) as results,
        open(target / "errors.part", "wb", buffering=1 << 20) as errors,
    ):
        stats = classify_output(output, part, results, errors, tmp_dir=out, memory_bytes=memory)
    collected = time.perf_counter()
    collected_cpu = time.process_time()
    with (
        open(base / "sidecar.jsonl", "rb", buffering=1 << 20) as sidecar,
        open(target / "results.part", "rb", buffering=1 << 20) as results,
        open(target / "errors.part", "rb", buffering=1 << 20) as errors,
        open(target / "results.jsonl", "wb", buffering=1 << 20) as results_out,
        open(target / "errors.jsonl", "wb", buffering=1 << 20) as errors_out,
    ):
        totals = join_shard(sidecar, [(1, results, errors)], results_out, errors_out)
    finished = time.perf_counter()
    finished_cpu = time.process_time()
    print(
        json.dumps(
            {
                "collect_seconds": collected - started,
                "finish_seconds": finished - collected,
                "collect_cpu": collected_cpu - started_cpu,
                "finish_cpu": finished_cpu - collected_cpu,
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
    parser.add_argument(
        "--memory-mb", default=None, help="sort budgets in MiB, e.g. 64,32 (default: the library's)"
    )
    parser.add_argument("--baseline", default=None, help="root of a checkout to compare with")
    parser.add_argument("--child", nargs=4, metavar=("DIR", "MEMORY_BYTES", "ROOT", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.child[3])
        return
    if args.memory_mb is None:
        sys.path.insert(0, str(ROOT))
        from shared.jsonl.sort import DEFAULT_MEMORY_BYTES

        budgets = [DEFAULT_MEMORY_BYTES]
    else:
        budgets = [int(mb) * 1024 * 1024 for mb in args.memory_mb.split(",")]
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        base = Path(tmp)
        sizes = generate(base, args.lines)
        print(f"{args.lines} lines, output {sizes['output_bytes'] / 1e6:.0f} MB")
        for memory in budgets:
            sort_seconds, sort_cpu = _gnu_sort(base, memory)
            runs = [("this code", str(ROOT))]
            if args.baseline:
                runs.append(("baseline", args.baseline))
            for name, root in runs:
                out = base / f"out-{name.replace(' ', '-')}-{memory}"
                report = json.loads(
                    subprocess.run(
                        [sys.executable, __file__, "--child", tmp, str(memory), root, str(out)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                ours = report["collect_seconds"] + report["finish_seconds"]
                ours_cpu = report["collect_cpu"] + report["finish_cpu"]
                print(
                    f"  budget {memory >> 20} MiB, {name}: GNU sort -n {sort_seconds:.2f} s "
                    f"(cpu {sort_cpu:.2f}); collect {report['collect_seconds']:.2f} s "
                    f"(cpu {report['collect_cpu']:.2f}) + join_shard "
                    f"{report['finish_seconds']:.2f} s (cpu {report['finish_cpu']:.2f}) "
                    f"= {ours:.2f} s (ratio {ours / sort_seconds:.1f}x, cpu "
                    f"{ours_cpu / sort_cpu:.1f}x; collect alone "
                    f"{report['collect_seconds'] / sort_seconds:.1f}x); "
                    f"peak RSS {report['rss_mb']:.1f} MB; "
                    f"{report['responses']} responses, {report['errors']} errors "
                    f"({report['missing']} missing), {report['tokens_total']} tokens"
                )
            if args.baseline:
                same = all(
                    filecmp.cmp(
                        base / f"out-this-code-{memory}" / name,
                        base / f"out-baseline-{memory}" / name,
                        shallow=False,
                    )
                    for name in ("results.jsonl", "errors.jsonl", "results.part", "errors.part")
                )
                print(f"  outputs byte-identical to the baseline's: {same}")


def _gnu_sort(base: Path, memory: int) -> tuple[float, float]:
    """Wall and CPU seconds of GNU sort on the output file."""
    cpu_before = _children_cpu()
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
                str(base),
                str(base / "output.jsonl"),
            ],
            check=True,
            stdout=sorted_out,
            env={**os.environ, "LC_ALL": "C"},
        )
    return time.perf_counter() - started, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
