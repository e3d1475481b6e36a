"""The request cache: successful responses kept across runs, so no request is paid twice.

:mod:`keys` (what a response is filed under), :mod:`segments` (the format in storage),
:mod:`store` (:class:`RequestCache`: lookup, fetch, remember, stats, prune), :mod:`lookup`
(the plan's batched lookups), :mod:`remember` (the collect stage's writes).
"""

from shared.cache.keys import namespace
from shared.cache.lookup import ShardCache, apply_cache
from shared.cache.remember import remember_part
from shared.cache.store import CacheStats, CompactReport, PruneReport, RequestCache

__all__ = [
    "CacheStats",
    "CompactReport",
    "PruneReport",
    "RequestCache",
    "ShardCache",
    "apply_cache",
    "namespace",
    "remember_part",
]
