"""Free the provider's file quota: delete a part's uploaded input once its job is over.

The provider keeps 20 GB of files per project and deletes them only after 48 h, so an input
file is deleted as soon as nothing needs it (its part collected, or the run merged), and its
bytes are given back to admission control. Best effort: a failed delete is left for a later
call (the merge, the reconciler) and, at worst, the provider's expiry.
"""

from __future__ import annotations

from shared import names
from shared.errors import NotFoundError, ProviderError
from shared.pipeline.context import RunContext
from shared.run.records import PlanRecord


def delete_run_files(ctx: RunContext, plan: PlanRecord) -> None:
    """Delete every input file the run uploaded (those already deleted are skipped)."""
    for shard in plan.shards:
        for ref in ctx.store.parts(shard.index):
            delete_part_file(ctx, ref.shard, ref.attempt, ref.part)


def delete_part_file(ctx: RunContext, shard: int, attempt: int, part: int) -> None:
    record = ctx.store.upload(shard, attempt, part)
    if record is None or record.file_name is None or record.deleted:
        return
    try:
        ctx.provider(record.key_fingerprint).delete_file(record.file_name)
    except NotFoundError:
        pass  # expired or deleted already: the quota is free either way
    except ProviderError:
        return  # best effort; files expire after 48 h and the reconciler retries
    ctx.admission.release_file_bytes(
        record.key_fingerprint, names.redis_holder(ctx.run_id, shard, attempt, part)
    )
    record.deleted = True
    ctx.store.write_upload(shard, attempt, part, record)
