"""What the emulator remembers about files, upload sessions and jobs (persisted as JSON).

Times are emulated UNIX seconds. ``owner`` is a fingerprint of the API key, or ``project:<name>``
when the key is grouped into a project (:func:`emulator.state.owner_of`); never the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from emulator.faults import JobEffects

JobState = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"]
LIVE_STATES: frozenset[str] = frozenset({"PENDING", "RUNNING"})


class FileRecord(BaseModel):
    """One file of the Files API (uploaded, or a batch's generated output)."""

    id: str
    owner: str
    display_name: str | None = None
    mime_type: str = "application/octet-stream"
    size_bytes: int = 0
    sha256_hex: str = ""
    create_time: float
    update_time: float
    expiration_time: float
    source: Literal["UPLOADED", "GENERATED"] = "UPLOADED"
    line_count: int = Field(default=0, description="Lines in the bytes; a batch's request count.")
    #: OpenAI-style files only: ``batch`` (uploaded) or ``batch_output`` (generated).
    purpose: str | None = None


class UploadRecord(BaseModel):
    """A resumable upload session; ``received`` bytes are on disk."""

    id: str
    owner: str
    file_id: str
    display_name: str | None = None
    mime_type: str = "application/octet-stream"
    declared_size: int | None = None
    received: int = 0
    state: Literal["active", "final", "cancelled"] = "active"
    create_time: float


class JobRecord(BaseModel):
    """A batch job; its visible state is derived from these times and the work's progress."""

    id: str
    owner: str
    kind: Literal["generate", "embed"]
    model: str
    display_name: str = ""
    create_time: float
    update_time: float
    end_time: float | None = None
    state: JobState = "PENDING"
    pending_seconds: float
    running_seconds: float
    input_file: str | None = None
    request_count: int = 0
    token_estimate: int = 0
    effects: JobEffects = Field(default_factory=JobEffects)
    error: dict[str, object] | None = None
    # Progress of the background work (written by the worker thread).
    processed: int = 0
    failed: int = 0
    work_done: bool = False
    work_done_at: float | None = None
    output_file: str | None = None
    # OpenAI-style batches (``api == "openai"``): their own fields.
    api: Literal["gemini", "openai", "anthropic"] = "gemini"
    endpoint: str | None = None
    completion_window: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    error_file: str | None = None
    #: A failed validation (the batch ends ``failed`` with these ``errors.data``).
    validation_errors: list[dict[str, object]] = Field(default_factory=list)

    @property
    def name(self) -> str:
        if self.api == "openai":
            return f"batch_{self.id}"
        if self.api == "anthropic":
            return f"msgbatch_{self.id}"
        return f"batches/{self.id}"

    @property
    def inline(self) -> bool:
        return self.input_file is None

    @property
    def running_start(self) -> float:
        return self.create_time + self.pending_seconds

    @property
    def running_end(self) -> float:
        return self.running_start + self.running_seconds

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES
