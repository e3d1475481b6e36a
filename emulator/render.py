"""Records rendered as the wire JSON of the live API (reference sections 1.3 and 2.3)."""

from __future__ import annotations

import base64
from typing import Any

from emulator.clock import rfc3339
from emulator.jobs import JobManager
from emulator.processing import read_inline_output
from emulator.records import FileRecord, JobRecord
from emulator.wire import int64

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_BATCH_TYPE = {"generate": "GenerateContentBatch", "embed": "EmbedContentBatch"}


def file_json(record: FileRecord, base: str, version: str) -> dict[str, Any]:
    """A File resource: camelCase, ``sizeBytes`` as a string, sha256 as base64 of the hex."""
    body: dict[str, Any] = {"name": f"files/{record.id}"}
    if record.display_name:
        body["displayName"] = record.display_name
    body.update(
        {
            "mimeType": record.mime_type,
            "sizeBytes": int64(record.size_bytes),
            "createTime": rfc3339(record.create_time),
            "updateTime": rfc3339(record.update_time),
            "expirationTime": rfc3339(record.expiration_time),
            "sha256Hash": base64.b64encode(record.sha256_hex.encode("ascii")).decode(),
            "uri": f"{base}/{version}/files/{record.id}",
            "state": "ACTIVE",
            "source": record.source,
        }
    )
    if record.source == "GENERATED":
        body["downloadUri"] = f"{base}/download/{version}/files/{record.id}:download?alt=media"
    return body


def _stats(manager: JobManager, job: JobRecord) -> dict[str, str]:
    succeeded, failed, pending = manager.visible_counts(job)
    stats = {
        "requestCount": job.request_count,
        "successfulRequestCount": succeeded,
        "failedRequestCount": failed,
        "pendingRequestCount": pending,
    }
    return {name: int64(value) for name, value in stats.items() if value}


def operation_json(manager: JobManager, job: JobRecord, *, refresh: bool = True) -> dict[str, Any]:
    """The Operation of a batch: ``done`` omitted while live, ``response`` once it is out.

    ``refresh=False`` renders the job as it was created (the create call always answers
    PENDING, however fast the clock runs).
    """
    if refresh:
        manager.refresh(job)
    metadata: dict[str, Any] = {
        "@type": _TYPE + _BATCH_TYPE[job.kind],
        "model": job.model,
        "displayName": job.display_name,
        "createTime": rfc3339(job.create_time),
        "updateTime": rfc3339(job.update_time),
        "batchStats": _stats(manager, job),
        "state": f"BATCH_STATE_{job.state}",
        "name": job.name,
    }
    if job.input_file is not None:
        metadata["inputConfig"] = {"fileName": f"files/{job.input_file}"}
    if job.end_time is not None:
        metadata["endTime"] = rfc3339(job.end_time)
    operation: dict[str, Any] = {"name": job.name, "metadata": metadata}
    if job.live:
        return operation
    operation["done"] = True
    if manager.output_visible(job):
        output: dict[str, Any]
        if job.inline:
            answers = read_inline_output(manager.store, job.id)
            output = {"inlinedResponses": {"inlinedResponses": answers}}
        else:
            output = {"responsesFile": f"files/{job.output_file}"}
        metadata["output"] = output
        operation["response"] = {"@type": _TYPE + _BATCH_TYPE[job.kind] + "Output", **output}
    elif job.error is not None:
        operation["error"] = job.error
    return operation
