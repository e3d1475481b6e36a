"""The resumable upload protocol (reference section 1.1-1.2), bytes streamed to disk.

``start`` opens a session and hands back an absolute ``X-Goog-Upload-URL``; ``upload``
appends a chunk at ``X-Goog-Upload-Offset``; ``upload, finalize`` ends with ``{"file": File}``;
``query`` tells the offset the server holds; ``cancel`` drops the session.

Choices where the live API is silent:

* Every chunk answer carries ``X-Goog-Upload-Status``. A rejected chunk (wrong offset, too
  many bytes) answers 400 with status ``final``, as the SDK's own mocks do, so the SDK stops
  instead of sending later chunks; the session itself stays open after a wrong offset, and
  ``X-Goog-Upload-Size-Received`` tells a raw client where to resume.
* Bytes over the 2 GB limit or over the declared size end the session (400, ``final``).
* Per-key storage over the cap answers 429 RESOURCE_EXHAUSTED (a quota, so a client waits for
  files to expire or be deleted) with the usual RetryInfo/QuotaFailure details.
* Non-final chunks need not be multiples of the granularity (the SDK sends 8 MiB ones anyway).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response

from emulator.calls import Call, json_response, read_body
from emulator.errors import ApiError, bad_request, quota_exhausted
from emulator.records import FileRecord, UploadRecord
from emulator.render import file_json
from emulator.wire import field, file_id, parse_body, upload_id

_START_BODY_LIMIT = 1 << 20
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_BLOCK = 1 << 20


def classify(call_query: dict[str, str], command: str) -> str:
    """The endpoint id of an upload call: start, chunk, query or cancel."""
    if "upload_id" not in call_query:
        return "files.upload.start"
    commands = {part.strip().lower() for part in command.split(",")}
    if "query" in commands:
        return "files.upload.query"
    if "cancel" in commands:
        return "files.upload.cancel"
    return "files.upload.chunk"


class _Progress:
    """sha256 and line count of an upload's bytes so far, kept in memory between chunks."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self.newlines = 0
        self.last = b"\n"

    def update(self, data: bytes) -> None:
        if data:
            self.sha.update(data)
            self.size += len(data)
            self.newlines += data.count(b"\n")
            self.last = data[-1:]

    @property
    def lines(self) -> int:
        return self.newlines + (0 if self.last == b"\n" or self.size == 0 else 1)


def _quota(call: Call) -> ApiError:
    config = call.emulator.config
    return quota_exhausted(
        f"File storage quota exceeded: this project may hold {config.storage_bytes_per_key} bytes.",
        retry_delay_seconds=config.quota_retry_delay_seconds,
        quota_metric="generativelanguage.googleapis.com/file_storage_bytes",
        quota_id="FileStorageBytesPerProject",
        retry_after_header=config.quota_retry_after_header,
    )


async def start(call: Call) -> Response:
    emulator = call.emulator
    config = emulator.config
    headers = call.request.headers
    protocol = headers.get("x-goog-upload-protocol", "").lower()
    command = headers.get("x-goog-upload-command", "").lower()
    if protocol != "resumable" or command != "start":
        raise bad_request(
            "Only resumable uploads are supported: send X-Goog-Upload-Protocol: resumable "
            "and X-Goog-Upload-Command: start."
        )
    body: Any = parse_body(await read_body(call.request, _START_BODY_LIMIT))
    meta = field(body, "file") or {}
    if not isinstance(meta, dict):
        raise bad_request("Invalid value at 'file'.")
    size_header = headers.get("x-goog-upload-header-content-length")
    declared: int | None = None
    raw_size = size_header if size_header is not None else field(meta, "sizeBytes")
    if raw_size is not None:
        try:
            declared = int(raw_size)
        except (TypeError, ValueError):
            raise bad_request(f"Invalid upload size: {raw_size!r}.") from None
    if declared is not None and declared > config.max_file_bytes:
        raise bad_request(
            f"File size {declared} bytes exceeds the maximum of {config.max_file_bytes} bytes."
        )
    if emulator.held_bytes(call.owner) + (declared or 0) > config.storage_bytes_per_key:
        raise _quota(call)
    wanted = field(meta, "name")
    if wanted:
        new_id = str(wanted).removeprefix("files/")
        if not _NAME.match(new_id):
            raise bad_request(f"Invalid file name: {wanted!r}.")
        taken = new_id in emulator.store.files or any(
            u.file_id == new_id for u in emulator.store.uploads.values()
        )
        if taken:
            raise ApiError(409, f"File files/{new_id} already exists.")
    else:
        new_id = file_id()
    mime = headers.get("x-goog-upload-header-content-type") or field(meta, "mimeType")
    session = UploadRecord(
        id=upload_id(),
        owner=call.owner,
        file_id=new_id,
        display_name=field(meta, "displayName"),
        mime_type=mime or "application/octet-stream",
        declared_size=declared,
        create_time=emulator.clock.now(),
    )
    emulator.store.upload_blob(session.id).touch()
    emulator.store.save_upload(session)
    call.emulator.upload_progress[session.id] = _Progress()
    url = (
        f"{call.base_url}/upload/{call.version}/files?upload_id={session.id}"
        "&upload_protocol=resumable"
    )
    return Response(
        b"",
        headers={
            "X-Goog-Upload-Status": "active",
            "X-Goog-Upload-URL": url,
            "X-Goog-Upload-Control-URL": url,
            "X-Goog-Upload-Chunk-Granularity": str(config.upload_chunk_granularity),
            "X-GUploader-UploadID": session.id,
        },
    )


def _status_headers(status: str, received: int | None = None) -> dict[str, str]:
    headers = {"X-Goog-Upload-Status": status}
    if received is not None:
        headers["X-Goog-Upload-Size-Received"] = str(received)
    return headers


