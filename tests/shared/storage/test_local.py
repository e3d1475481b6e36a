"""Local directory storage (shared/storage/local.py): what only a filesystem can show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import ObjectNotFoundError, StorageError
from shared.storage import LocalStorage
from shared.storage.local import TEMP_PREFIX


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_aborted_write_leaves_no_temp_file(storage_root: LocalStorage) -> None:
    storage_root.write_bytes("runs/keep", b"k")
    with pytest.raises(RuntimeError), storage_root.open_write("runs/out.jsonl") as writer:
        writer.write(b"x" * 3_000_000)
        raise RuntimeError
    assert _files(storage_root.root) == ["runs/keep"]


def test_write_goes_through_a_hidden_temp_file(storage_root: LocalStorage) -> None:
    with storage_root.open_write("a/b") as writer:
        writer.write(b"partial")
        writer.flush()
        names = os.listdir(storage_root.root / "a")
        assert len(names) == 1
        assert names[0].startswith(TEMP_PREFIX)
        assert not storage_root.exists("a/b")
        assert list(storage_root.list()) == []
    assert os.listdir(storage_root.root / "a") == ["b"]


def test_leftover_temp_files_are_invisible(storage_root: LocalStorage) -> None:
    storage_root.write_bytes("d/real", b"1")
    (storage_root.root / "d" / f"{TEMP_PREFIX}crashed").write_bytes(b"half")
    assert [item.key for item in storage_root.list()] == ["d/real"]
    with pytest.raises(ValueError, match="reserved"):
        storage_root.read_bytes(f"d/{TEMP_PREFIX}crashed")


def test_delete_prunes_empty_directories_up_to_the_root(storage_root: LocalStorage) -> None:
    storage_root.write_bytes("x/y/z/one", b"1")
    storage_root.write_bytes("x/two", b"2")
    storage_root.delete("x/y/z/one")
    assert sorted(os.listdir(storage_root.root / "x")) == ["two"]
    storage_root.delete("x/two")
    assert storage_root.root.is_dir()
    assert os.listdir(storage_root.root) == []


def test_directories_are_not_objects(storage_root: LocalStorage) -> None:
    storage_root.write_bytes("dir/file", b"1")
    with pytest.raises(ObjectNotFoundError):
        storage_root.read_bytes("dir")
    with pytest.raises(ObjectNotFoundError):
        storage_root.info("dir")
    storage_root.delete("dir")  # not an object: nothing to delete
    assert storage_root.exists("dir/file")
    with pytest.raises(StorageError):
        storage_root.write_bytes("dir", b"clash")
    with pytest.raises(StorageError):
        storage_root.create_if_absent("dir", b"clash")
    with pytest.raises(StorageError):
        storage_root.write_bytes("dir/file/below", b"clash")


def test_missing_root_lists_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "not" / "yet")
    assert list(storage.list()) == []
    assert not storage.exists("a")
    storage.write_bytes("a", b"1")  # the root is created on first write
    assert (tmp_path / "not" / "yet" / "a").read_bytes() == b"1"


def test_local_path_and_uri(storage_root: LocalStorage) -> None:
    storage_root.write_bytes("p/q", b"data")
    assert storage_root.local_path("p/q") == storage_root.root / "p" / "q"
    assert storage_root.uri == str(storage_root.root)
    assert storage_root.child("p").local_path("q") == storage_root.root / "p" / "q"


def test_without_fsync(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, fsync=False)
    storage.write_bytes("a", b"1")
    assert storage.create_if_absent("b", b"2")
    assert storage.child("c")._fsync is False
    assert _files(tmp_path) == ["a", "b"]


def test_new_files_follow_the_umask(storage_root: LocalStorage) -> None:
    old = os.umask(0o022)
    try:
        storage_root.write_bytes("m", b"1")
        storage_root.create_if_absent("n", b"1")
    finally:
        os.umask(old)
    for name in ("m", "n"):
        assert (storage_root.root / name).stat().st_mode & 0o777 == 0o644
