"""What the plan sends: cache hits set aside, then the budget applied, before any upload.

Called by the plan stage between the split and the attempt records. Per shard it leaves
(see :mod:`shared.run.layout`): ``cached.jsonl`` (the cache's answers), ``held.jsonl``
(``BUDGET_EXCEEDED`` errors for lines the budget keeps back) and ``cache-keys.txt`` (the
keys the collect stage files the responses under); the shard's staged input keeps only the
lines to send. A shard left with nothing to send is finished right away (no upload, no
job); :func:`shared.pipeline.finish.finish_shard` joins these files like an attempt's.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel

from shared.budget import affordable, budget_error, part_estimate
from shared.cache import RequestCache, apply_cache
from shared.errors import CacheUnavailableError, InputError
from shared.jsonl.records import error_record, staged_line_number
from shared.pipeline.context import RunContext
from shared.pipeline.requestcache import cache_space, request_cache
from shared.pricing import price_of
from shared.run import layout
from shared.run.records import CostEstimate, ShardPlan
from shared.storage import Storage

log = logging.getLogger("shardline.cache")


class Screened(BaseModel):
    shards: list[ShardPlan]
    cached: int
    held: int
    estimated_cost: CostEstimate


def screen_shards(ctx: RunContext, shards: list[ShardPlan]) -> Screened:
    """Apply the cache and the budget to freshly split ``shards``."""
    return screen(
        ctx.storage,
        shards,
        cache=request_cache(ctx),
        space=cache_space(ctx),
        model=ctx.manifest.model,
        max_cost=ctx.manifest.spec.max_cost,
        output_tokens=ctx.settings.estimate_output_tokens,
    )


def screen(
    storage: Storage,
    shards: list[ShardPlan],
    *,
    cache: RequestCache | None,
    space: bytes,
    model: str,
    max_cost: float | None,
    output_tokens: int,
) -> Screened:
    if max_cost is not None and price_of(model) is None:
        raise InputError(f"max_cost needs a price for {model}, and the price table has none")
    if cache is not None and shards:
        try:
            applied = apply_cache(storage, cache, space, shards)
        except CacheUnavailableError as exc:
            log.warning("%s; planning without it", exc)
            applied = []
        for found in applied:
            shard = shards[found.index]
            shards[found.index] = shard.model_copy(update={
                "cached": found.cached, "bytes": found.bytes,
                "estimated_tokens": found.estimated_tokens,
            })
    sent = [s.requests - s.cached for s in shards]
    costs = [part_estimate(model, n, s.estimated_tokens, output_tokens) for n, s in
             zip(sent, shards, strict=True)]
    keep = len(shards)
    if max_cost is not None:
        keep = affordable((c.total or 0.0 for c in costs), max_cost)
        for index in range(keep, len(shards)):
            if sent[index]:
                _hold(storage, shards[index], max_cost)
                shards[index] = shards[index].model_copy(update={"held": sent[index]})
    committed = part_estimate(
        model,
        sum(sent[:keep]),
        sum(s.estimated_tokens for s in shards[:keep]),
        output_tokens,
    )
    return Screened(
        shards=shards,
        cached=sum(s.cached for s in shards),
        held=sum(s.held for s in shards),
        estimated_cost=committed,
    )


def to_send(shard: ShardPlan) -> int:
    return shard.requests - shard.cached - shard.held


def _hold(storage: Storage, shard: ShardPlan, max_cost: float) -> None:
    """Every line still to send of ``shard`` becomes a ``BUDGET_EXCEEDED`` error."""
    error = budget_error(max_cost)
    with (
        storage.open_read(layout.shard_input(shard.index)) as source,
        storage.open_write(layout.shard_held(shard.index)) as target,
    ):
        for record in source:
            target.write(error_record(staged_line_number(record), error, False))
