"""Plan (validate + split + dedupe) throughput and peak RSS against GNU ``split -C``.

Generates a JSONL input of realistic generate requests (keyed lines with metadata, some bare
requests, a few bad lines and duplicates), streamed to a temp file; then, in the same run:

- ``split -C <shard>`` on the file (the reference: a byte-exact line-preserving splitter);
- ``split_input`` to a LocalStorage with the same shard size, in a child process so its
  peak RSS (``ru_maxrss``) is its own; once per input size, to show RSS does not grow;
- with ``--baseline DIR`` (the root of another checkout, e.g. ``git archive <rev> shared |
  tar -x -C DIR``), the same plan with that code too, on the same file, for a before/after
  ratio within one run.

Usage: .venv/bin/python benchmarks/plan_split.py [--sizes-mb 1000,250] [--shard-mb 200]
       [--words 30,400] [--dups 0.001] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]

_SAMPLE = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "if so no will more out up into do any your what some can only other new these two "
    "may résumé naïve café 東京 😀"
)
WORDS = _SAMPLE.split()


def generate(
    path: Path,
    size: int,
    *,
    seed: int = 1,
    bad: float = 0.0005,
    dups: float = 0.0,
    words: tuple[int, int] = (30, 400),
) -> int:
    """Write about ``size`` bytes of JSONL (a ``bad`` share of invalid lines, a ``dups`` share
    of lines repeating an earlier key); returns the number of lines."""
    rng = random.Random(seed)
    vocabulary = [" ".join(rng.choices(WORDS, k=rng.randint(*words))) for _ in range(2000)]
    written = lines = 0
    with open(path, "wb", buffering=1 << 20) as out:
        while written < size:
            lines += 1
            roll = rng.random()
            text = vocabulary[rng.randrange(len(vocabulary))]
            request = {
                "contents": [{"role": "user", "parts": [{"text": text}]}],
                "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256},
            }
            if roll < bad:
                line = b"{not json"
            elif roll < bad + dups:
                line = orjson.dumps({"key": f"doc-{lines - 10}", "request": request})
            elif roll < 0.2:
                line = orjson.dumps(request)
            else:
                line = orjson.dumps(
                    {"key": f"doc-{lines}", "request": request, "doc_id": lines, "lang": "en"}
                )
            out.write(line + b"\n")
            written += len(line) + 1
    return lines


def child(path: str, out_dir: str, shard_bytes: int, root: str) -> None:
    sys.path.insert(0, root)  # run as a script: make the repo (or the baseline) importable
    try:
        from shared.jsonl import split_input
    except ImportError:  # a --baseline checkout from before the jsonl names of issue #9
        from shared.jsonl import plan_input as split_input  # type: ignore[attr-defined,no-redef]
    from shared.storage.local import LocalStorage

    store = LocalStorage(out_dir)
    started = time.perf_counter()
    started_cpu = time.process_time()
    with open(path, "rb", buffering=1 << 20) as reader:
        result = split_input(
            reader,
            store,
            kind="generate",
            shard_max_bytes=shard_bytes,
            shard_max_requests=10_000_000,
            source=path,
            tmp_dir=str(Path(out_dir).parent),
        )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "rss_mb": rss_mb,
                "lines": result.lines,
                "accepted": result.accepted,
                "rejected": result.rejected,
                "duplicates": result.duplicates,
                "shards": len(result.shards),
                "input_bytes": result.input_bytes,
            }
        )
    )


def baseline_rss() -> float:
    code = (
        "import resource, shared.jsonl, shared.storage.local;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    return float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", default="1000,250")
    parser.add_argument("--shard-mb", type=int, default=200)
    parser.add_argument("--tmp", default=None)
    parser.add_argument(
        "--words", default="30,400", help="prompt length range in words (~6 bytes a word)"
    )
    parser.add_argument("--dups", type=float, default=0.0, help="share of duplicate-key lines")
    parser.add_argument("--baseline", default=None, help="root of a checkout to compare with")
    parser.add_argument("--child", nargs=4, metavar=("INPUT", "OUT", "SHARD_BYTES", "ROOT"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return
    shard_bytes = args.shard_mb * 1_000_000
    print(f"python imports alone: peak RSS {baseline_rss():.1f} MB")
    for size_mb in (int(s) for s in args.sizes_mb.split(",")):
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            source = Path(tmp) / "input.jsonl"
            low, high = (int(w) for w in args.words.split(","))
            lines = generate(source, size_mb * 1_000_000, dups=args.dups, words=(low, high))
            size = source.stat().st_size
            split_dir = Path(tmp) / "split"
            split_dir.mkdir()
            split_cpu = _children_cpu()
            started = time.perf_counter()
            subprocess.run(
                ["split", "-C", str(shard_bytes), str(source), str(split_dir / "x")], check=True
            )
            split_seconds = time.perf_counter() - started
            split_cpu = _children_cpu() - split_cpu
            shutil.rmtree(split_dir)
            out_dir = Path(tmp) / "plan"
            report = _plan(source, out_dir, shard_bytes, str(ROOT))
            plan_seconds = report["seconds"]
            print(
                f"input {size / 1e6:.0f} MB, {lines} lines: "
                f"split -C {args.shard_mb}M {split_seconds:.2f} s "
                f"({size / 1e6 / split_seconds:.0f} MB/s); "
                f"split_input {plan_seconds:.2f} s ({size / 1e6 / plan_seconds:.0f} MB/s, "
                f"{report['lines'] / plan_seconds / 1000:.0f} k lines/s); "
                f"ratio {plan_seconds / split_seconds:.1f}x; cpu {report['cpu']:.2f} s against "
                f"split's {split_cpu:.2f} s ({report['cpu'] / split_cpu:.1f}x); "
                f"peak RSS {report['rss_mb']:.1f} MB; "
                f"{report['shards']} shards, {report['accepted']} accepted, "
                f"{report['rejected']} rejected ({report['duplicates']} duplicates)"
            )
            if args.baseline:
                baseline_dir = Path(tmp) / "plan-baseline"
                before = _plan(source, baseline_dir, shard_bytes, args.baseline)
                print(
                    f"  baseline {args.baseline}: split_input {before['seconds']:.2f} s "
                    f"({report['lines'] / before['seconds'] / 1000:.0f} k lines/s, "
                    f"{before['seconds'] / split_seconds:.1f}x split), cpu {before['cpu']:.2f} s; "
                    f"peak RSS {before['rss_mb']:.1f} MB; this code is "
                    f"{before['seconds'] / plan_seconds:.2f}x as fast "
                    f"({before['cpu'] / report['cpu']:.2f}x in cpu); staged files "
                    f"byte-identical: {_same_tree(out_dir, baseline_dir)}"
                )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _same_tree(one: Path, other: Path) -> bool:
    files = sorted(path.relative_to(one) for path in one.rglob("*") if path.is_file())
    theirs = sorted(path.relative_to(other) for path in other.rglob("*") if path.is_file())
    return files == theirs and all(
        filecmp.cmp(one / name, other / name, shallow=False) for name in files
    )


def _plan(source: Path, out_dir: Path, shard_bytes: int, root: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(source), str(out_dir), str(shard_bytes)]
    finished = subprocess.run(
        [*command, root], capture_output=True, text=True, check=True, env=os.environ
    )
    report: dict[str, float] = json.loads(finished.stdout)
    return report


if __name__ == "__main__":
    main()
