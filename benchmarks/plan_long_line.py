"""Peak RSS of planning an input with one very long line, with and without the line cap.

The input: a few ordinary requests, one request line of ``--line-mb`` MB (a single text part),
then a few more. Each case plans it (``shared.pipeline.plan.plan_run``, the stage a worker
runs) in a child process so that ``ru_maxrss`` is its own, and prints the peak RSS above the
child's RSS after imports:

- ``capped``: the settings' default ``line_max_bytes`` (32 MiB): the long line is spooled to
  disk and rejected whole (its raw text in ``rejected.jsonl``), never held in memory;
- ``uncapped``: ``line_max_bytes`` as large as a shard (2 GB), what the plan did before the
  cap: the line is read, parsed and staged in memory.

Usage: .venv/bin/python benchmarks/plan_long_line.py [--line-mb 200] [--cases capped,uncapped]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
from shared.pipeline.context import RunContext
from shared.pipeline.plan import plan_run
from shared.pipeline.start import register_run
from shared.run.spec import RunSpec
from shared.settings import Settings

source, work, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = Settings(api_key="unused", state_uri=work + "/state",
                    **({"line_max_bytes": cap} if cap else {}))
spec = RunSpec(input_uri=source, output_uri=work + "/out")
run = register_run(settings, spec)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
plan = plan_run(RunContext(settings, run.run_id, run.output_uri))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"lines": plan.lines, "accepted": plan.accepted, "rejected": plan.rejected,
                  "base_mib": base, "peak_above_base_mib": peak - base}))
"""

#: ``line_max_bytes`` per case; 0 means the settings' default.
CASES = {"capped": 0, "uncapped": 2_000_000_000}


def write_input(path: Path, line_mb: int) -> int:
    """Ten short requests, one of ``line_mb`` MB, ten short; returns the long line's size."""
    def short(n: int) -> bytes:
        line = {"key": f"k{n}", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}
        return json.dumps(line).encode() + b"\n"

    head = b'{"key": "long", "request": {"contents": [{"parts": [{"text": "'
    tail = b'"}]}]}}'
    body = line_mb * 1_000_000 - len(head) - len(tail)
    with path.open("wb") as out:
        for n in range(10):
            out.write(short(n))
        out.write(head)
        block = b"x" * (1 << 20)
        left = body
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))
        out.write(tail + b"\n")
        for n in range(10, 20):
            out.write(short(n))
    return len(head) + body + len(tail)


def measure(source: Path, work: Path, cap: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(work), str(cap)],
                          cwd=ROOT, capture_output=True, text=True, check=True, timeout=3600)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line-mb", type=int, default=200)
    parser.add_argument("--cases", default="capped,uncapped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shardline-long-line-") as tmp:
        source = Path(tmp) / "requests.jsonl"
        size = write_input(source, args.line_mb)
        print(f"input: 20 short lines and one of {size / 1e6:.0f} MB")
        figures = {}
        for case in args.cases.split(","):
            work = Path(tmp) / case
            result = measure(source, work, CASES[case])
            figures[case] = result["peak_above_base_mib"]
            print(f"{case:>9}: accepted {result['accepted']:.0f}, rejected "
                  f"{result['rejected']:.0f}; peak RSS {figures[case]:7.1f} MiB above the "
                  f"{result['base_mib']:.0f} MiB base")
        if "capped" in figures and "uncapped" in figures and figures["capped"] > 0:
            print(f"uncapped / capped peak: x{figures['uncapped'] / figures['capped']:.1f}")


if __name__ == "__main__":
    main()
