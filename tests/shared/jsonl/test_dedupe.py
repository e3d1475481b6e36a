from __future__ import annotations

import random
from pathlib import Path

from shared.jsonl.dedupe import Duplicate, KeyLog


def test_later_lines_repeating_a_key_are_duplicates_of_the_first(tmp_path: Path):
    keys = ["a", "b", "a", "c", "b", "a", "line-2", "é😀", "é😀"]
    with KeyLog(str(tmp_path), bloom_bytes=1024) as log:
        for number, key in enumerate(keys, start=1):
            log.add(key, number)
        assert list(log.duplicates()) == [
            Duplicate(3, 1),
            Duplicate(5, 2),
            Duplicate(6, 1),
            Duplicate(9, 8),
        ]
    assert list(tmp_path.iterdir()) == []


def test_bloom_never_misses_a_duplicate(tmp_path: Path):
    rng = random.Random(7)
    pool = [f"k{index}" for index in range(3000)]
    seen: set[str] = set()
    with KeyLog(str(tmp_path), bloom_bytes=64) as log:  # tiny: many false "maybe"s
        for number in range(1, 10_001):
            key = rng.choice(pool)
            maybe = log.add(key, number)
            if key in seen:
                assert maybe
            seen.add(key)
        duplicates = list(log.duplicates())
    assert len(duplicates) == 10_000 - len(seen)
    assert [d.line for d in duplicates] == sorted(d.line for d in duplicates)
    assert all(d.first_line < d.line for d in duplicates)


def test_duplicate_sort_spills_with_a_small_budget(tmp_path: Path):
    with KeyLog(str(tmp_path), bloom_bytes=1024, memory_bytes=2000) as log:
        for number in range(1, 2001):
            log.add(str(number % 50), number)
        duplicates = list(log.duplicates())
    assert [d.line for d in duplicates] == list(range(51, 2001))
    assert all(d.first_line == (d.line % 50 or 50) for d in duplicates)