def _reject(message: str, status: str, received: int | None, code: int = 400) -> ApiError:
    return ApiError(code, message, headers=_status_headers(status, received))


def _session(call: Call) -> UploadRecord:
    session = call.emulator.owned_upload(call.request.query_params["upload_id"])
    if session is None:
        raise _reject("Upload session not found.", "final", None, code=404)
    return session


async def query(call: Call) -> Response:
    session = _session(call)
    if session.state == "final":
        record = call.emulator.store.files.get(session.file_id)
        body = {"file": file_json(record, call.base_url, call.version)} if record else {}
        return json_response(body, headers=_status_headers("final", session.received))
    return Response(b"", headers=_status_headers(session.state, session.received))


async def cancel(call: Call) -> Response:
    session = _session(call)
    if session.state == "active":
        session.state = "cancelled"
        call.emulator.store.save_upload(session)
        call.emulator.store.upload_blob(session.id).unlink(missing_ok=True)
        call.emulator.upload_progress.pop(session.id, None)
    return Response(b"", headers=_status_headers("cancelled"))


def _progress_of(call: Call, session: UploadRecord) -> _Progress:
    """The running hash of the session's bytes, rebuilt from disk if it was lost."""
    progress = call.emulator.upload_progress.get(session.id)
    if isinstance(progress, _Progress) and progress.size == session.received:
        return progress
    progress = _Progress()
    with call.emulator.store.upload_blob(session.id).open("rb") as held:
        remaining = session.received
        while remaining > 0 and (block := held.read(min(_BLOCK, remaining))):
            progress.update(block)
            remaining -= len(block)
    call.emulator.upload_progress[session.id] = progress
    return progress


@contextlib.contextmanager
def _keep_on_disconnect(call: Call, session: UploadRecord) -> Iterator[None]:
    """A client gone mid-chunk: keep the bytes that arrived, so ``query`` can resume there."""
    try:
        yield
    except ClientDisconnect:
        call.emulator.store.save_upload(session)
        raise


def _end_session(call: Call, session: UploadRecord) -> None:
    session.state = "cancelled"
    call.emulator.store.save_upload(session)
    call.emulator.store.upload_blob(session.id).unlink(missing_ok=True)
    call.emulator.upload_progress.pop(session.id, None)


async def chunk(call: Call) -> Response:
    emulator = call.emulator
    config = emulator.config
    session = _session(call)
    headers = call.request.headers
    commands = {p.strip().lower() for p in headers.get("x-goog-upload-command", "").split(",")}
    finalize = "finalize" in commands
    if session.state == "cancelled":
        raise _reject("The upload session was cancelled.", "cancelled", session.received)
    if session.state == "final":
        record = emulator.store.files.get(session.file_id)
        if finalize and record is not None:  # a repeated finalize whose answer was lost
            body = {"file": file_json(record, call.base_url, call.version)}
            return json_response(body, headers=_status_headers("final", session.received))
        raise _reject("The upload is already finalized.", "final", session.received)
    raw_offset = headers.get("x-goog-upload-offset")
    if raw_offset is None or not raw_offset.isdigit():
        raise _reject("Missing or invalid X-Goog-Upload-Offset.", "final", session.received)
    offset = int(raw_offset)
    if offset != session.received:
        raise _reject(
            f"Invalid upload offset {offset}: the server has received {session.received} bytes.",
            "final",
            session.received,
        )
    limit = config.max_file_bytes
    if session.declared_size is not None:
        limit = min(limit, session.declared_size)
    room = config.storage_bytes_per_key - emulator.held_bytes(call.owner or session.owner)
    drop = emulator.faults.drop(call.endpoint, call.request.method)
    progress = _progress_of(call, session)
    blob = emulator.store.upload_blob(session.id)
    taken = 0
    with blob.open("r+b") as out, _keep_on_disconnect(call, session):
        out.truncate(session.received)
        out.seek(session.received)
        async for data in call.request.stream():
            if drop is not None and taken + len(data) >= drop.after_bytes:
                kept = data[: drop.after_bytes - taken]
                out.write(kept)
                progress.update(kept)
                session.received += len(kept)
                out.flush()
                emulator.store.save_upload(session)
                await call.abort_connection()
                return Response(b"", status_code=499)
            if session.received + len(data) > limit:
                _end_session(call, session)
                raise _reject(
                    f"Upload exceeds {limit} bytes (the declared size or the 2 GB limit).",
                    "final",
                    None,
                )
            if len(data) > room:
                _end_session(call, session)
                error = _quota(call)
                error.headers.update(_status_headers("final"))
                raise error
            out.write(data)
            progress.update(data)
            session.received += len(data)
            taken += len(data)
            room -= len(data)
    if not finalize:
        emulator.store.save_upload(session)
        return Response(b"", headers=_status_headers("active", session.received))
    if session.declared_size is not None and session.received != session.declared_size:
        emulator.store.save_upload(session)
        raise _reject(
            f"Upload finalized with {session.received} bytes; {session.declared_size} declared.",
            "final",
            session.received,
        )
    now = emulator.clock.now()
    record = FileRecord(
        id=session.file_id,
        owner=session.owner,
        display_name=session.display_name,
        mime_type=session.mime_type,
        size_bytes=session.received,
        sha256_hex=progress.sha.hexdigest(),
        create_time=now,
        update_time=now,
        expiration_time=now + config.file_ttl_seconds,
        line_count=progress.lines,
    )
    blob.replace(emulator.store.blob(record.id))
    emulator.store.save_file(record)
    session.state = "final"
    emulator.store.save_upload(session)
    call.emulator.upload_progress.pop(session.id, None)
    body = {"file": file_json(record, call.base_url, call.version)}
    return json_response(body, headers=_status_headers("final", session.received))
