"""The durable records of a run, kept as small JSON objects under ``<output>/_shardline/``.

Storage, not the broker, is the source of truth: every task reads these records first and
does only what they say is still to do, so a redelivered or duplicated task is harmless.
No record holds an API key; keys are named by their fingerprint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.run.spec import Kind, RunSpec
from shared.run.states import BatchState, PartFate, RunState, ShardState
from shared.settings import ProviderName

RECORD_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunManifest(Record):
    """``run.json``: written once at start; the effective configuration of the run."""

    version: int = RECORD_VERSION
    run_id: str
    created_at: datetime = Field(default_factory=utcnow)
    spec: RunSpec
    model: str
    kind: Kind
    #: Runs recorded before there was a choice ran on Gemini.
    provider: ProviderName = "gemini"
    shard_max_bytes: int
    shard_max_requests: int
    max_request_attempts: int
    max_job_attempts: int


class CostEstimate(Record):
    """USD, from :mod:`shared.pricing`; ``total`` None when the model has no known price."""

    currency: str = "USD"
    input: float | None = None
    output: float | None = None
    total: float | None = None
    basis: str = ""


class ShardPlan(Record):
    """A shard's accepted lines (``requests``); ``cached`` of them were answered by the
    request cache and ``held`` kept back by the budget, at plan time; the rest are sent."""

    index: int
    requests: int
    bytes: int
    first_line: int
    last_line: int
    estimated_tokens: int = 0
    cached: int = 0
    held: int = 0


class PlanRecord(Record):
    """``plan.json``: what the single pass over the input found."""

    input_uri: str
    lines: int
    accepted: int
    rejected: int
    input_bytes: int
    estimated_tokens: int = 0
    shards: list[ShardPlan]
    cached: int = 0
    held: int = 0
    estimated_cost: CostEstimate | None = None
    planned_at: datetime = Field(default_factory=utcnow)
    seconds: float = 0.0


AttemptReason = Literal["initial", "retry", "expired", "failed"]


class PartPlan(Record):
    part: int
    input_key: str
    requests: int
    bytes: int
    estimated_tokens: int = 0


class AttemptRecord(Record):
    """``aNN/attempt.json``: the parts one attempt of a shard submits."""

    shard: int
    attempt: int
    reason: AttemptReason = "initial"
    parts: list[PartPlan]
    created_at: datetime = Field(default_factory=utcnow)


class UploadRecord(Record):
    """``upload.json``: the resumable session, then the provider file it produced.

    ``session_url`` authorizes uploading to that one session only (no key needed), so it is
    stored to let any worker resume; it grants nothing else.
    """

    key_fingerprint: str
    size: int
    session_url: str | None = None
    granularity: int = 8 * 1024 * 1024
    file_name: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    deleted: bool = False


class JobRecord(Record):
    """``job.json``: the create intent (written before the call), then the job it made."""

    display_name: str
    key_fingerprint: str
    model: str
    file_name: str
    job_name: str | None = None
    intent_at: datetime = Field(default_factory=utcnow)
    create_in_flight: bool = True
    created_at: datetime | None = None
    state: BatchState | None = None
    polled_at: datetime | None = None
    polls: int = 0
    request_count: int = 0
    succeeded_count: int = 0
    failed_count: int = 0
    pending_count: int = 0
    responses_file: str | None = None
    error: dict[str, object] | None = None
    cancel_sent: bool = False

    @property
    def is_final(self) -> bool:
        """Final and collectable: a SUCCEEDED job counts only once its output is attached."""
        if self.state is BatchState.SUCCEEDED:
            return self.responses_file is not None
        return self.state is not None and self.state.terminal


class TokenTotals(Record):
    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    cached: int = 0
    total: int = 0

    def add(self, other: TokenTotals) -> TokenTotals:
        return TokenTotals(
            prompt=self.prompt + other.prompt,
            candidates=self.candidates + other.candidates,
            thoughts=self.thoughts + other.thoughts,
            cached=self.cached + other.cached,
            total=self.total + other.total,
        )


class CollectedRecord(Record):
    """``collected.json``: a part's outcome files are complete."""

    job_state: BatchState | PartFate
    responses: int = 0
    errors: int = 0
    retryable: int = 0
    missing: int = 0
    strays: int = 0
    duplicates: int = 0
    #: Responses refused by the run's output schema (part of ``errors``).
    invalid: int = 0
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    collected_at: datetime = Field(default_factory=utcnow)
    seconds: float = 0.0


class ShardOutcome(Record):
    """``outcome.json``: the shard is final; the merge waits for one per shard."""

    shard: int
    state: ShardState
    requests: int
    results: int
    errors: int
    attempts: int
    jobs: list[str] = Field(default_factory=list)
    tokens: TokenTotals = Field(default_factory=TokenTotals)
    finished_at: datetime = Field(default_factory=utcnow)
    stage_seconds: dict[str, float] = Field(default_factory=dict)


class ParkedMessage(Record):
    """A task message parked as poison (see :mod:`shared.poison`): the run fails with
    ``reason``; one record per message, at ``_shardline/parked/<task id>.json``."""

    task: str
    task_id: str
    shard: int | None = None
    attempt: int | None = None
    deliveries: int
    parked_at: datetime = Field(default_factory=utcnow)
    reason: str


class Counts(Record):
    """``lines == results + errors + rejected``; ``cached`` is the part of ``results`` the
    request cache answered (no provider call, no cost)."""

    lines: int
    results: int
    errors: int
    rejected: int
    cached: int = 0

    @property
    def accounted(self) -> bool:
        return self.lines == self.results + self.errors + self.rejected


class Summary(Record):
    """``summary.json``: what the user reads first; counts always add up.

    ``cost`` is the actual cost: the tokens the provider reported (``usageMetadata``) at the
    batch price; ``estimated_cost`` what the plan estimated for the lines it sent (the
    figure the budget used); ``interactive_cost`` the same actual tokens at the interactive
    price, what the Batch API saved. Cached lines cost nothing and count in no token total.
    """

    run_id: str
    state: RunState
    model: str
    kind: Kind
    input_uri: str
    output_uri: str
    counts: Counts
    accounted: bool
    tokens: TokenTotals
    cost: CostEstimate
    estimated_cost: CostEstimate | None = None
    interactive_cost: CostEstimate | None = None
    shards: int
    jobs: list[str]
    timings: dict[str, float]
    started_at: datetime
    finished_at: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
