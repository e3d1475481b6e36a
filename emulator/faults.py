"""Fault settings and the deterministic decisions that apply them.

Faults are plain data (pydantic models), loaded from ``--faults FILE``, ``EMULATOR_FAULTS``
or ``PUT /_emulator/faults``. Which call or job a rule hits is decided by a seeded hash of
the rule's index and a per-rule counter of matching calls (or of the job's display name and
a request's key), never by ``random``: the same sequence of calls meets the same faults.

Endpoint ids, matched by glob patterns (``fnmatch``) in each rule's ``endpoint``::

    files.upload.start  files.upload.chunk  files.upload.query  files.upload.cancel
    files.get  files.list  files.delete  files.download
    batches.create  batches.create_embeddings  batches.get  batches.list
    batches.cancel  batches.delete

Example file::

    {"seed": 7,
     "http": [{"endpoint": "batches.create*", "code": 429, "times": 2},
              {"endpoint": "batches.get", "code": 503, "rate": 0.2}],
     "latency": [{"endpoint": "files.*", "seconds": 0.5}],
     "drops": [{"after_bytes": 1000000, "times": 1}],
     "jobs": [{"display_name_contains": "-s00002-", "fail": {"code": 13, "message": "boom"}},
              {"request_errors": {"rate": 0.1, "code": 429}},
              {"malformed_output": {"rate": 0.2, "shape": "wrong_shape"}}]}
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from emulator.errors import status_for_code


def seeded_fraction(*parts: object) -> float:
    """A value in [0, 1) fixed by ``parts``: the seeded coin every fault decision uses."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class _Rule(BaseModel):
    """Which calls a rule may hit: endpoint glob, HTTP method, rate, skip and count."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(default="*", description="Glob over endpoint ids.")
    method: str | None = Field(default=None, description="HTTP method; any when None.")
    rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of matching calls hit.")
    skip: int = Field(default=0, ge=0, description="Let this many matching calls through first.")
    times: int | None = Field(default=None, ge=0, description="Hit at most this many calls.")

    def matches(self, endpoint: str, method: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(endpoint, self.endpoint)


class HttpFault(_Rule):
    """Answer matching calls with an error envelope instead of (or after) serving them."""

    code: int = Field(default=503, ge=400, le=599)
    status: str | None = Field(default=None, description="Defaults from the code.")
    message: str | None = None
    retry_delay_seconds: float = Field(default=30.0, ge=0, description="RetryInfo on a 429.")
    retry_after_header: bool = Field(
        default=False, description="Also send Retry-After (the live API does not)."
    )
    apply_after: bool = Field(
        default=False,
        description="Serve the call first (e.g. the job IS created), then answer the error: "
        "a lost response.",
    )
    upload_status: Literal["final", "active"] | None = Field(
        default="final",
        description="X-Goog-Upload-Status on an upload chunk error; None omits it, which "
        "makes the SDK re-send the chunk.",
    )

    def resolved_status(self) -> str:
        return self.status or status_for_code(self.code)


class LatencyFault(_Rule):
    """Delay matching calls by ``seconds`` of real time before serving them."""

    seconds: float = Field(default=1.0, ge=0)


class DropFault(_Rule):
    """Read ``after_bytes`` of an upload chunk, keep them, then abort the connection."""

    endpoint: str = "files.upload.chunk"
    after_bytes: int = Field(default=0, ge=0)


class JobError(BaseModel):
    """A ``google.rpc.Status`` for a failed job (gRPC code space, as in an LRO)."""

    model_config = ConfigDict(extra="forbid")

    code: int = 13
    message: str = "Internal error encountered while processing the batch."


class RequestErrors(BaseModel):
    """A share of a job's requests answered with an error line instead of a response."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=0.1, ge=0.0, le=1.0)
    code: int = 500
    status: str | None = None
    message: str | None = None
    spelling: Literal["error", "status"] = Field(
        default="error", description="Name of the error object on an output line."
    )

    def resolved_status(self) -> str:
        return self.status or status_for_code(self.code)


class MalformedOutput(BaseModel):
    """A share of a job's generate answers whose text is not what was asked for: users
    report batch responses in the wrong shape despite ``responseJsonSchema``.

    ``wrong_shape``: the JSON answer sent as a JSON *string* (stringified JSON, a real
    failure mode; no object or array schema accepts it). ``not_json``: the answer cut in
    half, so it does not parse.
    """

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=0.1, ge=0.0, le=1.0)
    shape: Literal["wrong_shape", "not_json"] = "wrong_shape"


