"""URIs to storages (shared/storage/uri.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.storage import LocalStorage, ObstoreStorage, join_uri, open_storage, split_uri


@pytest.fixture(autouse=True)
def _no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)


def test_local_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for uri in (str(tmp_path / "d"), f"file://{tmp_path}/d", "~/d", "d", "./d/"):
        storage = open_storage(uri)
        assert isinstance(storage, LocalStorage)
        assert storage.uri == str(tmp_path / "d"), uri
    assert open_storage("file:///tmp/with%20space").uri == "/tmp/with space"


def test_local_fsync_option(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path), fsync=False)
    assert isinstance(storage, LocalStorage)
    assert storage._fsync is False


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://bucket/runs/r1/", "s3://bucket/runs/r1"),
        ("gs://bucket/out", "gs://bucket/out"),
        ("gcs://bucket/out", "gs://bucket/out"),
        ("memory://name/p", "memory://name/p"),
    ],
)
def test_object_store_forms(uri: str, expected: str) -> None:
    storage = open_storage(uri)
    assert isinstance(storage, ObstoreStorage)
    assert storage.uri == expected


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "ftp://host/x",
        "s3://",
        "s3:///path",
        "s3://key:secret@bucket/p",
        "s3://127.0.0.1:9000/bucket",
        "s3://bucket/p?versionId=1",
        "s3://bucket/a/../b",
        "file://otherhost/x",
    ],
)
def test_unusable_uris(uri: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_storage(uri)
    assert "secret" not in str(caught.value)


def test_split_uri(tmp_path: Path) -> None:
    storage, key = split_uri("memory://split/in/data.jsonl")
    assert (storage.uri, key) == ("memory://split/in", "data.jsonl")
    storage, key = split_uri("s3://bucket/data.jsonl")
    assert (storage.uri, key) == ("s3://bucket", "data.jsonl")
    storage, key = split_uri(str(tmp_path / "in.jsonl"))
    assert (storage.uri, key) == (str(tmp_path), "in.jsonl")
    storage, key = split_uri(f"file://{tmp_path}/in.jsonl")
    assert (storage.uri, key) == (str(tmp_path), "in.jsonl")
    for bad in ("s3://bucket", "s3://bucket/", "memory://x/dir/"):
        with pytest.raises(ValueError):
            split_uri(bad)


def test_split_then_read(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(b"{}\n")
    storage, key = split_uri(str(tmp_path / "in.jsonl"))
    assert storage.read_bytes(key) == b"{}\n"


def test_join_uri() -> None:
    assert join_uri("s3://b/out", "a/x.json") == "s3://b/out/a/x.json"
    assert join_uri("s3://b/", "x") == "s3://b/x"
    assert join_uri("/data/out", "x") == "/data/out/x"
    assert join_uri("file:///", "x") == "file:///x"
    with pytest.raises(ValueError):
        join_uri("s3://b", "../x")


def test_join_then_split_round_trip() -> None:
    storage, key = split_uri(join_uri("memory://rt/out", "results.jsonl"))
    assert (storage.uri, key) == ("memory://rt/out", "results.jsonl")
