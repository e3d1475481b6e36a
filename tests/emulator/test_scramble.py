"""Output ordering (emulator/scramble.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from emulator.scramble import OutputWriter


def write(tmp_path: Path, count: int, *, keep_order: bool, seed: int = 0) -> list[bytes]:
    target = tmp_path / f"out-{keep_order}-{seed}-{count}"
    writer = OutputWriter(target, tmp_path / "scratch", keep_order=keep_order, buckets=8, seed=seed)
    for i in range(count):
        writer.write(i, b"line %d" % i)
    writer.finish()
    data = target.read_bytes()
    assert writer.size == len(data)
    assert writer.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "scratch").exists()
    return data.splitlines()


@pytest.mark.parametrize("count", [2, 3, 10, 1000])
def test_scrambled_keeps_every_line_in_another_order(tmp_path: Path, count: int):
    lines = write(tmp_path, count, keep_order=False)
    expected = [b"line %d" % i for i in range(count)]
    assert sorted(lines) == sorted(expected)
    assert lines != expected


def test_scramble_is_deterministic_and_seeded(tmp_path: Path):
    first = write(tmp_path, 500, keep_order=False, seed=1)
    assert write(tmp_path, 500, keep_order=False, seed=1) == first
    assert write(tmp_path, 500, keep_order=False, seed=2) != first


def test_keep_order(tmp_path: Path):
    assert write(tmp_path, 50, keep_order=True) == [b"line %d" % i for i in range(50)]


def test_abort_removes_everything(tmp_path: Path):
    target = tmp_path / "out"
    writer = OutputWriter(target, tmp_path / "scratch", keep_order=False, buckets=4, seed=0)
    writer.write(0, b"x")
    writer.abort()
    assert not target.exists() and not (tmp_path / "scratch").exists()
