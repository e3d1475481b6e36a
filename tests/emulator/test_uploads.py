"""The resumable upload protocol on the wire (emulator/uploads.py), driven with raw httpx."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from tests.fixtures.emulator import EmulatorHandle

CHUNK = 1024 * 1024


def start(client: httpx.Client, size: int | None, body: dict | None = None, **headers: str):
    head = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        **headers,
    }
    if size is not None:
        head["X-Goog-Upload-Header-Content-Length"] = str(size)
    return client.post("/upload/v1beta/files", json=body or {"file": {}}, headers=head)


def send(url: str, data: bytes, offset: int, command: str = "upload") -> httpx.Response:
    """A chunk call: no API key (the upload id authorizes it)."""
    headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
    return httpx.post(url, content=data, headers=headers, timeout=60)


def control(url: str, command: str) -> httpx.Response:
    return httpx.post(url, headers={"X-Goog-Upload-Command": command}, timeout=60)


def upload(client: httpx.Client, data: bytes, **body: str) -> dict:
    url = start(client, len(data), {"file": body}).headers["x-goog-upload-url"]
    response = send(url, data, 0, "upload, finalize")
    assert response.status_code == 200, response.text
    return response.json()["file"]


def test_start_answers_like_the_live_api(emulator: EmulatorHandle):
    with emulator.http() as client:
        response = start(client, 20, {"file": {"display_name": "d", "mime_type": "jsonl"}})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-goog-upload-status"] == "active"
    assert response.headers["x-goog-upload-chunk-granularity"] == "8388608"
    url = response.headers["x-goog-upload-url"]
    assert url.startswith(f"{emulator.base_url}/upload/v1beta/files?upload_id=")
    assert "upload_protocol=resumable" in url
    assert response.headers["x-goog-upload-control-url"] == url
    assert response.headers["x-guploader-uploadid"] in url


def test_finalized_file_resource(emulator: EmulatorHandle):
    data = b'{"key": "a", "request": {"contents": []}}\n'
    with emulator.http() as client:
        file = upload(client, data, displayName="my-input", mimeType="jsonl")
        fetched = client.get(f"/v1beta/{file['name']}").json()
    assert re.fullmatch(r"files/[a-z0-9]{12}", file["name"])
    assert file["displayName"] == "my-input"
    assert file["mimeType"] == "application/jsonl"  # the X-Goog-Upload-Header wins
    assert file["sizeBytes"] == str(len(data))
    hex_digest = hashlib.sha256(data).hexdigest()
    assert base64.b64decode(file["sha256Hash"]).decode() == hex_digest
    assert file["state"] == "ACTIVE"
    assert file["source"] == "UPLOADED"
    assert file["uri"] == f"{emulator.base_url}/v1beta/{file['name']}"
    assert "downloadUri" not in file
    created = datetime.fromisoformat(file["createTime"].replace("Z", "+00:00")[:26] + "+00:00")
    expires = datetime.fromisoformat(file["expirationTime"][:26] + "+00:00")
    assert expires - created == timedelta(hours=48)
    assert fetched == file  # files.get: the bare File


def test_snake_and_camel_case_start_bodies(emulator: EmulatorHandle):
    with emulator.http() as client:
        snake = upload(client, b"x", display_name="snake", mime_type="text/plain")
        camel = upload(client, b"y", displayName="camel", mimeType="text/plain")
    assert snake["displayName"] == "snake"
    assert camel["displayName"] == "camel"


def test_chunks_need_no_key_and_query_reports_the_offset(emulator: EmulatorHandle):
    data = os.urandom(3 * CHUNK + 5)
    with emulator.http() as client:
        url = start(client, len(data)).headers["x-goog-upload-url"]
    first = send(url, data[:CHUNK], 0)
    assert first.status_code == 200
    assert first.headers["x-goog-upload-status"] == "active"
    assert first.headers["x-goog-upload-size-received"] == str(CHUNK)
    query = control(url, "query")
    assert query.status_code == 200
    assert query.headers["x-goog-upload-status"] == "active"
    assert query.headers["x-goog-upload-size-received"] == str(CHUNK)
    assert send(url, data[CHUNK : 2 * CHUNK], CHUNK).status_code == 200
    final = send(url, data[2 * CHUNK :], 2 * CHUNK, "upload, finalize")
    assert final.headers["x-goog-upload-status"] == "final"
    assert final.json()["file"]["sizeBytes"] == str(len(data))
    after = control(url, "query")
    assert after.headers["x-goog-upload-status"] == "final"
    assert after.json()["file"]["name"] == final.json()["file"]["name"]


def test_wrong_offset_is_rejected_without_losing_the_session(emulator: EmulatorHandle):
    with emulator.http() as client:
        url = start(client, 10).headers["x-goog-upload-url"]
    assert send(url, b"12345", 0).status_code == 200
    wrong = send(url, b"67890", 3, "upload, finalize")
    assert wrong.status_code == 400
    assert wrong.headers["x-goog-upload-status"] == "final"  # the SDK stops instead of looping
    assert wrong.headers["x-goog-upload-size-received"] == "5"
    assert wrong.json()["error"]["status"] == "INVALID_ARGUMENT"
    right = send(url, b"67890", 5, "upload, finalize")
    assert right.status_code == 200
    assert right.json()["file"]["sizeBytes"] == "10"


def test_repeated_finalize_returns_the_same_file(emulator: EmulatorHandle):
    with emulator.http() as client:
        url = start(client, 3).headers["x-goog-upload-url"]
    first = send(url, b"abc", 0, "upload, finalize").json()
    again = send(url, b"abc", 0, "upload, finalize")
    assert again.status_code == 200
    assert again.json() == first


def test_cancel_ends_the_session(emulator: EmulatorHandle):
    with emulator.http() as client:
        url = start(client, 10).headers["x-goog-upload-url"]
    send(url, b"12345", 0)
    cancelled = control(url, "cancel")
    assert cancelled.status_code == 200
    assert cancelled.headers["x-goog-upload-status"] == "cancelled"
    late = send(url, b"67890", 5, "upload, finalize")
    assert late.status_code == 400
    assert late.headers["x-goog-upload-status"] == "cancelled"


def test_unknown_session(emulator: EmulatorHandle):
    response = send(f"{emulator.base_url}/upload/v1beta/files?upload_id=nope", b"x", 0)
    assert response.status_code == 404
    assert response.headers["x-goog-upload-status"] == "final"


def test_file_over_2_gb_is_refused_at_start(emulator: EmulatorHandle):
    with emulator.http() as client:
        response = start(client, 2_147_483_649)
        at_limit = start(client, 2_147_483_648)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "2147483648" in response.json()["error"]["message"]
    assert at_limit.status_code == 200


def test_bytes_beyond_the_limit_end_the_session(emulator_factory):
    emulator = emulator_factory(max_file_bytes=100)
    with emulator.http() as client:
        url = start(client, None).headers["x-goog-upload-url"]  # no declared size
        declared = start(client, 10).headers["x-goog-upload-url"]
    too_big = send(url, b"x" * 101, 0, "upload, finalize")
    assert too_big.status_code == 400
    assert too_big.headers["x-goog-upload-status"] == "final"
    assert control(url, "query").headers["x-goog-upload-status"] == "cancelled"
    over_declared = send(declared, b"x" * 11, 0, "upload, finalize")
    assert over_declared.status_code == 400
    assert over_declared.json()["error"]["code"] == 400


def test_storage_cap_per_key(emulator_factory):
    emulator = emulator_factory(storage_bytes_per_key=1000)
    with emulator.http() as client:
        upload(client, b"x" * 600)
        refused = start(client, 600)
        url = start(client, None).headers["x-goog-upload-url"]
    with emulator.http(emulator.other_key) as other:
        assert start(other, 600).status_code == 200  # the cap is per key
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    types = [d["@type"].rsplit(".", 1)[1] for d in error["details"]]
    assert types == ["Help", "QuotaFailure", "RetryInfo"]
    over = send(url, b"y" * 500, 0, "upload, finalize")
    assert over.status_code == 429
    assert over.headers["x-goog-upload-status"] == "final"


def test_dropped_connection_then_resume_from_the_server_offset(emulator_factory):
    """A >granularity file in chunks; the server drops the 2nd chunk midway; query; resume."""
    emulator = emulator_factory(upload_chunk_granularity=CHUNK, allow_download_uploaded=True)
    emulator.set_faults({"drops": [{"after_bytes": 300_000, "skip": 1, "times": 1}]})
    data = os.urandom(3 * CHUNK + 12345)
    with emulator.http() as client:
        started = start(client, len(data))
    url = started.headers["x-goog-upload-url"]
    granularity = int(started.headers["x-goog-upload-chunk-granularity"])
    assert granularity == CHUNK
    offset = 0
    dropped = False
    while offset < len(data):
        piece = data[offset : offset + granularity]
        last = offset + len(piece) >= len(data)
        try:
            response = send(url, piece, offset, "upload, finalize" if last else "upload")
        except httpx.TransportError:
            dropped = True
            query = control(url, "query")
            assert query.headers["x-goog-upload-status"] == "active"
            offset = int(query.headers["x-goog-upload-size-received"])
            assert offset == CHUNK + 300_000  # what arrived before the drop was kept
            continue
        assert response.status_code == 200
        offset += len(piece)
    assert dropped
    file = response.json()["file"]
    digest = hashlib.sha256(data).hexdigest()
    assert base64.b64decode(file["sha256Hash"]).decode() == digest
    with emulator.http() as client:
        downloaded = client.get(f"/v1beta/{file['name']}:download", params={"alt": "media"})
    assert hashlib.sha256(downloaded.content).hexdigest() == digest


def test_client_abandoning_a_chunk_keeps_what_arrived(emulator: EmulatorHandle):
    total = 4 * CHUNK
    with emulator.http() as client:
        url = start(client, total).headers["x-goog-upload-url"]

    class AbandonedError(Exception):
        pass

    def body() -> Iterator[bytes]:
        for _ in range(8):
            yield b"z" * 65536
        raise AbandonedError

    with pytest.raises(AbandonedError):
        httpx.post(
            url,
            content=body(),
            headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
        )
    received = 0
    for _ in range(200):  # the server notices the disconnect on its own schedule
        query = control(url, "query")
        received = int(query.headers["x-goog-upload-size-received"])
        if received:
            break
    assert 0 < received <= 8 * 65536
    rest = send(url, b"z" * (total - received), received, "upload, finalize")
    assert rest.status_code == 200
    assert rest.json()["file"]["sizeBytes"] == str(total)
