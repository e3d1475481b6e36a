"""Every name Shardline writes: output layout, record keys, task and queue names, Redis keys.

Storage keys are relative to the run's output root (see ``RunSpec.output_uri``).
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
MERGED_MARKER = f"{RECORDS}/merged.json"
PLAN_REJECTED = f"{RECORDS}/plan/rejected.jsonl"


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


# ---- Celery ---------------------------------------------------------------------------
TASK_PREFIX = "shardline."
TASK_START_RUN = "shardline.start_run"
TASK_PLAN = "shardline.plan"
TASK_UPLOAD = "shardline.upload"
TASK_CREATE = "shardline.create"
TASK_POLL = "shardline.poll"
TASK_COLLECT = "shardline.collect"
TASK_FINISH_SHARD = "shardline.finish_shard"
TASK_MERGE = "shardline.merge"
TASK_CANCEL = "shardline.cancel"
TASK_RECONCILE = "shardline.reconcile"
TASK_INBOX_SWEEP = "shardline.inbox_sweep"
TASK_PERIODIC_RUN = "shardline.periodic_run"
QUEUE = "shardline"

# ---- Redis (admission control) --------------------------------------------------------
# Every key names an API key only by its fingerprint, inside a hash tag ``{fp-...}``: all the
# keys of one API key share a cluster slot, so one script may touch them together.
REDIS_PREFIX = "shardline:"


def _redis_key(key_fingerprint: str, what: str) -> str:
    return f"{REDIS_PREFIX}{{{key_fingerprint}}}:{what}"


def redis_live_jobs(key_fingerprint: str) -> str:
    """Sorted set: holder -> when it took a live-job slot (ms since the epoch)."""
    return _redis_key(key_fingerprint, "live-jobs")


def redis_job_claims(key_fingerprint: str) -> str:
    """Hash: holder -> ``"<tokens> <model>"``, what each live job holds of the token budget."""
    return _redis_key(key_fingerprint, "job-claims")


def redis_tokens(key_fingerprint: str) -> str:
    """Hash: model -> tokens enqueued in the key's live jobs of that model."""
    return _redis_key(key_fingerprint, "tokens")


def redis_file_holders(key_fingerprint: str) -> str:
    """Sorted set: holder -> when it claimed provider file storage (ms since the epoch)."""
    return _redis_key(key_fingerprint, "file-holders")


def redis_file_claims(key_fingerprint: str) -> str:
    """Hash: holder -> bytes of its uploaded input file."""
    return _redis_key(key_fingerprint, "file-claims")


def redis_file_bytes(key_fingerprint: str) -> str:
    """Integer: bytes of provider file storage the key's holders claim in total."""
    return _redis_key(key_fingerprint, "file-bytes")


def redis_holder(run_id: str, shard: int, attempt: int, part: int) -> str:
    """Who holds a slot, tokens or bytes: one part of one attempt (``run:shard:attempt:part``)."""
    return f"{run_id}:{shard}:{attempt}:{part}"


def part_output(shard: int, attempt: int, part: int) -> str:
    """The provider's responses file, copied verbatim before it is parsed."""
    return f"{part_dir(shard, attempt, part)}/output.jsonl"
