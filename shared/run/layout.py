"""Where a run keeps everything in storage: the output layout and the run's durable records.

Keys are relative to the run's output root (``RunSpec.output_uri``), except the registry's,
which are relative to ``Settings.state_uri``. Only :mod:`shared.run.store` and the streaming
stages that read or write data files use these; nothing else builds a key by hand.
"""

from __future__ import annotations

# ---- What the user reads -------------------------------------------------------------
RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"
REJECTED = "rejected.jsonl"
SUMMARY = "summary.json"

# ---- The durable record of a run (under the output root) -----------------------------
RECORDS = "_shardline"
MANIFEST = f"{RECORDS}/run.json"
PLAN = f"{RECORDS}/plan.json"
CANCEL_MARKER = f"{RECORDS}/cancel.json"
LAUNCHED = f"{RECORDS}/launched.json"
PLAN_REJECTED = f"{RECORDS}/plan/rejected.jsonl"
PARKED = f"{RECORDS}/parked"


def parked(task_id: str) -> str:
    """The record of a task message parked as poison."""
    return f"{PARKED}/{task_id}.json"


def shard_dir(shard: int) -> str:
    return f"{RECORDS}/shards/{shard:05d}"


def shard_input(shard: int) -> str:
    """The staged provider input of a shard: ``{"key": "<line>", "request": ...}`` lines."""
    return f"{shard_dir(shard)}/input.jsonl"


def shard_sidecar(shard: int) -> str:
    """Our own copy of each accepted line's user key and metadata, in input order."""
    return f"{shard_dir(shard)}/sidecar.jsonl"


def shard_outcome(shard: int) -> str:
    """Written once when the shard is final; the merge waits for one per shard."""
    return f"{shard_dir(shard)}/outcome.json"


def shard_results(shard: int) -> str:
    return f"{shard_dir(shard)}/{RESULTS}"


def shard_errors(shard: int) -> str:
    return f"{shard_dir(shard)}/{ERRORS}"


def attempt_dir(shard: int, attempt: int) -> str:
    return f"{shard_dir(shard)}/a{attempt:02d}"


def attempt_record(shard: int, attempt: int) -> str:
    """The parts of an attempt, written before any of them is uploaded."""
    return f"{attempt_dir(shard, attempt)}/attempt.json"


def part_dir(shard: int, attempt: int, part: int) -> str:
    return f"{attempt_dir(shard, attempt)}/p{part:03d}"


def part_input(shard: int, attempt: int, part: int) -> str:
    return f"{part_dir(shard, attempt, part)}/input.jsonl"


def part_upload(shard: int, attempt: int, part: int) -> str:
    """Upload session URL and, once finalized, the provider file name."""
    return f"{part_dir(shard, attempt, part)}/upload.json"


def part_job(shard: int, attempt: int, part: int) -> str:
    """Create intent (display name) written before the create call; job name after."""
    return f"{part_dir(shard, attempt, part)}/job.json"


def part_collected(shard: int, attempt: int, part: int) -> str:
    return f"{part_dir(shard, attempt, part)}/collected.json"


def part_output(shard: int, attempt: int, part: int) -> str:
    """The provider's responses file, copied verbatim before it is parsed."""
    return f"{part_dir(shard, attempt, part)}/output.jsonl"


def part_results(shard: int, attempt: int, part: int) -> str:
    return f"{part_dir(shard, attempt, part)}/results.jsonl"


def part_errors(shard: int, attempt: int, part: int) -> str:
    return f"{part_dir(shard, attempt, part)}/errors.jsonl"


def display_name(run_id: str, shard: int, attempt: int, part: int) -> str:
    """The provider-side display name: unique per part, so a lost create can be found."""
    return f"shardline-{run_id}-s{shard:05d}-a{attempt:02d}-p{part:03d}"


# ---- Run registry (under Settings.state_uri) ------------------------------------------


def registry_run(run_id: str) -> str:
    return f"runs/{run_id}.json"


def registry_inbox(digest: str) -> str:
    return f"inbox/{digest}.json"
