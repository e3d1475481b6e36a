"""Stage 2: one streaming pass over the input cuts the shards, the request cache and the
budget screen them (:mod:`shared.pipeline.screen`), and the plan is recorded."""

from __future__ import annotations

import time

from shared.failpoints import failpoint
from shared.jsonl import split_input
from shared.jsonl.source import open_source
from shared.pipeline.context import RunContext
from shared.pipeline.finish import finish_shard
from shared.pipeline.screen import screen_shards, to_send
from shared.run import layout
from shared.run.records import AttemptRecord, PartPlan, PlanRecord, ShardPlan
from shared.storage import split_uri


def plan_run(ctx: RunContext) -> PlanRecord:
    """Split the input into staged shards (once) and write attempt 1 of every shard.

    Idempotent: a plan already recorded is returned as is; a pass that died half way is
    simply done again (staged files are replaced atomically). A shard left with nothing to
    send (every line cached, or held by the budget) is finished here; attempt records and
    outcomes a dead pass already settled stay as they were (the first writer wins).

    The input may be gzip (decompressed as it streams); a format we do not read (UTF-16, zstd,
    ...), more shards than ``SHARDLINE_MAX_SHARDS`` or a corrupt gzip raise ``InputFileError``
    (the task fails the run with that reason). Lines over ``SHARDLINE_LINE_MAX_BYTES`` are
    rejected without being held in memory.
    """
    existing = ctx.store.plan()
    if existing is not None:
        return existing
    manifest = ctx.manifest
    ctx.check_input()  # allowed by this worker, and JSONL at all: before anything is copied
    started = time.monotonic()
    store, key = split_uri(manifest.spec.input_uri)
    source = manifest.spec.input_uri
    with store.open_read(key) as raw, open_source(raw, source) as reader:
        result = split_input(
            reader,
            ctx.storage,
            kind=manifest.kind,
            dialect=manifest.provider,
            shard_max_bytes=manifest.shard_max_bytes,
            shard_max_requests=manifest.shard_max_requests,
            source=source,
            line_max_bytes=ctx.settings.line_max_bytes,
            max_shards=ctx.settings.max_shards,
        )
    failpoint("plan.after_shards")
    screened = screen_shards(
        ctx, [ShardPlan.model_validate(shard.model_dump()) for shard in result.shards]
    )
    record = PlanRecord(
        input_uri=manifest.spec.input_uri,
        lines=result.lines,
        accepted=result.accepted,
        rejected=result.rejected,
        input_bytes=result.input_bytes,
        estimated_tokens=result.estimated_tokens,
        shards=screened.shards,
        cached=screened.cached,
        held=screened.held,
        estimated_cost=screened.estimated_cost,
        seconds=time.monotonic() - started,
    )
    for shard in record.shards:
        ctx.store.settle_attempt(
            AttemptRecord(
                shard=shard.index,
                attempt=1,
                reason="initial",
                parts=[
                    PartPlan(
                        part=0,
                        input_key=layout.shard_input(shard.index),
                        requests=to_send(shard),
                        bytes=shard.bytes,
                        estimated_tokens=shard.estimated_tokens,
                    )
                ]
                if to_send(shard)
                else [],
            ),
        )
        if not to_send(shard):  # all answered by the cache or held back: nothing to send
            finish_shard(ctx, shard.index)
    planned = ctx.store.settle_plan(record)
    failpoint("plan.after_record")
    return planned
