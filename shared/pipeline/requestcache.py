"""The run's view of the request cache: whether it is used, its namespace, and the write
of a collected part's responses (the plan's lookups are in :mod:`shared.pipeline.screen`)."""

from __future__ import annotations

import logging

from shared.cache import RequestCache, namespace, remember_part
from shared.errors import StorageError
from shared.pipeline.context import RunContext
from shared.run import layout
from shared.storage import open_storage

log = logging.getLogger("shardline.cache")


def request_cache(ctx: RunContext) -> RequestCache | None:
    """The shared request cache, unless the run opted out (``cache: false``)."""
    if not ctx.manifest.spec.cache:
        return None
    return RequestCache(open_storage(ctx.settings.cache_location()))


def cache_space(ctx: RunContext) -> bytes:
    return namespace(endpoint=ctx.settings.api_base_url, model=ctx.manifest.model,
                     kind=ctx.manifest.kind)


def remember_collected(ctx: RunContext, shard: int, attempt: int, part: int) -> int:
    """File a collected part's responses in the cache (errors never); how many.

    A redelivered collect may file them twice: the newer copy wins, with the same bytes."""
    cache = request_cache(ctx)
    keys = layout.shard_cache_keys(shard)
    if cache is None or not ctx.storage.exists(keys):
        return 0
    try:
        with (
            ctx.storage.open_read(layout.part_results(shard, attempt, part)) as results,
            ctx.storage.open_read(keys) as key_rows,
        ):
            return remember_part(cache, results, key_rows)
    except StorageError as exc:
        # The cache only saves money: a part whose responses cannot be kept is still
        # collected (failing here would end good results as errors).
        log.warning("request cache %s: shard %d a%d p%d not kept: %s",
                    cache.storage.uri, shard, attempt, part, exc)
        return 0
