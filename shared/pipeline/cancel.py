"""User cancel: stop pending work, cancel live provider jobs, and still merge what finished.

The marker in storage is what every later step checks; cancelling the provider jobs here
makes it take effect now rather than at the next poll.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from shared import names
from shared.errors import NotFoundError
from shared.pipeline.context import RunContext
from shared.pipeline.poll import job_is_final
from shared.records import utcnow


def cancel_run(ctx: RunContext) -> dict[str, Any]:
    ctx.storage.create_if_absent(
        names.CANCEL_MARKER, orjson.dumps({"requested_at": utcnow().isoformat()})
    )
    sent = 0
    plan = ctx.records.plan()
    for shard in plan.shards if plan else []:
        if ctx.records.outcome(shard.index) is not None:
            continue
        for attempt in ctx.records.attempts(shard.index):
            for part in attempt.parts:
                job = ctx.records.job(shard.index, attempt.attempt, part.part)
                if job is None or job.job_name is None or job.cancel_sent or job_is_final(job):
                    continue
                with contextlib.suppress(NotFoundError):
                    ctx.client(job.key_fingerprint).cancel_batch(job.job_name)
                job.cancel_sent = True
                ctx.records.write(names.part_job(shard.index, attempt.attempt, part.part), job)
                sent += 1
    return {"run_id": ctx.run_id, "cancelled_jobs": sent}
