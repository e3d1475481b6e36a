"""RequestCache on memory storage: lookups, fetches, newest-wins, stats and eviction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from io import BytesIO

from shared.cache import RequestCache
from shared.cache.keys import bucket_of, cache_key, namespace, request_bytes, request_digest
from shared.cache.remember import remember_part
from shared.cache.segments import segment_key, written_ms
from shared.jsonl.records import error_record, result_record, staged_line
from shared.storage import open_storage


def _cache() -> RequestCache:
    return RequestCache(open_storage(f"memory://cache-{uuid.uuid4().hex}"))


def _key(text: str, occurrence: int = 0) -> bytes:
    space = namespace(endpoint="http://x", model="m", kind="generate")
    return cache_key(request_digest(space, text.encode()), occurrence)


def test_keys_change_with_every_input_of_the_namespace_and_every_byte() -> None:
    base = dict(endpoint="https://g", model="gemini-2.5-flash", kind="generate")
    space = namespace(**base)
    assert namespace(**{**base, "model": "models/gemini-2.5-flash"}) == space
    for changed in ({"endpoint": "http://emulator"}, {"model": "gemini-2.5-pro"},
                    {"kind": "embed"}):
        assert namespace(**{**base, **changed}) != space
    assert request_digest(space, b'{"a":1}') != request_digest(space, b'{"a":2}')
    assert cache_key(b"ab", 0) != cache_key(b"ab", 1)
    assert request_bytes(staged_line(7, b'{"contents":[]}')) == b'{"contents":[]}'


def test_remembered_responses_are_found_and_fetched() -> None:
    cache = _cache()
    entries = {_key(f"q{n}"): b'{"answer":%d}' % n for n in range(300)}
    assert cache.remember(entries.items()) == 300
    wanted = {_key(f"q{n}") for n in range(0, 400, 3)}
    found: dict[bytes, bytes] = {}
    for bucket in {bucket_of(key) for key in wanted}:
        hits = cache.lookup(bucket, {key for key in wanted if bucket_of(key) == bucket})
        found.update(cache.fetch(hits))
    assert found == {key: entries[key] for key in wanted if key in entries}


def test_the_newest_segment_wins() -> None:
    cache = _cache()
    key = _key("q")
    bucket = bucket_of(key)
    cache.storage.write_bytes(segment_key(bucket, 1_000), _segment(key, b"old"))
    cache.storage.write_bytes(segment_key(bucket, 2_000), _segment(key, b"new"))
    assert dict(cache.fetch(cache.lookup(bucket, {key}))) == {key: b"new"}


def _segment(key: bytes, value: bytes) -> bytes:
    index = b"%s 0 %d\n" % (key, len(value))
    return b"SLC1 1 %d\n%s%s" % (len(index), index, value)


def test_remember_part_files_responses_only() -> None:
    cache = _cache()
    keys = BytesIO(b"".join(b"%d %s\n" % (n, _key(f"q{n}")) for n in (1, 2, 3, 5)))
    results = BytesIO(
        result_record(1, b'{"r":1}') + result_record(3, b'{"r":3}') + result_record(4, b"{}")
        + result_record(5, b'{"r":5}')
    )
    assert remember_part(cache, results, keys) == 3
    errors = BytesIO(error_record(2, {"code": 400}, False))
    assert remember_part(cache, errors, BytesIO(b"2 %s\n" % _key("q2"))) == 0
    stats = cache.stats()
    assert stats.entries == 3 and stats.segments == len({bucket_of(_key(f"q{n}"))
                                                         for n in (1, 3, 5)})


def test_prune_evicts_by_age_then_by_size() -> None:
    cache = _cache()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    day = 86_400_000
    stamp = int(now.timestamp() * 1000)
    for age_days in (40, 10, 5, 1):
        cache.storage.write_bytes(segment_key("0a", stamp - age_days * day),
                                  _segment(b"0a" + b"0" * 30 + b".0", b"x" * 100))
    report = cache.prune(max_age=timedelta(days=30), now=now)
    assert report.deleted_segments == 1 and report.kept_segments == 3
    size = cache.stats().bytes // 3
    report = cache.prune(max_bytes=size * 2, now=now)
    assert report.deleted_segments == 1 and report.kept_bytes <= size * 2
    oldest = cache.stats().oldest
    assert oldest is not None and now - oldest == timedelta(days=5)


def test_compact_merges_a_days_segments_and_the_newest_answer_wins() -> None:
    cache = _cache()
    day = 86_400_000
    base = 20_000 * day  # midnight UTC
    old_key, shared_key = _key("old"), _key("both")
    cache.remember([(old_key, b"o"), (shared_key, b"first")], stamp_ms=base + 1_000)
    cache.remember([(shared_key, b"second")], stamp_ms=base + 2_000)
    cache.remember([(shared_key, b"next day")], stamp_ms=base + day + 1)
    before = cache.stats()
    report = cache.compact()
    after = cache.stats()
    assert report.merged_segments >= 2 and after.segments < before.segments
    found: dict[bytes, bytes] = {}
    for key in (old_key, shared_key):
        found.update(cache.fetch(cache.lookup(bucket_of(key), {key})))
    assert found == {old_key: b"o", shared_key: b"next day"}
    assert after.newest == before.newest and after.oldest is not None
    # the day's merged segment is stamped with that day's newest write
    assert {written_ms(info.key) for info in cache.storage.list("v1/")} <= {
        base + 1_000, base + 2_000, base + day + 1}
    assert cache.compact().merged_segments == 0  # nothing left to merge
