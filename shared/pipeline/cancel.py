"""User cancel: stop pending work, cancel live provider jobs, and still merge what finished.

The marker in storage is what every later step checks; cancelling the provider jobs here
makes it take effect now rather than at the next poll.
"""

from __future__ import annotations

import contextlib
from typing import Any

from shared.errors import NotFoundError
from shared.pipeline.context import RunContext


def cancel_run(ctx: RunContext) -> dict[str, Any]:
    ctx.store.request_cancel()
    sent = 0
    plan = ctx.store.plan()
    for shard in plan.shards if plan else []:
        if ctx.store.outcome(shard.index) is not None:
            continue
        for ref in ctx.store.parts(shard.index):
            job = ctx.store.job(ref.shard, ref.attempt, ref.part)
            if job is None or job.job_name is None or job.cancel_sent or job.is_final:
                continue
            with contextlib.suppress(NotFoundError):
                ctx.provider(job.key_fingerprint).cancel_job(job.job_name)
            job.cancel_sent = True
            ctx.store.write_job(ref.shard, ref.attempt, ref.part, job)
            sent += 1
    return {"run_id": ctx.run_id, "cancelled_jobs": sent}
