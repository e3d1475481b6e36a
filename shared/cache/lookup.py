"""The plan's side of the cache: every accepted line looked up, in batches, hits set aside.

After the split, the staged shards are read once more:

1. each staged request is hashed (:mod:`shared.cache.keys`) and its ``(digest, line)``
   written to a local file per *slice* (256 slices, by the digest's first two hex digits;
   the cache's 16 buckets hold 16 slices each);
2. per bucket, in a pool of threads (object storage latency is paid per bucket, not per
   line): the bucket's segments' indexes are downloaded once to a local file; then per
   slice, occurrence numbers are given in line order, the slice's keys looked up in that
   file, and the hits' responses fetched; misses' keys and hits' result records go to
   local files in line order;
3. the buckets' files are merged by line and dealt to the shards: a shard's hits become
   ``cached.jsonl`` (outcome records, joined like any attempt's), its misses' keys
   ``cache-keys.txt`` (what the collect stage files their responses under), and its staged
   input is rewritten without the hits.

Memory holds one slice's keys per thread (1/256 of the input's, about 250 bytes a line;
``LOOKUP_THREADS`` at once) and at most ``HITS_SORT_BYTES`` of its hits; local disk about 50
bytes per accepted line, the hits' responses, and the cache's index (~60 bytes an entry).
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import BinaryIO

import orjson
from pydantic import BaseModel

from shared.cache.keys import BUCKET_DIGITS, cache_key, request_bytes, request_digest
from shared.cache.segments import Hit
from shared.cache.store import RequestCache
from shared.errors import CacheUnavailableError, StorageError
from shared.jsonl.records import record_line_number, result_record, staged_line_number
from shared.jsonl.sort import LineSorter
from shared.run import layout
from shared.run.records import ShardPlan
from shared.storage import Storage
from shared.tokens import estimate_tokens

LOOKUP_THREADS = 4
#: Keys are looked up in slices of the cache's buckets: 256 slices (two hex digits).
SLICE_DIGITS = 2
#: Per lookup thread: the hits' responses waiting to be put in line order.
HITS_SORT_BYTES = 16 * 1024 * 1024


class ShardCache(BaseModel):
    """A shard after the lookup: ``cached`` lines answered; the staged input left to send
    is ``bytes`` long, ``estimated_tokens`` of input."""

    index: int
    cached: int
    bytes: int
    estimated_tokens: int


def apply_cache(
    out: Storage,
    cache: RequestCache,
    space: bytes,
    shards: list[ShardPlan],
    *,
    tmp_dir: str | None = None,
) -> list[ShardCache]:
    """Look every staged line of ``shards`` up in ``cache`` and set the hits aside."""
    with tempfile.TemporaryDirectory(prefix="shardline-lookup-", dir=tmp_dir) as work:
        present = _hash_lines(out, shards, space, work)
        buckets = sorted({piece[:BUCKET_DIGITS] for piece in present})
        try:  # only the cache's storage and local files: nothing of the run is written yet
            with ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as pool:
                list(pool.map(lambda bucket: _bucket(cache, bucket, present, work), buckets))
        except StorageError as exc:
            raise CacheUnavailableError(f"request cache {cache.storage.uri}: {exc}") from exc
        with ExitStack() as stack:
            hits = heapq.merge(
                *(stack.enter_context(open(_path(work, "hits", b), "rb")) for b in present),
                key=record_line_number,
            )
            _deal(out, shards, hits, layout.shard_cached)
        with ExitStack() as stack:
            misses = heapq.merge(
                *(stack.enter_context(open(_path(work, "keys", b), "rb")) for b in present),
                key=_key_line,
            )
            _deal(out, shards, misses, layout.shard_cache_keys)
    return [_drop_hits(out, shard) for shard in shards]


def _path(work: str, what: str, bucket: str) -> str:
    return os.path.join(work, f"{what}-{bucket}")


def _key_line(row: bytes) -> int:
    return int(row[: row.index(b" ")])


def _hash_lines(out: Storage, shards: list[ShardPlan], space: bytes, work: str) -> list[str]:
    """Pass 1: ``digest line`` rows into one local file per slice; the slices used."""
    with ExitStack() as stack:
        files: dict[bytes, BinaryIO] = {}
        for shard in shards:
            with out.open_read(layout.shard_input(shard.index)) as staged:
                for record in staged:
                    digest = request_digest(space, request_bytes(record))
                    bucket = digest[:SLICE_DIGITS]
                    target = files.get(bucket)
                    if target is None:
                        path = _path(work, "lines", bucket.decode())
                        target = files[bucket] = stack.enter_context(open(path, "wb"))
                    target.write(b"%s %d\n" % (digest, staged_line_number(record)))
        return sorted(bucket.decode() for bucket in files)


def _bucket(cache: RequestCache, bucket: str, present: list[str], work: str) -> None:
    """Pass 2 for one bucket: its index downloaded once, split by slice, then each slice."""
    pieces = [piece for piece in present if piece.startswith(bucket)]
    with ExitStack() as stack:
        index = {piece.encode(): stack.enter_context(open(_path(work, "index", piece), "wb"))
                 for piece in pieces}
        for key, hit in cache.index_rows(bucket):
            target = index.get(key[:SLICE_DIGITS])
            if target is not None:  # a slice with no line of this run is not looked up
                target.write(b"%s %s %d %d\n" % (key, hit.segment.encode(), hit.offset,
                                                   hit.length))
    for piece in pieces:
        _slice(cache, piece, work)


def _slice(cache: RequestCache, piece: str, work: str) -> None:
    """One slice: keys with their occurrence numbers, the lookup, the fetch."""
    seen: dict[bytes, int] = {}
    lines: dict[bytes, int] = {}  # key -> line, in line order (insertion order)
    with open(_path(work, "lines", piece), "rb") as rows:
        for row in rows:
            digest, line_text = row.split()
            occurrence = seen.get(digest, 0)
            seen[digest] = occurrence + 1
            lines[cache_key(digest, occurrence)] = int(line_text)
    del seen
    hits: dict[bytes, Hit] = {}
    with open(_path(work, "index", piece), "rb") as index:
        for row in index:
            key, segment, offset, length = row.split()
            if key in lines and key not in hits:  # newest first: the first one wins
                hits[key] = Hit(segment.decode(), int(offset), int(length))
    # Responses arrive in storage order; sorted by line in a bounded buffer (spilled to
    # ``work`` beyond it), so a slice of large responses does not sit in memory.
    with LineSorter(record_line_number, memory_bytes=HITS_SORT_BYTES, tmp_dir=work) as found:
        for key, value in cache.fetch(hits):
            found.add_keyed(lines[key], result_record(lines[key], value))
        with open(_path(work, "hits", piece), "wb") as out:
            out.writelines(found.sorted())
    with open(_path(work, "keys", piece), "wb") as out:
        out.writelines(b"%d %s\n" % (line, key) for key, line in lines.items() if key not in hits)


def _deal(
    out: Storage, shards: list[ShardPlan], rows: Iterator[bytes], name: Callable[[int], str]
) -> None:
    """Write line-ordered ``rows`` to each shard's object ``name(shard)`` (none if empty)."""
    position = 0
    with ExitStack() as stack:
        target: BinaryIO | None = None
        for row in rows:
            line = record_line_number(row) if row.startswith(b"{") else _key_line(row)
            while shards[position].last_line < line:
                position += 1
                stack.close()
                target = None
            if target is None:
                target = stack.enter_context(out.open_write(name(shards[position].index)))
            target.write(row)


