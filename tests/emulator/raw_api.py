"""A raw-HTTP client for the emulator tests: upload, create, wait, download."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

TERMINAL = {
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
}


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def request(text: str) -> dict[str, Any]:
    return {"contents": [{"parts": [{"text": text}], "role": "user"}]}


def upload(client: httpx.Client, data: bytes, version: str = "v1beta") -> dict[str, Any]:
    """Upload ``data`` in one ``upload, finalize`` call; the File."""
    started = client.post(
        f"/upload/{version}/files",
        json={"file": {"display_name": "input"}},
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        },
    )
    assert started.status_code == 200, started.text
    done = httpx.post(
        started.headers["x-goog-upload-url"],
        content=data,
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
    )
    assert done.status_code == 200, done.text
    file: dict[str, Any] = done.json()["file"]
    return file


def create_file_batch(
    client: httpx.Client,
    file_name: str,
    display_name: str = "job",
    kind: str = "generate",
    model: str = "gemini-2.5-flash",
) -> httpx.Response:
    method = "batchGenerateContent" if kind == "generate" else "asyncBatchEmbedContent"
    body = {"batch": {"displayName": display_name, "inputConfig": {"fileName": file_name}}}
    return client.post(f"/v1beta/models/{model}:{method}", json=body)


def create_inline_batch(
    client: httpx.Client,
    texts: list[str],
    display_name: str = "job",
    model: str = "gemini-2.5-flash",
) -> httpx.Response:
    items = [
        {"request": request(text), "metadata": {"key": f"k{i}"}} for i, text in enumerate(texts)
    ]
    body = {
        "batch": {"displayName": display_name, "inputConfig": {"requests": {"requests": items}}}
    }
    return client.post(f"/v1beta/models/{model}:batchGenerateContent", json=body)


def wait_done(client: httpx.Client, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll ``batches.get`` until the job is terminal (the timeout only guards a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        operation: dict[str, Any] = client.get(f"/v1beta/{name}").json()
        if operation["metadata"]["state"] in TERMINAL:
            return operation
        assert time.monotonic() < deadline, f"{name} hangs: {operation}"
        time.sleep(0.02)


def download(client: httpx.Client, file_name: str) -> list[dict[str, Any]]:
    response = client.get(f"/download/v1beta/{file_name}:download", params={"alt": "media"})
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]
