"""Where runs are found by id, and where idempotency keys are claimed exactly once.

The registry lives under ``Settings.state_uri`` (a local directory on one machine, an
``s3://``/``gs://`` prefix for a fleet). Claims use create-if-absent, so two callers with the
same idempotency key, on any machines, get the same run.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from shared.errors import ObjectNotFoundError, RunNotFoundError, SpecError
from shared.run import layout
from shared.run.spec import RunSpec
from shared.run.store import dump
from shared.storage import Storage


class RunEntry(BaseModel):
    run_id: str
    output_uri: str
    input_uri: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    idempotency_key: str | None = None
    spec_sha256: str = ""


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by start time, unique without coordination: ``20261126-032500-1a2b3c4d``."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def run_id_for_key(idempotency_key: str) -> str:
    """The run id an idempotency key maps to: stable, so a retried claim names the same run."""
    return "k-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def spec_fingerprint(spec: RunSpec) -> str:
    """What makes two specs "the same run" for an idempotency key (labels do not count)."""
    return hashlib.sha256(
        spec.model_dump_json(exclude={"labels"}).encode()
    ).hexdigest()


class RunRegistry:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def claim(self, spec: RunSpec) -> tuple[RunEntry, bool]:
        """Register a run for ``spec``; returns the entry and whether this call created it.

        With an idempotency key the run id is derived from the key, so the create-if-absent of
        its entry is the claim: a second claim with the same key returns the first run, and a
        different spec under the same key is refused.
        """
        run_id = run_id_for_key(spec.idempotency_key) if spec.idempotency_key else new_run_id()
        entry = RunEntry(
            run_id=run_id,
            output_uri=spec.output_uri,
            input_uri=spec.input_uri,
            idempotency_key=spec.idempotency_key,
            spec_sha256=spec_fingerprint(spec),
        )
        if self.storage.create_if_absent(layout.registry_run(run_id), dump(entry)):
            return entry, True
        existing = self.lookup(run_id)
        if existing.spec_sha256 != entry.spec_sha256:
            raise SpecError(
                f"idempotency key {spec.idempotency_key!r} was already used for a different "
                f"run spec (run {run_id}, output {existing.output_uri})"
            )
        return existing, False

    def _has(self, run_id: str) -> bool:
        return self.storage.exists(layout.registry_run(run_id))

    def lookup(self, run_id: str) -> RunEntry:
        try:
            data = self.storage.read_bytes(layout.registry_run(run_id))
        except ObjectNotFoundError:
            raise RunNotFoundError(
                f"no run {run_id!r} in the registry at {self.storage.uri}"
            ) from None
        return RunEntry.model_validate_json(data)

    def entries(self) -> Iterator[RunEntry]:
        for info in self.storage.list("runs/"):
            if info.key.endswith(".json"):
                yield RunEntry.model_validate_json(self.storage.read_bytes(info.key))