class JobFault(BaseModel):
    """What happens to the batch jobs a rule selects (by display name, model, kind, rate)."""

    model_config = ConfigDict(extra="forbid")

    display_name_contains: str | None = None
    model_contains: str | None = None
    kind: Literal["generate", "embed"] | None = None
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    times: int | None = Field(default=None, ge=0, description="Hit at most this many jobs.")

    fail: JobError | None = Field(default=None, description="End FAILED with this error.")
    expire: bool = Field(default=False, description="Stay PENDING until the expiry, then EXPIRED.")
    late_output_seconds: float = Field(
        default=0.0, ge=0, description="Show SUCCEEDED this long (emulated) before the output."
    )
    request_errors: RequestErrors | None = None
    malformed_output: MalformedOutput | None = None
    pending_seconds: float | None = Field(default=None, ge=0)
    running_seconds: float | None = Field(default=None, ge=0)
    echo_arrays_emptied: bool = Field(
        default=False, description="Reproduce go-genai#513: arrays in the echoed fields emptied."
    )

    def selects(self, display_name: str, model: str, kind: str) -> bool:
        if self.display_name_contains is not None and self.display_name_contains not in (
            display_name
        ):
            return False
        if self.model_contains is not None and self.model_contains not in model:
            return False
        return self.kind is None or self.kind == kind


class JobEffects(BaseModel):
    """The merged effects of every job rule that hit one job; stored with the job."""

    fail: JobError | None = None
    expire: bool = False
    late_output_seconds: float = 0.0
    request_errors: RequestErrors | None = None
    malformed_output: MalformedOutput | None = None
    pending_seconds: float | None = None
    running_seconds: float | None = None
    echo_arrays_emptied: bool = False


class FaultConfig(BaseModel):
    """Every fault the emulator injects; empty means a well-behaved server."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    http: list[HttpFault] = Field(default_factory=list)
    latency: list[LatencyFault] = Field(default_factory=list)
    drops: list[DropFault] = Field(default_factory=list)
    jobs: list[JobFault] = Field(default_factory=list)
    echo_arrays_emptied: bool = Field(
        default=False, description="go-genai#513 for every job, not only selected ones."
    )


class FaultEngine:
    """Holds the fault settings and the counters that make rule decisions deterministic."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.replace(config)

    @property
    def config(self) -> FaultConfig:
        return self._config

    def replace(self, config: FaultConfig) -> None:
        """Install new settings and restart every counter."""
        with self._lock:
            self._config = config
            self._seen: dict[tuple[str, int], int] = {}
            self._hit: dict[tuple[str, int], int] = {}

    def _fire(self, group: str, index: int, rule: _Rule | JobFault, *, skip: int) -> bool:
        slot = (group, index)
        seen = self._seen.get(slot, 0)
        self._seen[slot] = seen + 1
        if seen < skip:
            return False
        hit = self._hit.get(slot, 0)
        if rule.times is not None and hit >= rule.times:
            return False
        if rule.rate < 1.0 and seeded_fraction(self._config.seed, group, index, seen) >= rule.rate:
            return False
        self._hit[slot] = hit + 1
        return True

    def http_fault(self, endpoint: str, method: str) -> HttpFault | None:
        """The error to answer this call with, if a rule hits it."""
        with self._lock:
            for index, rule in enumerate(self._config.http):
                if rule.matches(endpoint, method) and self._fire(
                    "http", index, rule, skip=rule.skip
                ):
                    return rule
        return None

    def latency(self, endpoint: str, method: str) -> float:
        """Seconds to wait before serving this call (the sum of the rules that hit it)."""
        total = 0.0
        with self._lock:
            for index, rule in enumerate(self._config.latency):
                if rule.matches(endpoint, method) and self._fire(
                    "latency", index, rule, skip=rule.skip
                ):
                    total += rule.seconds
        return total

    def drop(self, endpoint: str, method: str) -> DropFault | None:
        """The connection drop to apply to this upload chunk, if a rule hits it."""
        with self._lock:
            for index, rule in enumerate(self._config.drops):
                if rule.matches(endpoint, method) and self._fire(
                    "drop", index, rule, skip=rule.skip
                ):
                    return rule
        return None

    def job_effects(self, display_name: str, model: str, kind: str) -> JobEffects:
        """Merge the effects of every job rule that hits a new job (first fail/expire wins)."""
        effects = JobEffects(echo_arrays_emptied=self._config.echo_arrays_emptied)
        with self._lock:
            for index, rule in enumerate(self._config.jobs):
                if not rule.selects(display_name, model, kind):
                    continue
                if not self._fire("job", index, rule, skip=0):
                    continue
                if effects.fail is None and not effects.expire:
                    effects.fail = rule.fail
                    effects.expire = rule.expire
                effects.late_output_seconds = max(
                    effects.late_output_seconds, rule.late_output_seconds
                )
                effects.request_errors = rule.request_errors or effects.request_errors
                effects.malformed_output = rule.malformed_output or effects.malformed_output
                if rule.pending_seconds is not None:
                    effects.pending_seconds = rule.pending_seconds
                if rule.running_seconds is not None:
                    effects.running_seconds = rule.running_seconds
                effects.echo_arrays_emptied = effects.echo_arrays_emptied or (
                    rule.echo_arrays_emptied
                )
        return effects
