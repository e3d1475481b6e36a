"""Streams over obstore (shared/storage/_obstore_io.py) against a real S3 server."""

from __future__ import annotations

import io
import time
import uuid

import pytest
from obstore.store import S3Store

from shared.errors import ObjectNotFoundError, StorageError
from shared.storage import Storage, open_storage
from shared.storage._obstore_io import ObjectReader, storage_error
from shared.storage._obstore_stores import Backend
from shared.storage.obstore_backend import ObstoreStorage
from tests.fixtures.storage import S3Server

MIB = 1 << 20


def _impatient(s3_server: S3Server, bucket: str) -> ObstoreStorage:
    """A storage whose client gives every request 200 ms, body included."""
    store = S3Store(
        bucket,
        config={"aws_endpoint_url_s3": s3_server.endpoint},
        client_options={"allow_http": True, "timeout": "200ms"},
    )
    return ObstoreStorage(Backend(store=store, uri=f"s3://{bucket}", sorted_listing=False))


def _fill(storage: Storage, key: str, megabytes: int, byte: bytes) -> None:
    with storage.open_write(key) as writer:
        for _ in range(megabytes):
            writer.write(byte * MIB)


def test_slow_reader_outlasts_the_client_timeout(s3_server: S3Server, s3_storage: Storage) -> None:
    """More broken GETs than obstore's own 10 retries: the reader reopens and goes on."""
    key = f"{s3_storage.uri.rpartition('/')[2]}/slow.bin"
    _fill(s3_storage, "slow.bin", 64, b"s")
    slow = _impatient(s3_server, s3_server.bucket)
    total = 0
    with slow.open_read(key) as reader:
        while piece := reader.read(MIB):
            assert piece == b"s" * len(piece)
            total += len(piece)
            time.sleep(0.06)  # the consumer, not the network, sets the pace
        assert isinstance(reader, io.BufferedReader)
        raw = reader.raw
        assert isinstance(raw, ObjectReader)
        assert raw.resumes > 0
    assert total == 64 * MIB


def test_object_replaced_mid_read_fails_instead_of_splicing(
    s3_server: S3Server, s3_storage: Storage
) -> None:
    key = f"{s3_storage.uri.rpartition('/')[2]}/swap.bin"
    _fill(s3_storage, "swap.bin", 24, b"A")
    slow = _impatient(s3_server, s3_server.bucket)
    seen = bytearray()
    with (
        pytest.raises(StorageError, match="replaced while being read"),
        slow.open_read(key) as reader,
    ):
        while piece := reader.read(MIB):
            seen += piece
            if len(seen) == 2 * MIB:
                _fill(s3_storage, "swap.bin", 24, b"B")
            time.sleep(0.06)
    assert b"B" not in seen


def test_aborted_write_leaves_no_pending_upload(s3_server: S3Server, s3_storage: Storage) -> None:
    prefix = s3_storage.uri.rpartition("/")[2]
    with pytest.raises(RuntimeError), s3_storage.open_write("big/part.bin") as writer:
        for _ in range(20):  # 20 MiB: two 8 MiB parts already uploaded
            writer.write(b"p" * MIB)
        assert s3_server.pending_uploads(s3_server.bucket, prefix) == [f"{prefix}/big/part.bin"]
        raise RuntimeError("stop")
    assert s3_server.pending_uploads(s3_server.bucket, prefix) == []
    assert not s3_storage.exists("big/part.bin")


def test_errors_name_the_object_but_never_the_secret(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_server.apply_env(monkeypatch)
    secret = f"wrong-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    storage = open_storage(f"s3://{s3_server.bucket}/denied")
    with pytest.raises(StorageError) as caught:
        storage.write_bytes("x", b"1")
    message = str(caught.value)
    assert message.startswith(f"cannot write s3://{s3_server.bucket}/denied/x: ")
    assert "\n" not in message
    assert secret not in message
    assert secret not in repr(storage)


def test_storage_error_mapping() -> None:
    assert isinstance(
        storage_error(FileNotFoundError("gone"), "read", "s3://b/k"), ObjectNotFoundError
    )
    long = storage_error(OSError("x" * 1000 + "\nsecond line"), "read", "s3://b/k")
    assert type(long) is StorageError
    assert "second line" not in str(long)
    assert len(str(long)) < 400


@pytest.mark.parametrize("reply", [
    # obstore's words when no credential is configured and the metadata endpoint refuses
    "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in "
    "1.44ms - Server returned non-2xx status code: 403 Forbidden: resolve_deny",
    "Generic GCS error: Error performing GET http://metadata.google.internal/computeMetadata/"
    "v1/instance/service-accounts/default/token: connection refused",
])
def test_no_credentials_says_so_instead_of_the_metadata_endpoint(reply: str) -> None:
    error = storage_error(OSError(reply), "read", "s3://b/out/_shardline/run.json")
    assert str(error).startswith("cannot read s3://b/out/_shardline/run.json: no credentials:")
    assert "169.254" not in str(error) and "403" not in str(error)
