"""The cost of typed results: ``classify_output`` with and without the output-schema hook.

Builds N lines (default 200 k): a part input whose requests carry a ``responseJsonSchema``
and a provider output (in input order, as the provider writes it) whose answers are JSON
objects of five fields, 10 % of them in the wrong shape. Then, each in its own child process
(its own peak RSS), ``classify_output`` on the same files, joined in order (``in_order=True``,
the collect stage's first try):

- ``none``: no schema (the hook is not passed: the usual path);
- ``inline``: the run's one schema (``output_schema.json_schema``), compiled once;
- ``request``: each request's own schema (``output_schema.from_request``): the staged
  request is parsed per line and its schema's compiled validator looked up.

Prints seconds, CPU seconds, µs per line, the extra µs per line over ``none`` and the ratio,
and the peak RSS of each child (validation streams: RSS does not grow with N).

Usage: .venv/bin/python benchmarks/typed_validate.py [--lines 200000] [--lines 50000,400000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "score": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
        "safe": {"type": "boolean"},
    },
    "required": ["title", "score", "tags", "summary", "safe"],
}


def generate(directory: Path, lines: int) -> None:
    config = {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    with (
        open(directory / "part.jsonl", "wb", buffering=1 << 20) as part,
        open(directory / "output.jsonl", "wb", buffering=1 << 20) as output,
    ):
        for n in range(1, lines + 1):
            request = {
                "contents": [{"parts": [{"text": f"review number {n} " * 8}]}],
                "generationConfig": config,
            }
            part.write(orjson.dumps({"key": str(n), "request": request}) + b"\n")
            value: object = {
                "title": f"title {n}",
                "score": n % 100,
                "tags": ["alpha", "beta", "gamma"],
                "summary": "a short summary of the answer " * 3,
                "safe": True,
            }
            if n % 10 == 0:
                value = json.dumps(value)  # the wrong shape: stringified JSON
            response = {
                "candidates": [
                    {"content": {"parts": [{"text": orjson.dumps(value).decode()}],
                                 "role": "model"}, "finishReason": "STOP"}
                ],
                "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 30,
                                  "totalTokenCount": 70},
            }
            output.write(orjson.dumps({"key": str(n), "response": response}) + b"\n")


CHILD = """
import resource, sys, time
from shared.jsonl import classify_output
from shared.run.spec import OutputSchema
from shared.typed import response_validator
import orjson
mode, directory = sys.argv[1], sys.argv[2]
schema = orjson.loads(sys.argv[3])
validate = None
if mode == "inline":
    validate = response_validator(OutputSchema(json_schema=schema))
elif mode == "request":
    validate = response_validator(OutputSchema(from_request=True))
wall, cpu = time.perf_counter(), time.process_time()
with open(directory + "/output.jsonl", "rb") as output, \\
        open(directory + "/part.jsonl", "rb") as part, \\
        open(directory + "/results-" + mode, "wb") as results, \\
        open(directory + "/errors-" + mode, "wb") as errors:
    stats = classify_output(output, part, results, errors, validate=validate,
                            tmp_dir=directory, in_order=True)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(orjson.dumps({"wall": wall, "cpu": cpu, "rss_kb": rss, "invalid": stats.invalid,
                    "responses": stats.responses}).decode())
"""


def measure(mode: str, directory: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(directory), json.dumps(SCHEMA)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="200000", help="comma-separated line counts")
    args = parser.parse_args()
    for lines in (int(x) for x in args.lines.split(",")):
        with tempfile.TemporaryDirectory(prefix="typed-bench-") as tmp:
            directory = Path(tmp)
            started = time.perf_counter()
            generate(directory, lines)
            print(f"{lines:,} lines generated in {time.perf_counter() - started:.1f} s "
                  f"({(directory / 'output.jsonl').stat().st_size / 1e6:.0f} MB output)")
            base: dict[str, float] = {}
            for mode in ("none", "inline", "request"):
                got = measure(mode, directory)
                if mode == "none":
                    base = got
                per_line = got["cpu"] / lines * 1e6
                extra = (got["cpu"] - base["cpu"]) / lines * 1e6
                print(
                    f"  {mode:8} wall {got['wall']:6.2f} s  cpu {got['cpu']:6.2f} s  "
                    f"{per_line:6.2f} µs/line  +{extra:5.2f} µs/line  "
                    f"x{got['cpu'] / base['cpu']:.2f}  invalid {int(got['invalid']):,}  "
                    f"peak RSS {got['rss_kb'] / 1024:.0f} MiB"
                )


if __name__ == "__main__":
    main()
