"""The admin API under ``/_emulator/`` (no key needed; for tests, demos and operators).

=======  =============================  =====================================================
GET      /_emulator/health              ``{"ok": true, "now": <emulated time>, "dataDir": ...}``
GET      /_emulator/faults              the fault settings in force
PUT      /_emulator/faults              replace them (body: a FaultConfig); counters restart
POST     /_emulator/reset               forget all files, uploads, jobs, counters; start-up faults
GET      /_emulator/jobs                every job of every key: name, displayName, key
                                        fingerprint, model, kind, state, request counts
GET      /_emulator/files               every file of every key (with key fingerprint)
GET      /_emulator/uploads             every upload session (offset, declared size, state)
GET      /_emulator/clock               ``{"now": ..., "timestamp": ..., "timeScale": ...}``
POST     /_emulator/clock/advance       ``?seconds=N``: jump the emulated clock N seconds ahead
GET      /_emulator/stats               request counts per endpoint, and per endpoint+status
=======  =============================  =====================================================
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from emulator.calls import json_response, read_body
from emulator.clock import rfc3339
from emulator.errors import ApiError, bad_request, not_found
from emulator.faults import FaultConfig
from emulator.state import Emulator

_FAULTS_BODY_LIMIT = 1 << 20


def _clock(emulator: Emulator) -> dict[str, Any]:
    now = emulator.clock.now()
    return {"now": rfc3339(now), "timestamp": now, "timeScale": emulator.config.time_scale}


def _jobs(emulator: Emulator) -> dict[str, Any]:
    rows = []
    for job in sorted(list(emulator.store.jobs.values()), key=lambda j: j.create_time):
        emulator.jobs.refresh(job)
        succeeded, failed, pending = emulator.jobs.visible_counts(job)
        rows.append(
            {
                "name": job.name,
                "displayName": job.display_name,
                "keyFingerprint": job.owner,
                "model": job.model,
                "kind": job.kind,
                "state": f"BATCH_STATE_{job.state}",
                "inputFile": f"files/{job.input_file}" if job.input_file else None,
                "outputFile": f"files/{job.output_file}" if job.output_file else None,
                "requestCount": job.request_count,
                "successfulRequestCount": succeeded,
                "failedRequestCount": failed,
                "pendingRequestCount": pending,
                "processedRequestCount": job.processed,
                "tokenEstimate": job.token_estimate,
                "createTime": rfc3339(job.create_time),
                "endTime": rfc3339(job.end_time) if job.end_time is not None else None,
                "effects": job.effects.model_dump(exclude_defaults=True),
            }
        )
    return {"jobs": rows}


def _files(emulator: Emulator) -> dict[str, Any]:
    rows = [
        {
            "name": f"files/{f.id}",
            "displayName": f.display_name,
            "keyFingerprint": f.owner,
            "source": f.source,
            "sizeBytes": f.size_bytes,
            "sha256": f.sha256_hex,
            "lineCount": f.line_count,
            "createTime": rfc3339(f.create_time),
            "expirationTime": rfc3339(f.expiration_time),
        }
        for f in sorted(list(emulator.store.files.values()), key=lambda f: f.create_time)
    ]
    return {"files": rows}


def _uploads(emulator: Emulator) -> dict[str, Any]:
    rows = [
        {
            "uploadId": u.id,
            "file": f"files/{u.file_id}",
            "keyFingerprint": u.owner,
            "state": u.state,
            "received": u.received,
            "declaredSize": u.declared_size,
        }
        for u in list(emulator.store.uploads.values())
    ]
    return {"uploads": rows}


def _stats(emulator: Emulator) -> dict[str, Any]:
    return {"requests": dict(emulator.requests), "responses": dict(emulator.responses)}


async def handle(request: Request, emulator: Emulator) -> Response:
    """Serve one admin call; errors use the same envelope as the API."""
    path = request.url.path.removeprefix("/_emulator").rstrip("/")
    method = request.method
    try:
        if method == "GET":
            getters = {
                "/health": lambda e: {
                    "ok": True,
                    "now": rfc3339(e.clock.now()),
                    "dataDir": str(e.store.root),
                },
                "/faults": lambda e: e.faults.config.model_dump(mode="json"),
                "/jobs": _jobs,
                "/files": _files,
                "/uploads": _uploads,
                "/clock": _clock,
                "/stats": _stats,
            }
            if path in getters:
                return json_response(getters[path](emulator))
        elif method == "PUT" and path == "/faults":
            raw = await read_body(request, _FAULTS_BODY_LIMIT)
            try:
                config = FaultConfig.model_validate(orjson.loads(raw or b"{}"))
            except (ValidationError, orjson.JSONDecodeError) as exc:
                raise bad_request(f"Invalid fault settings: {exc}") from None
            emulator.faults.replace(config)
            return json_response(config.model_dump(mode="json"))
        elif method == "POST" and path == "/reset":
            emulator.reset()
            return json_response({})
        elif method == "POST" and path == "/clock/advance":
            try:
                seconds = float(request.query_params.get("seconds", "0"))
            except ValueError:
                raise bad_request("seconds must be a number.") from None
            if seconds < 0:
                raise bad_request("The clock only moves forward.")
            emulator.clock.advance(seconds)
            emulator.sweep()
            return json_response(_clock(emulator))
        raise not_found(f"No admin route {method} {request.url.path}.")
    except ApiError as error:
        return json_response(error.body(), error.code)
