"""Typed access to a run's records in its output storage: every read and write goes here.

Storage, not the broker, is the source of truth: every task reads these records first and
does only what they say is still to do, so a redelivered or duplicated task is harmless.
Records are small JSON objects (:mod:`shared.run.records`) at the keys of
:mod:`shared.run.layout`; callers name a record by what it is (``store.job(shard, attempt,
part)``), never by its key.

Three ways to write, by what a concurrent writer may have done:

- ``write_*``: replace (the record is this worker's to update, e.g. a job's polled state);
- ``create_*``: write only if absent, True if this call wrote it (a claim);
- ``settle_*``: write if absent, else return what is there (the first writer wins; used
  for records every duplicate computes alike, such as an attempt's parts or an outcome).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import orjson
from pydantic import BaseModel

from shared.errors import ObjectNotFoundError, RunError, RunNotFoundError
from shared.run import layout
from shared.run.records import (
    AttemptRecord,
    CollectedRecord,
    JobRecord,
    ParkedMessage,
    PartPlan,
    PlanRecord,
    RunManifest,
    ShardOutcome,
    Summary,
    UploadRecord,
    utcnow,
)
from shared.storage import Storage

M = TypeVar("M", bound=BaseModel)


def dump(record: BaseModel) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


@dataclass(frozen=True)
class PartRef:
    """One part of one attempt of one shard, as its attempt record lists it."""

    shard: int
    attempt: int
    plan: PartPlan

    @property
    def part(self) -> int:
        return self.plan.part


def parts_of(attempts: Iterable[AttemptRecord]) -> Iterator[PartRef]:
    """Every part of the given attempts, in order."""
    for record in attempts:
        for part in record.parts:
            yield PartRef(record.shard, record.attempt, part)


class RunStore:
    """The records of one run, rooted at the run's output storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # ---- generic (private to the store) ------------------------------------------------

    def _read(self, key: str, model: type[M]) -> M | None:
        try:
            data = self.storage.read_bytes(key)
        except ObjectNotFoundError:
            return None
        return model.model_validate_json(data)

    def _write(self, key: str, record: BaseModel) -> None:
        self.storage.write_bytes(key, dump(record))

    def _create(self, key: str, record: BaseModel) -> bool:
        return self.storage.create_if_absent(key, dump(record))

    def _settle(self, key: str, record: M) -> M:
        """The record at ``key``: ours if we wrote it first, else the one already there."""
        if self._create(key, record):
            return record
        existing = self._read(key, type(record))
        if existing is None:  # deleted between the two calls; ours is as good
            self._write(key, record)
            return record
        return existing

    # ---- the run ---------------------------------------------------------------------

    def manifest(self) -> RunManifest:
        manifest = self._read(layout.MANIFEST, RunManifest)
        if manifest is None:
            raise RunNotFoundError(f"no run manifest at {self.storage.uri}/{layout.MANIFEST}")
        return manifest

    def settle_manifest(self, manifest: RunManifest) -> RunManifest:
        return self._settle(layout.MANIFEST, manifest)

    def plan(self) -> PlanRecord | None:
        return self._read(layout.PLAN, PlanRecord)

    def settle_plan(self, plan: PlanRecord) -> PlanRecord:
        return self._settle(layout.PLAN, plan)

    def summary(self) -> Summary | None:
        return self._read(layout.SUMMARY, Summary)

    def settle_summary(self, summary: Summary) -> Summary:
        return self._settle(layout.SUMMARY, summary)

    def cancel_requested(self) -> bool:
        return self.storage.exists(layout.CANCEL_MARKER)

    def request_cancel(self) -> bool:
        """Write the cancel marker every step checks; False if it was there already."""
        marker = orjson.dumps({"requested_at": utcnow().isoformat()})
        return self.storage.create_if_absent(layout.CANCEL_MARKER, marker)

    def launched(self) -> bool:
        return self.storage.exists(layout.LAUNCHED)

    def park(self, record: ParkedMessage) -> ParkedMessage:
        """Record a poison message (once per task id); the run's summary will say failed."""
        return self._settle(layout.parked(record.task_id), record)

    def parked(self) -> list[ParkedMessage]:
        """Every parked message of the run, oldest first."""
        found = []
        for info in self.storage.list(layout.PARKED + "/"):
            record = self._read(info.key, ParkedMessage)
            if record is not None:
                found.append(record)
        return sorted(found, key=lambda r: r.parked_at)

    def mark_launched(self) -> None:
        self.storage.create_if_absent(
            layout.LAUNCHED, orjson.dumps({"at": utcnow().isoformat()})
        )

    # ---- shards and attempts -----------------------------------------------------------

    def attempt(self, shard: int, attempt: int) -> AttemptRecord | None:
        return self._read(layout.attempt_record(shard, attempt), AttemptRecord)

    def settle_attempt(self, record: AttemptRecord) -> AttemptRecord:
        return self._settle(layout.attempt_record(record.shard, record.attempt), record)

    def require_attempt(self, shard: int, attempt: int) -> AttemptRecord:
        """The attempt's record; a ``RunError`` if it is missing (the records disagree)."""
        record = self.attempt(shard, attempt)
        if record is None:
            raise RunError(f"{self.storage.uri}: shard {shard} has no attempt {attempt} record")
        return record

    def attempts(self, shard: int) -> list[AttemptRecord]:
        """Every attempt of a shard that has a record, in order."""
        found: list[AttemptRecord] = []
        number = 1
        while (record := self.attempt(shard, number)) is not None:
            found.append(record)
            number += 1
        return found

    def parts(self, shard: int, *, latest_only: bool = False) -> Iterator[PartRef]:
        """Every part of every attempt of ``shard`` (of its latest attempt only, if asked)."""
        attempts = self.attempts(shard)
        return parts_of(attempts[-1:] if latest_only else attempts)

    def outcome(self, shard: int) -> ShardOutcome | None:
        return self._read(layout.shard_outcome(shard), ShardOutcome)

    def settle_outcome(self, outcome: ShardOutcome) -> ShardOutcome:
        return self._settle(layout.shard_outcome(outcome.shard), outcome)

    def shard_is_final(self, shard: int) -> bool:
        return self.storage.exists(layout.shard_outcome(shard))

    # ---- parts -------------------------------------------------------------------------

    def upload(self, shard: int, attempt: int, part: int) -> UploadRecord | None:
        return self._read(layout.part_upload(shard, attempt, part), UploadRecord)

    def write_upload(self, shard: int, attempt: int, part: int, record: UploadRecord) -> None:
        self._write(layout.part_upload(shard, attempt, part), record)

    def create_upload(self, shard: int, attempt: int, part: int, record: UploadRecord) -> bool:
        return self._create(layout.part_upload(shard, attempt, part), record)

    def job(self, shard: int, attempt: int, part: int) -> JobRecord | None:
        return self._read(layout.part_job(shard, attempt, part), JobRecord)

    def write_job(self, shard: int, attempt: int, part: int, job: JobRecord) -> None:
        self._write(layout.part_job(shard, attempt, part), job)

    def create_job(self, shard: int, attempt: int, part: int, job: JobRecord) -> bool:
        return self._create(layout.part_job(shard, attempt, part), job)

    def collected(self, shard: int, attempt: int, part: int) -> CollectedRecord | None:
        return self._read(layout.part_collected(shard, attempt, part), CollectedRecord)

    def write_collected(
        self, shard: int, attempt: int, part: int, record: CollectedRecord
    ) -> None:
        self._write(layout.part_collected(shard, attempt, part), record)