def _drop_hits(out: Storage, shard: ShardPlan) -> ShardCache:
    """Rewrite the shard's staged input without its cached lines."""
    cached_key = layout.shard_cached(shard.index)
    if not out.exists(cached_key):
        return ShardCache(index=shard.index, cached=0, bytes=shard.bytes,
                          estimated_tokens=shard.estimated_tokens)
    cached = dropped_bytes = kept_tokens = 0
    input_key = layout.shard_input(shard.index)
    with (
        out.open_read(cached_key) as hits,
        out.open_read(input_key) as source,
        out.open_write(input_key) as target,
    ):
        drops = (record_line_number(record) for record in hits)
        drop = next(drops, None)
        for record in source:
            if drop is not None and staged_line_number(record) == drop:
                cached += 1
                dropped_bytes += len(record)
                drop = next(drops, None)
                continue
            target.write(record)
            # The lines still to send are estimated again (the split's per-line figures are
            # not kept): no parse at all when the cache answers the whole shard.
            kept_tokens += estimate_tokens(orjson.loads(request_bytes(record)))
    if cached == shard.requests:
        out.delete(input_key)
    return ShardCache(
        index=shard.index,
        cached=cached,
        bytes=shard.bytes - dropped_bytes,
        estimated_tokens=kept_tokens,
    )
