"""An OpenAI-style Files + Batch API, served under ``/openai/v1`` (base URL
``http://HOST:PORT/openai/v1`` for the ``openai`` SDK and for ``SHARDLINE_OPENAI_BASE_URL``)::

    POST   /openai/v1/files                   upload (multipart: ``file``, ``purpose``)
    GET    /openai/v1/files                   list (``purpose``, ``limit``, ``after``, ``order``)
    GET    /openai/v1/files/{id}              retrieve
    DELETE /openai/v1/files/{id}              delete
    GET    /openai/v1/files/{id}/content      the bytes
    POST   /openai/v1/batches                 create (``input_file_id``, ``endpoint``,
                                              ``completion_window``, ``metadata``)
    GET    /openai/v1/batches                 list (``limit``, ``after``)
    GET    /openai/v1/batches/{id}            retrieve
    POST   /openai/v1/batches/{id}/cancel     cancel

Auth: ``Authorization: Bearer KEY`` (the same keys as the Gemini side). Errors use OpenAI's
envelope ``{"error": {"message", "type", "param", "code"}}``; a 429 carries ``Retry-After``.
Jobs share the Gemini side's lifecycle and fault switches (endpoint ids ``openai.files.*``,
``openai.batches.*``; job rules select by the ``shardline_display_name`` in a batch's
metadata, else by its id). Limits: 200 MB a file, 50,000 requests a batch (a larger batch
ends ``failed``, as the API's validation does), live jobs and enqueued tokens per key.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any, BinaryIO, Literal

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response

from emulator.calls import json_response
from emulator.faults import HttpFault
from emulator.records import FileRecord, JobRecord
from emulator.state import Emulator, fingerprint
from emulator.wire import batch_id, file_id

PREFIX = "/openai/v1"
ENDPOINTS: dict[str, Literal["generate", "embed"]] = {
    "/v1/chat/completions": "generate",
    "/v1/embeddings": "embed",
}
DISPLAY_NAME_FIELD = "shardline_display_name"
_WINDOW = re.compile(r"^\d+h$")
_STATUS = {
    "PENDING": "validating",
    "RUNNING": "in_progress",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "EXPIRED": "expired",
    "CANCELLED": "cancelled",
}
_TIME_FIELDS = {
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelled": "cancelled_at",
}


class OpenAIError(Exception):
    """An answer in OpenAI's error envelope."""

    def __init__(
        self, status: int, message: str, *, kind: str = "invalid_request_error",
        code: str | None = None, param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = (
            status, message, kind, code, param,
        )
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {
            "error": {
                "message": self.message, "type": self.kind, "param": self.param,
                "code": self.code,
            }
        }
        return json_response(body, self.status, self.headers)


def _fault_error(fault: HttpFault) -> OpenAIError:
    if fault.code == 429:
        delay = fault.retry_delay_seconds
        return OpenAIError(
            429, fault.message or "Rate limit reached for requests. Please try again later.",
            kind="requests", code="rate_limit_exceeded",
            headers={"retry-after": f"{delay:g}"} if delay is not None else None,
        )
    kind = "server_error" if fault.code >= 500 else "invalid_request_error"
    return OpenAIError(fault.code, fault.message or "The server had an error.", kind=kind)


def _owner(request: Request, emulator: Emulator) -> str:
    header = request.headers.get("authorization", "")
    key = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if not key:
        raise OpenAIError(401, "You didn't provide an API key.", code="missing_api_key")
    if not emulator.config.accepts(key):
        raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return fingerprint(key)


# ---- rendering -----------------------------------------------------------------------


def file_json(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.size_bytes,
        "created_at": int(record.create_time),
        "expires_at": int(record.expiration_time),
        "filename": record.display_name or record.id,
        "purpose": record.purpose or "batch",
        "status": "processed",
        "status_details": None,
    }


def batch_json(emulator: Emulator, job: JobRecord, *, status: str | None = None) -> dict[str, Any]:
    manager = emulator.jobs
    shown = status or _STATUS[job.state]
    if shown == "completed" and not manager.output_visible(job):
        shown = "finalizing"
    if shown == "in_progress" and job.work_done:
        shown = "finalizing"
    succeeded, failed, _pending = manager.visible_counts(job)
    total = job.request_count
    body: dict[str, Any] = {
        "id": job.name,
        "object": "batch",
        "endpoint": job.endpoint,
        "errors": None,
        "input_file_id": job.input_file,
        "completion_window": job.completion_window,
        "status": shown,
        "output_file_id": None,
        "error_file_id": None,
        "created_at": int(job.create_time),
        "in_progress_at": int(job.running_start) if job.state != "PENDING" else None,
        "expires_at": int(job.create_time + emulator.config.job_expiry_seconds),
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": total, "completed": succeeded, "failed": failed},
        "metadata": job.metadata or None,
    }
    if shown in _TIME_FIELDS and job.end_time is not None:
        body[_TIME_FIELDS[shown]] = int(job.end_time)
    if shown == "completed":
        body["output_file_id"] = job.output_file
        body["error_file_id"] = job.error_file
    if shown == "failed":
        errors = job.validation_errors or [
            {"code": "batch_failed", "message": str((job.error or {}).get("message", "")),
             "param": None, "line": None}
        ]
        body["errors"] = {"object": "list", "data": errors}
    return body


# ---- multipart -----------------------------------------------------------------------


class _Part:
    """The multipart part being read: its field name, and where its bytes go."""

    def __init__(self, name: str, filename: str | None, sink: BinaryIO | None) -> None:
        self.name = name
        self.filename = filename
        self.sink = sink
        self.value = bytearray()


async def _multipart_upload(request: Request, emulator: Emulator, owner: str) -> FileRecord:
    """Parse ``multipart/form-data`` as it streams: the ``file`` part goes to disk (with a
    running sha256, size and line count), the small fields are kept in memory."""
    content_type = request.headers.get("content-type", "")
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or found is None:
        raise OpenAIError(400, "Expected multipart/form-data with a boundary.")
    delimiter = b"\r\n--" + found.group(1).encode()
    limit = emulator.config.openai_max_file_bytes
    new_id = f"file-{file_id()}"
    target = emulator.store.blob(new_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    fields: dict[str, bytes] = {}
    filename: str | None = None
    digest = hashlib.sha256()
    size = lines = 0
    last = b"\n"
    buffer = b"\r\n"  # so the first delimiter reads like every later one
    state = "preamble"  # preamble | after | headers | body | end
    part: _Part | None = None

    def take(data: bytes) -> None:
        nonlocal size, lines, last
        if not data or part is None:
            return
        if part.sink is None:
            part.value += data
            if len(part.value) > 4096:
                raise OpenAIError(400, f"Form field {part.name} is too long.")
            return
        size += len(data)
        if size > limit:
            raise OpenAIError(
                400, f"File is too large: the limit is {limit} bytes.", code="file_too_large"
            )
        part.sink.write(data)
        digest.update(data)
        lines += data.count(b"\n")
        last = data[-1:]

    try:
        async for chunk in request.stream():
            buffer += chunk
            while state != "end":
                if state in ("preamble", "body"):
                    cut = buffer.find(delimiter)
                    if cut < 0:
                        keep = max(0, len(buffer) - len(delimiter) + 1)
                        if state == "body":
                            take(buffer[:keep])
                        buffer = buffer[keep:]
                        break
                    if state == "body" and part is not None:
                        take(buffer[:cut])
                        if part.sink is not None:
                            part.sink.close()
                            filename = part.filename
                        else:
                            fields[part.name] = bytes(part.value)
                        part = None
                    buffer = buffer[cut + len(delimiter) :]
                    state = "after"
                elif state == "after":
                    if len(buffer) < 2:
                        break
                    state = "end" if buffer.startswith(b"--") else "headers"
                    buffer = buffer[2:]
                else:  # headers
                    cut = buffer.find(b"\r\n\r\n")
                    if cut < 0:
                        break
                    head = buffer[:cut].decode("utf-8", "replace")
                    buffer = buffer[cut + 4 :]
                    name = re.search(r'(?:^|[;\s])name="([^"]*)"', head)
                    given = re.search(r'filename="([^"]*)"', head)
                    field_name = name.group(1) if name else ""
                    if field_name == "file":
                        part = _Part("file", given.group(1) if given else "upload.jsonl",
                                     target.open("wb"))
                    else:
                        part = _Part(field_name, None, None)
                    state = "body"
        if state != "end":
            raise OpenAIError(400, "The multipart body ended early.")
    except BaseException:
        if part is not None and part.sink is not None:
            part.sink.close()
        target.unlink(missing_ok=True)
        raise
    if filename is None:
        target.unlink(missing_ok=True)
        raise OpenAIError(400, "Missing required parameter: 'file'.", param="file")
    purpose = fields.get("purpose", b"").decode()
    if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data", "evals"):
        target.unlink(missing_ok=True)
        raise OpenAIError(400, f"Invalid purpose: {purpose!r}.", param="purpose")
    now = emulator.clock.now()
    if size and last != b"\n":
        lines += 1
    return FileRecord(
        id=new_id, owner=owner, display_name=filename, mime_type="application/jsonl",
        size_bytes=size, sha256_hex=digest.hexdigest(), create_time=now, update_time=now,
        expiration_time=now + emulator.config.file_ttl_seconds, source="UPLOADED",
        line_count=lines, purpose=purpose,
    )


# ---- handlers ------------------------------------------------------------------------


def _query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return max(1, min(int(raw), maximum))
    except ValueError:
        raise OpenAIError(400, f"Invalid {name}: {raw!r}.", param=name) from None


def _page(
    items: list[Any], ids: list[str], request: Request, default: int, maximum: int
) -> dict[str, Any]:
    limit = _query_int(request, "limit", default, maximum)
    after = request.query_params.get("after")
    start = ids.index(after) + 1 if after in ids else 0
    shown = items[start : start + limit]
    shown_ids = ids[start : start + limit]
    return {
        "object": "list",
        "data": shown,
        "first_id": shown_ids[0] if shown_ids else None,
        "last_id": shown_ids[-1] if shown_ids else None,
        "has_more": start + limit < len(items),
    }


def _file(emulator: Emulator, owner: str, ident: str) -> FileRecord:
    record = emulator.live_file(ident, owner)
    if record is None or record.purpose is None:
        raise OpenAIError(404, f"No such File object: {ident}", param="id")
    return record


def _batch(emulator: Emulator, owner: str, ident: str) -> JobRecord:
    job = emulator.owned_job(ident.removeprefix("batch_"), owner)
    if job is None or job.api != "openai":
        raise OpenAIError(404, f"No batch found with id '{ident}'.", param="batch_id")
    return job


def _check_limits(emulator: Emulator, owner: str, model: str, tokens: int) -> None:
    config = emulator.config
    live = emulator.jobs.live_jobs(owner)
    delay = f"{config.quota_retry_delay_seconds:g}"
    if len(live) >= config.max_live_jobs_per_key:
        raise OpenAIError(
            429, f"Too many batches in progress: at most {config.max_live_jobs_per_key}.",
            kind="requests", code="rate_limit_exceeded", headers={"retry-after": delay},
        )
    budget = config.token_budget(model)
    if budget is not None:
        enqueued = sum(j.token_estimate for j in live if j.model == model)
        if enqueued + tokens > budget:
            raise OpenAIError(
                429, f"Enqueued token limit reached for {model}: limit {budget}, "
                f"{enqueued} enqueued, {tokens} requested.",
                kind="tokens", code="rate_limit_exceeded", headers={"retry-after": delay},
            )


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise OpenAIError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise OpenAIError(400, "The request body must be a JSON object.")
    return body


def _model_of(emulator: Emulator, record: FileRecord) -> str:
    """The model the first line's body names (the file's model, as the API requires)."""
    with emulator.store.blob(record.id).open("rb") as lines:
        for raw in lines:
            try:
                body = orjson.loads(raw).get("body") or {}
            except (orjson.JSONDecodeError, AttributeError):
                return ""
            return str(body.get("model") or "") if isinstance(body, dict) else ""
    return ""


async def create_batch(request: Request, emulator: Emulator, owner: str) -> Response:
    body = await _json_body(request)
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise OpenAIError(400, f"Invalid endpoint: {endpoint!r}.", param="endpoint")
    window = body.get("completion_window")
    if not isinstance(window, str) or not _WINDOW.match(window):
        raise OpenAIError(400, f"Invalid completion_window: {window!r}.", param="completion_window")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise OpenAIError(400, "metadata: at most 16 string pairs.", param="metadata")
    record = _file(emulator, owner, str(body.get("input_file_id")))
    if record.purpose != "batch":
        raise OpenAIError(400, "The input file must have purpose 'batch'.", param="input_file_id")
    model = _model_of(emulator, record)
    kind = ENDPOINTS[endpoint]
    tokens = record.size_bytes // 4
    _check_limits(emulator, owner, model, tokens)
    new_id = batch_id()
    display_name = str(metadata.get(DISPLAY_NAME_FIELD) or f"batch_{new_id}")
    effects = emulator.faults.job_effects(display_name, model, kind)
    config = emulator.config
    now = emulator.clock.now()
    job = JobRecord(
        id=new_id, owner=owner, kind=kind, model=model,
        display_name=display_name, create_time=now, update_time=now,
        pending_seconds=(
            effects.pending_seconds if effects.pending_seconds is not None
            else config.pending_seconds
        ),
        running_seconds=(
            effects.running_seconds if effects.running_seconds is not None
            else config.running_seconds
        ),
        input_file=record.id, request_count=record.line_count, token_estimate=tokens,
        effects=effects, api="openai", endpoint=endpoint, completion_window=window,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )
    maximum = config.openai_max_requests_per_batch
    if record.line_count > maximum:
        job.validation_errors = [{
            "code": "too_many_requests", "line": None, "param": None,
            "message": f"The batch has {record.line_count} requests; the limit is {maximum}.",
        }]
        job.state, job.end_time = "FAILED", now
        job.error = {"code": 3, "message": job.validation_errors[0]["message"]}
        emulator.store.save_job(job, create=True)
        return json_response(batch_json(emulator, job))
    emulator.store.save_job(job, create=True)
    created = batch_json(emulator, job, status="validating")
    emulator.jobs.start(job)
    return json_response(created)


async def handle(request: Request, emulator: Emulator) -> Response:
    """Route one ``/openai/v1/...`` call (auth, faults, counters as on the Gemini side)."""
    path = request.url.path.removeprefix(PREFIX).rstrip("/")
    method = request.method
    parts = path.strip("/").split("/")
    endpoint = _endpoint(method, parts)
    emulator.requests[endpoint] += 1
    try:
        if endpoint == "openai.unknown":
            raise OpenAIError(404, f"Unknown request URL: {method} {request.url.path}.")
        owner = _owner(request, emulator)
        delay = emulator.faults.latency(endpoint, method)
        if delay:
            await asyncio.sleep(delay)
        fault = emulator.faults.http_fault(endpoint, method)
        if fault is not None and not fault.apply_after:
            raise _fault_error(fault)
        response = await _answer(endpoint, parts, request, emulator, owner)
        if fault is not None:
            raise _fault_error(fault)
    except OpenAIError as error:
        response = error.response()
    except ClientDisconnect:
        response = Response(b"", status_code=499)
    emulator.responses[f"{endpoint} {response.status_code}"] += 1
    return response


def _endpoint(method: str, parts: list[str]) -> str:
    table = {
        ("POST", "files", 1): "openai.files.upload",
        ("GET", "files", 1): "openai.files.list",
        ("GET", "files", 2): "openai.files.get",
        ("DELETE", "files", 2): "openai.files.delete",
        ("POST", "batches", 1): "openai.batches.create",
        ("GET", "batches", 1): "openai.batches.list",
        ("GET", "batches", 2): "openai.batches.get",
    }
    if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" and method == "GET":
        return "openai.files.content"
    if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" and method == "POST":
        return "openai.batches.cancel"
    return table.get((method, parts[0], len(parts)), "openai.unknown")


async def _answer(
    endpoint: str, parts: list[str], request: Request, emulator: Emulator, owner: str
) -> Response:
    store = emulator.store
    if endpoint == "openai.files.upload":
        record = await _multipart_upload(request, emulator, owner)
        store.save_file(record)
        return json_response(file_json(record))
    if endpoint == "openai.files.list":
        purpose = request.query_params.get("purpose")
        now = emulator.clock.now()
        files = sorted(
            (
                f for f in list(store.files.values())
                if f.owner == owner and f.purpose is not None and f.expiration_time > now
                and (purpose is None or f.purpose == purpose)
            ),
            key=lambda f: (f.create_time, f.id),
            reverse=request.query_params.get("order", "desc") == "desc",
        )
        return json_response(
            _page([file_json(f) for f in files], [f.id for f in files], request, 10_000, 10_000)
        )
    if endpoint == "openai.files.get":
        return json_response(file_json(_file(emulator, owner, parts[1])))
    if endpoint == "openai.files.delete":
        record = _file(emulator, owner, parts[1])
        store.delete_file(record.id)
        return json_response({"id": record.id, "object": "file", "deleted": True})
    if endpoint == "openai.files.content":
        record = _file(emulator, owner, parts[1])
        return FileResponse(store.blob(record.id), media_type="application/octet-stream")
    if endpoint == "openai.batches.create":
        return await create_batch(request, emulator, owner)
    if endpoint == "openai.batches.list":
        mine = [j for j in list(store.jobs.values()) if j.owner == owner and j.api == "openai"]
        for job in mine:
            emulator.jobs.refresh(job)
        mine.sort(key=lambda j: (j.create_time, j.id), reverse=True)
        rendered = [batch_json(emulator, j) for j in mine]
        return json_response(_page(rendered, [j.name for j in mine], request, 20, 100))
    if endpoint == "openai.batches.get":
        return json_response(batch_json(emulator, _batch(emulator, owner, parts[1])))
    job = _batch(emulator, owner, parts[1])  # openai.batches.cancel
    live = job.live
    emulator.jobs.cancel(job)
    return json_response(batch_json(emulator, job, status="cancelling" if live else None))
