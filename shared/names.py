"""Names other processes see: Celery task and queue names, and Redis keys.

Task names and the queue are the contract with client services (``send_task``), beat and
Flower; Redis keys are shared by every worker. The run's storage layout is
:mod:`shared.run.layout`.
"""

from __future__ import annotations

# ---- Celery ---------------------------------------------------------------------------
TASK_START_RUN = "shardline.start_run"
TASK_PLAN = "shardline.plan"
TASK_UPLOAD = "shardline.upload"
TASK_CREATE = "shardline.create"
TASK_POLL = "shardline.poll"
TASK_COLLECT = "shardline.collect"
TASK_MERGE = "shardline.merge"
TASK_SEND_SHARDS = "shardline.send_shards"
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
