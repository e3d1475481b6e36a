"""Pydantic models of what the Gemini File and Batch APIs send back.

Wire JSON is camelCase (proto JSON); fields are snake_case here and populate from either.
Unknown fields are ignored, so a new provider field never breaks parsing. int64 values come
as strings on the wire (``"sizeBytes": "889389"``) and are ints here.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.run.states import BatchState


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, populate by name, extra ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class Status(WireModel):
    """A ``google.rpc.Status``: the error of a job, a file or one request."""

    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[Any] = Field(default_factory=list)


class File(WireModel):
    """A Files API resource (``files/<id>``), kept 48 h by the provider."""

    name: str
    display_name: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    expiration_time: datetime | None = None
    sha256_hash: str | None = Field(
        default=None, description="base64 of the ASCII hex sha256 digest, as the provider sends it"
    )
    uri: str | None = None
    download_uri: str | None = None
    state: str | None = Field(default=None, description="PROCESSING, ACTIVE or FAILED")
    source: str | None = Field(default=None, description="UPLOADED or GENERATED")
    error: Status | None = None

    @property
    def sha256_hex(self) -> str | None:
        """The hex sha256 digest, decoded from ``sha256_hash`` (None when absent or odd)."""
        if not self.sha256_hash:
            return None
        try:
            decoded = base64.b64decode(self.sha256_hash, validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.lower()


class UploadState(StrEnum):
    """``X-Goog-Upload-Status`` values."""

    ACTIVE = "active"
    FINAL = "final"
    CANCELLED = "cancelled"


class UploadStatus(WireModel):
    """The answer to an upload ``query`` (or a chunk): state and committed byte count."""

    url: str
    status: UploadState
    size_received: int | None = None
    file: File | None = None


def parse_batch_state(value: object) -> BatchState:
    """Either spelling of a job state (``BATCH_STATE_*`` on the wire, ``JOB_STATE_*`` in the
    SDK and docs); an unknown state reads as UNSPECIFIED (live: keep polling)."""
    if isinstance(value, BatchState):
        return value
    text = str(value or "").upper()
    if text.startswith("JOB_STATE_"):
        text = "BATCH_STATE_" + text.removeprefix("JOB_STATE_")
    elif not text.startswith("BATCH_STATE_"):
        text = "BATCH_STATE_" + text
    try:
        return BatchState(text)
    except ValueError:
        return BatchState.UNSPECIFIED


class BatchStats(WireModel):
    """Request counts of a job; the wire omits zero counts and sends int64 strings."""

    request_count: int = 0
    successful_request_count: int = 0
    failed_request_count: int = 0
    pending_request_count: int = 0


def _flatten_operation(op: dict[str, Any]) -> dict[str, Any]:
    """Lift the Operation's ``metadata`` and output into one flat mapping."""
    metadata: dict[str, Any] = dict(op.get("metadata") or {})
    output: dict[str, Any] = {}
    for source in (op.get("response"), metadata.get("output")):
        if isinstance(source, dict):
            output = {**source, **output}
    inlined = output.get("inlinedResponses") or output.get("inlined_responses")
    if isinstance(inlined, dict):
        inlined = inlined.get("inlinedResponses") or inlined.get("inlined_responses")
    if inlined is None:
        embed = output.get("inlinedEmbedContentResponses")
        if isinstance(embed, dict):
            embed = embed.get("inlinedResponses") or embed.get("inlinedEmbedContentResponses")
        inlined = embed
    input_config = metadata.get("inputConfig") or metadata.get("input_config")
    if not isinstance(input_config, dict):
        input_config = {}
    return {
        **metadata,
        "name": op.get("name") or metadata.get("name"),
        "done": bool(op.get("done", False)),
        "error": op.get("error") or metadata.get("error"),
        "responses_file": output.get("responsesFile") or output.get("responses_file"),
        "inlined_responses": inlined,
        "input_file": input_config.get("fileName") or input_config.get("file_name"),
    }


class BatchJob(WireModel):
    """A batch job, read from the long-running Operation the Batch API returns.

    Build it with ``BatchJob.model_validate(operation_json)``: the Operation's ``metadata``
    (state, stats, times), its ``response`` or ``metadata.output`` (the results) and its
    top-level ``error`` are flattened into one model.
    """

    name: str
    display_name: str | None = None
    model: str | None = None
    state: BatchState = BatchState.UNSPECIFIED
    create_time: datetime | None = None
    update_time: datetime | None = None
    end_time: datetime | None = None
    batch_stats: BatchStats = Field(default_factory=BatchStats)
    input_file: str | None = None
    responses_file: str | None = None
    inlined_responses: list[Any] | None = None
    error: Status | None = None
    done: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_operation(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("metadata" in data or "response" in data):
            return _flatten_operation(data)
        return data

    @field_validator("state", mode="before")
    @classmethod
    def _either_spelling(cls, value: object) -> BatchState:
        return parse_batch_state(value)

    @property
    def has_output(self) -> bool:
        """True once a responses file or the inlined responses are attached."""
        return self.responses_file is not None or self.inlined_responses is not None

    @property
    def is_terminal(self) -> bool:
        """Finished for good. SUCCEEDED counts only once its output is attached: the live API
        has been seen to report success before the responses file exists (reference §10.1)."""
        if self.state is BatchState.SUCCEEDED:
            return self.has_output
        return self.state.terminal

    @property
    def is_live(self) -> bool:
        """Still worth polling (pending, running, or succeeded without output yet)."""
        return not self.is_terminal
