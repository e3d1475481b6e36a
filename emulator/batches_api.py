"""Batch API methods: create (generate, embed), get, list, cancel, delete.

Limits checked at create, as the live API does (429 RESOURCE_EXHAUSTED with RetryInfo):
concurrent live jobs per project, and tokens enqueued per project and model (estimated at 4 chars a
token from an inline request's text; from ``sizeBytes / 4`` for an input file, which is what
the create call can know without reading 2 GB).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from starlette.responses import Response

from emulator.calls import Call, json_response, paginate, read_body
from emulator.errors import bad_request, not_found, quota_exhausted
from emulator.model import estimate_tokens, request_chars
from emulator.processing import INLINE_INPUT
from emulator.records import JobRecord
from emulator.render import operation_json
from emulator.store import write_atomic
from emulator.wire import batch_id, field, parse_body

BATCHES_PAGE_DEFAULT = 50
BATCHES_PAGE_MAX = 1000


def _check_limits(call: Call, model: str, tokens: int) -> None:
    emulator = call.emulator
    config = emulator.config
    live = emulator.jobs.live_jobs(call.owner)
    if len(live) >= config.max_live_jobs_per_key:
        raise quota_exhausted(
            f"Quota exceeded: at most {config.max_live_jobs_per_key} concurrent batch jobs.",
            retry_delay_seconds=config.quota_retry_delay_seconds,
            quota_metric="generativelanguage.googleapis.com/batch_concurrent_requests",
            quota_id="BatchConcurrentRequestsPerProject",
            retry_after_header=config.quota_retry_after_header,
        )
    budget = config.token_budget(model)
    if budget is not None:
        enqueued = sum(j.token_estimate for j in live if j.model == model)
        if enqueued + tokens > budget:
            raise quota_exhausted(
                f"Quota exceeded for metric: batch enqueued tokens, limit: {budget}, "
                f"model: {model.removeprefix('models/')} ({enqueued} enqueued, "
                f"{tokens} requested).",
                retry_delay_seconds=config.quota_retry_delay_seconds,
                quota_metric="generativelanguage.googleapis.com/batch_enqueued_tokens",
                quota_id="BatchEnqueuedTokensPerModelPerProject",
                model=model.removeprefix("models/"),
                retry_after_header=config.quota_retry_after_header,
            )


async def _create(call: Call, kind: Literal["generate", "embed"]) -> Response:
    emulator = call.emulator
    config = emulator.config
    body: Any = parse_body(await read_body(call.request, config.max_inline_request_bytes))
    batch = field(body, "batch")
    if not isinstance(batch, dict):
        raise bad_request("Missing required field: batch.")
    model = call.params["model"]
    input_config = field(batch, "inputConfig")
    if not isinstance(input_config, dict):
        raise bad_request("Missing required field: batch.input_config.")
    file_name = field(input_config, "fileName")
    requests_box = field(input_config, "requests")
    requests = field(requests_box, "requests") if isinstance(requests_box, dict) else None
    input_file: str | None = None
    if file_name:
        file_id = str(file_name).removeprefix("files/")
        record = emulator.live_file(file_id, call.owner)
        if record is None:
            raise not_found(f"File files/{file_id} not found.")
        input_file, count, tokens = record.id, record.line_count, record.size_bytes // 4
    elif isinstance(requests, list) and requests:
        count = len(requests)
        tokens = 0
        for item in requests:
            request = field(item, "request", item) if isinstance(item, dict) else item
            if isinstance(request, dict):
                tokens += estimate_tokens(request_chars(request, kind))
    else:
        raise bad_request(
            "batch.input_config must name a file (file_name) or hold requests.requests."
        )
    _check_limits(call, model, tokens)
    display_name = str(field(batch, "displayName") or "")
    effects = emulator.faults.job_effects(display_name, model, kind)
    now = emulator.clock.now()
    job = JobRecord(
        id=batch_id(),
        owner=call.owner,
        kind=kind,
        model=model,
        display_name=display_name,
        create_time=now,
        update_time=now,
        pending_seconds=(
            effects.pending_seconds
            if effects.pending_seconds is not None
            else config.pending_seconds
        ),
        running_seconds=(
            effects.running_seconds
            if effects.running_seconds is not None
            else config.running_seconds
        ),
        input_file=input_file,
        request_count=count,
        token_estimate=tokens,
        effects=effects,
    )
    if input_file is None:
        write_atomic(emulator.store.work_dir(job.id) / INLINE_INPUT, orjson.dumps(requests))
    emulator.store.save_job(job, create=True)
    created = operation_json(emulator.jobs, job, refresh=False)
    emulator.jobs.start(job)
    return json_response(created)


async def create_generate(call: Call) -> Response:
    return await _create(call, "generate")


async def create_embed(call: Call) -> Response:
    return await _create(call, "embed")


def _job(call: Call) -> JobRecord:
    job = call.emulator.owned_job(call.params["id"], call.owner)
    if job is None:
        raise not_found(f"Batch batches/{call.params['id']} not found.")
    return job


async def get_batch(call: Call) -> Response:
    return json_response(operation_json(call.emulator.jobs, _job(call)))


async def list_batches(call: Call) -> Response:
    mine = [j for j in list(call.emulator.store.jobs.values()) if j.owner == call.owner]
    shown, token = paginate(
        mine,
        lambda j: (j.create_time, j.id),
        call,
        default=BATCHES_PAGE_DEFAULT,
        maximum=BATCHES_PAGE_MAX,
    )
    body: dict[str, object] = {}
    if shown:
        body["operations"] = [operation_json(call.emulator.jobs, j) for j in shown]
    if token:
        body["nextPageToken"] = token
    return json_response(body)


async def cancel_batch(call: Call) -> Response:
    """Live jobs end CANCELLED; cancelling a finished job is a no-op (both answer 200 {})."""
    call.emulator.jobs.cancel(_job(call))
    return json_response({})


async def delete_batch(call: Call) -> Response:
    """Forget the job and stop its work; its output file, if any, stays."""
    job = _job(call)
    call.emulator.jobs.stop_work(job.id)
    call.emulator.store.delete_job(job.id)
    call.emulator.store.remove_work(job.id)
    return json_response({})
