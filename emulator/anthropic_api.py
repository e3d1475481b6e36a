"""Anthropic Message Batches, served under ``/anthropic`` (base URL
``http://HOST:PORT/anthropic`` for the ``anthropic`` SDK and ``SHARDLINE_ANTHROPIC_BASE_URL``)::

    POST   /anthropic/v1/messages/batches               create (``requests`` inline)
    GET    /anthropic/v1/messages/batches               list (``limit``, ``after_id``)
    GET    /anthropic/v1/messages/batches/{id}          retrieve
    POST   /anthropic/v1/messages/batches/{id}/cancel   cancel
    DELETE /anthropic/v1/messages/batches/{id}          delete (ended batches only)
    GET    /anthropic/v1/messages/batches/{id}/results  results (JSONL, once ended)

Auth: ``x-api-key`` or ``Authorization: Bearer`` (the same keys) and ``anthropic-version``.
Errors use Anthropic's envelope ``{"type":"error","error":{"type","message"}}``; a 429
carries ``retry-after``. Batches share the lifecycle and the fault switches (endpoint ids
``anthropic.batches.*``; a batch has no name, so job rules select by its id): per-request
errors become ``errored`` results, a failed job ``errored`` results for every request, an
expired one ``expired``, a cancelled one ``canceled``. Limits: 100,000 requests and 256 MB a
create body (413 past it); live batches and enqueued tokens per key. The create body is held
in memory while it is parsed (the emulator's one exception to flat memory; the limit bounds
it).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from emulator.calls import json_response
from emulator.clock import rfc3339
from emulator.faults import HttpFault
from emulator.processing import anthropic_error_type
from emulator.records import JobRecord
from emulator.state import Emulator, fingerprint
from emulator.wire import batch_id

PREFIX = "/anthropic/v1/messages/batches"
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_LINES_PER_CHUNK = 512


class AnthropicError(Exception):
    def __init__(self, status: int, kind: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {"type": "error", "error": {"type": self.kind, "message": self.message}}
        return json_response(body, self.status, self.headers)


def _invalid(message: str) -> AnthropicError:
    return AnthropicError(400, "invalid_request_error", message)


def _fault_error(fault: HttpFault) -> AnthropicError:
    headers = None
    if fault.code == 429 and fault.retry_delay_seconds is not None:
        headers = {"retry-after": f"{fault.retry_delay_seconds:g}"}
    kind = anthropic_error_type(fault.code)
    return AnthropicError(fault.code, kind, fault.message or f"Emulated {kind}.", headers)


def _owner(request: Request, emulator: Emulator) -> str:
    key = request.headers.get("x-api-key", "")
    bearer = request.headers.get("authorization", "")
    if not key and bearer.startswith("Bearer "):
        key = bearer.removeprefix("Bearer ").strip()  # newer SDKs send the key this way
    if not key:
        raise AnthropicError(401, "authentication_error", "x-api-key header is required")
    if not emulator.config.accepts(key):
        raise AnthropicError(401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        raise _invalid("anthropic-version: header is required")
    return fingerprint(key)


# ---- rendering -----------------------------------------------------------------------


def _ended(emulator: Emulator, job: JobRecord) -> bool:
    if job.state == "SUCCEEDED":
        return emulator.jobs.output_visible(job)
    return not job.live


def batch_json(emulator: Emulator, job: JobRecord, base: str, *,
               canceling: bool = False) -> dict[str, Any]:
    total = job.request_count
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    ended = _ended(emulator, job)
    if not ended:
        counts["processing"] = total
    elif job.state == "SUCCEEDED":
        counts["succeeded"], counts["errored"] = job.processed - job.failed, job.failed
    else:
        which = {"CANCELLED": "canceled", "EXPIRED": "expired"}.get(job.state, "errored")
        counts[which] = total
    status = "canceling" if canceling else ("ended" if ended else "in_progress")
    return {
        "id": job.name,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": rfc3339(job.end_time) if ended and job.end_time is not None else None,
        "created_at": rfc3339(job.create_time),
        "expires_at": rfc3339(job.create_time + emulator.config.job_expiry_seconds),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(job.end_time)
        if job.state == "CANCELLED" and job.end_time is not None else None,
        "results_url": f"{base}{PREFIX}/{job.name}/results" if ended else None,
    }


# ---- handlers ------------------------------------------------------------------------


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = AnthropicError(413, "request_too_large", f"Request exceeds {limit} bytes.")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _check_limits(emulator: Emulator, owner: str, model: str, tokens: int) -> None:
    config = emulator.config
    live = emulator.jobs.live_jobs(owner)
    headers = {"retry-after": f"{config.quota_retry_delay_seconds:g}"}
    if len(live) >= config.max_live_jobs_per_key:
        raise AnthropicError(429, "rate_limit_error", "Too many message batches in progress.",
                             headers)
    budget = config.token_budget(model)
    if budget is not None:
        enqueued = sum(j.token_estimate for j in live if j.model == model)
        if enqueued + tokens > budget:
            raise AnthropicError(429, "rate_limit_error",
                                 f"Batch queue limit for {model}: {enqueued} of {budget} "
                                 f"tokens enqueued, {tokens} more asked.", headers)


async def _create(request: Request, emulator: Emulator, owner: str) -> Response:
    config = emulator.config
    raw = await _read_limited(request, config.anthropic_max_body_bytes)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("The request body is not valid JSON.") from None
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise _invalid("requests: a non-empty list is required")
    if len(requests) > config.anthropic_max_requests_per_batch:
        raise _invalid(f"requests: at most {config.anthropic_max_requests_per_batch} allowed")
    seen: set[str] = set()
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise _invalid(f"requests.{index}.custom_id: 1-64 letters, digits, _ or -")
        if custom_id in seen:
            raise _invalid(f"requests.{index}.custom_id: {custom_id!r} is not unique")
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            raise _invalid(f"requests.{index}.params: an object is required")
    model = str(requests[0]["params"].get("model") or "")
    tokens = len(raw) // 4
    _check_limits(emulator, owner, model, tokens)
    new_id = batch_id()
    effects = emulator.faults.job_effects(f"msgbatch_{new_id}", model, "generate")
    input_id = f"anthropic-in-{new_id}"
    path = emulator.store.blob(input_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for item in requests:
            out.write(orjson.dumps({"custom_id": item["custom_id"], "params": item["params"]}))
            out.write(b"\n")
    now = emulator.clock.now()
    job = JobRecord(
        id=new_id, owner=owner, kind="generate", model=model, display_name=f"msgbatch_{new_id}",
        create_time=now, update_time=now,
        pending_seconds=effects.pending_seconds if effects.pending_seconds is not None
        else config.pending_seconds,
        running_seconds=effects.running_seconds if effects.running_seconds is not None
        else config.running_seconds,
        input_file=input_id, request_count=len(requests), token_estimate=tokens,
        effects=effects, api="anthropic",
    )
    emulator.store.save_job(job, create=True)
    created = batch_json(emulator, job, _base(request))
    emulator.jobs.start(job)
    return json_response(created)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1')}"


def _job(emulator: Emulator, owner: str, ident: str) -> JobRecord:
    job = emulator.owned_job(ident.removeprefix("msgbatch_"), owner)
    if job is None or job.api != "anthropic":
        raise AnthropicError(404, "not_found_error", f"No message batch {ident}.")
    return job


def _synthetic(emulator: Emulator, job: JobRecord) -> Iterator[bytes]:
    """Results of a batch that ran nothing: one line per request, all of one type."""
    kind = {"CANCELLED": "canceled", "EXPIRED": "expired"}.get(job.state, "errored")
    assert job.input_file is not None
    with emulator.store.blob(job.input_file).open("rb") as lines:
        batch: list[bytes] = []
        for raw in lines:
            result: dict[str, Any] = {"type": kind}
            if kind == "errored":
                message = str((job.error or {}).get("message") or "internal error")
                result["error"] = {"type": "error",
                                   "error": {"type": "api_error", "message": message}}
            custom_id = orjson.loads(raw)["custom_id"]
            batch.append(orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n")
            if len(batch) >= _LINES_PER_CHUNK:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)


def _endpoint(method: str, parts: list[str]) -> str:
    if not parts:
        return {"POST": "anthropic.batches.create", "GET": "anthropic.batches.list"}.get(
            method, "anthropic.unknown")
    if len(parts) == 1:
        return {"GET": "anthropic.batches.get", "DELETE": "anthropic.batches.delete"}.get(
            method, "anthropic.unknown")
    if len(parts) == 2 and parts[1] == "cancel" and method == "POST":
        return "anthropic.batches.cancel"
    if len(parts) == 2 and parts[1] == "results" and method == "GET":
        return "anthropic.batches.results"
    return "anthropic.unknown"


async def handle(request: Request, emulator: Emulator) -> Response:
    path = request.url.path
    parts = [p for p in path.removeprefix(PREFIX).split("/") if p] if path.startswith(
        PREFIX) else ["?", "?", "?"]
    method = request.method
    endpoint = _endpoint(method, parts)
    emulator.requests[endpoint] += 1
    try:
        if endpoint == "anthropic.unknown":
            raise AnthropicError(404, "not_found_error", f"Not found: {method} {path}")
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
    except AnthropicError as error:
        response = error.response()
    except ClientDisconnect:
        response = Response(b"", status_code=499)
    emulator.responses[f"{endpoint} {response.status_code}"] += 1
    return response


async def _answer(endpoint: str, parts: list[str], request: Request, emulator: Emulator,
                  owner: str) -> Response:
    base = _base(request)
    if endpoint == "anthropic.batches.create":
        return await _create(request, emulator, owner)
    if endpoint == "anthropic.batches.list":
        mine = [j for j in list(emulator.store.jobs.values())
                if j.owner == owner and j.api == "anthropic"]
        for job in mine:
            emulator.jobs.refresh(job)
        mine.sort(key=lambda j: (j.create_time, j.id), reverse=True)
        ids = [j.name for j in mine]
        after = request.query_params.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        try:
            limit = max(1, min(int(request.query_params.get("limit", "20")), 1000))
        except ValueError:
            raise _invalid("limit: an integer is required") from None
        shown = mine[start : start + limit]
        return json_response({
            "data": [batch_json(emulator, j, base) for j in shown],
            "has_more": start + limit < len(mine),
            "first_id": shown[0].name if shown else None,
            "last_id": shown[-1].name if shown else None,
        })
    job = _job(emulator, owner, parts[0])
    if endpoint == "anthropic.batches.get":
        return json_response(batch_json(emulator, job, base))
    if endpoint == "anthropic.batches.cancel":
        live = job.live
        emulator.jobs.cancel(job)
        return json_response(batch_json(emulator, job, base, canceling=live))
    if endpoint == "anthropic.batches.delete":
        if not _ended(emulator, job):
            raise _invalid(f"Batch {job.name} is still in progress: cancel it first.")
        emulator.jobs.stop_work(job.id)
        emulator.store.delete_job(job.id)
        emulator.store.remove_work(job.id)
        for blob in (job.input_file, job.output_file):
            if blob is not None:
                emulator.store.blob(blob).unlink(missing_ok=True)
        return json_response({"id": job.name, "type": "message_batch_deleted"})
    # anthropic.batches.results
    if not _ended(emulator, job):
        raise _invalid(f"Batch {job.name} is still in progress: no results yet.")
    if job.state == "SUCCEEDED" and job.output_file is not None:
        return FileResponse(emulator.store.blob(job.output_file),
                            media_type="application/binary")
    return StreamingResponse(_synthetic(emulator, job), media_type="application/binary")
