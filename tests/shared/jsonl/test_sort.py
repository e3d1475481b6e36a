from __future__ import annotations

import random
from pathlib import Path

import pytest

from shared.jsonl.records import record_line_number
from shared.jsonl.sort import LineSorter


def records(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    # keys repeat so stability shows: the tag is the arrival index
    return [
        b'{"line":%d,"tag":%d}\n' % (rng.randrange(count // 3 + 1), index) for index in range(count)
    ]


def stable_sorted(lines: list[bytes]) -> list[bytes]:
    return sorted(lines, key=record_line_number)


def test_in_memory_when_it_fits(tmp_path: Path):
    lines = records(500)
    with LineSorter(record_line_number, tmp_dir=str(tmp_path)) as sorter:
        for line in lines:
            sorter.add(line)
        assert list(sorter.sorted()) == stable_sorted(lines)
        assert sorter.runs == 0


@pytest.mark.parametrize("fan_in", [2, 3, 64])
def test_tiny_budget_forces_many_runs_and_stays_stable(tmp_path: Path, fan_in: int):
    lines = records(5000)
    with LineSorter(
        record_line_number, memory_bytes=4000, tmp_dir=str(tmp_path), fan_in=fan_in
    ) as sorter:
        for line in lines:
            sorter.add(line)
        assert sorter.runs > 100
        assert list(sorter.sorted()) == stable_sorted(lines)
    assert list(tmp_path.iterdir()) == []


def test_missing_final_newline_is_supplied(tmp_path: Path):
    with LineSorter(record_line_number, tmp_dir=str(tmp_path)) as sorter:
        sorter.add(b'{"line":2,"x":1}')
        sorter.add(b'{"line":1,"x":1}\n')
        assert list(sorter.sorted()) == [b'{"line":1,"x":1}\n', b'{"line":2,"x":1}\n']


def test_close_midway_removes_runs(tmp_path: Path):
    sorter = LineSorter(record_line_number, memory_bytes=500, tmp_dir=str(tmp_path))
    for line in records(200):
        sorter.add(line)
    assert sorter.runs > 0
    sorter.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("memory_bytes", "fan_in"), [(1 << 30, 64), (3000, 3), (3000, 64)])
def test_keyed_lines_come_back_with_their_keys(tmp_path: Path, memory_bytes: int, fan_in: int):
    lines = records(3000, seed=5)
    with LineSorter(
        record_line_number, memory_bytes=memory_bytes, tmp_dir=str(tmp_path), fan_in=fan_in
    ) as sorter:
        for line in lines:
            sorter.add_keyed(record_line_number(line) * 10 + 7, line)
        assert (sorter.runs > 64) == (memory_bytes == 3000)  # with fan_in 3: pre-merges
        pairs = list(sorter.sorted_keyed())
    expected = stable_sorted(lines)
    assert [line for _, line in pairs] == expected
    assert [key for key, _ in pairs] == [record_line_number(line) * 10 + 7 for line in expected]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shuffled", [False, True])
def test_runs_of_lines_that_came_in_order_are_read_one_after_another(
    tmp_path: Path, shuffled: bool
):
    lines = [b'{"line":%d,"tag":%d}\n' % (index // 3, index) for index in range(3000)]
    if shuffled:  # one early line out of place: the runs overlap and must be merged
        lines.insert(2000, lines.pop(10))
    with LineSorter(record_line_number, memory_bytes=4000, tmp_dir=str(tmp_path)) as sorter:
        for line in lines:
            sorter.add(line)
        assert sorter.runs > 10
        merged = sorter.sorted()
        first = next(merged)
        assert (len(sorter._open) == 2) is not shuffled  # one run (lines + keys) open at a time
        assert [first, *merged] == stable_sorted(lines)
    assert list(tmp_path.iterdir()) == []
