"""Typed access to a run's records in its output storage (see :mod:`shared.records`)."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel

from shared import names
from shared.errors import ObjectNotFoundError, RunError, RunNotFoundError
from shared.records import (
    AttemptRecord,
    CollectedRecord,
    JobRecord,
    PlanRecord,
    RunManifest,
    ShardOutcome,
    Summary,
    UploadRecord,
)
from shared.storage import Storage

M = TypeVar("M", bound=BaseModel)


def dump(record: BaseModel) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


class RunRecords:
    """The records of one run, rooted at the run's output storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # Generic

    def read(self, key: str, model: type[M]) -> M | None:
        try:
            data = self.storage.read_bytes(key)
        except ObjectNotFoundError:
            return None
        return model.model_validate_json(data)

    def write(self, key: str, record: BaseModel) -> None:
        self.storage.write_bytes(key, dump(record))

    def create(self, key: str, record: BaseModel) -> bool:
        """Write ``record`` unless one is there; True if this call wrote it."""
        return self.storage.create_if_absent(key, dump(record))

    def create_or_read(self, key: str, record: M) -> M:
        """The record at ``key``: ours if we wrote it first, else the one already there."""
        if self.create(key, record):
            return record
        existing = self.read(key, type(record))
        if existing is None:  # deleted between the two calls; ours is as good
            self.write(key, record)
            return record
        return existing

    # Named records

    def manifest(self) -> RunManifest:
        manifest = self.read(names.MANIFEST, RunManifest)
        if manifest is None:
            raise RunNotFoundError(f"no run manifest at {self.storage.uri}/{names.MANIFEST}")
        return manifest

    def plan(self) -> PlanRecord | None:
        return self.read(names.PLAN, PlanRecord)

    def attempt(self, shard: int, attempt: int) -> AttemptRecord | None:
        return self.read(names.attempt_record(shard, attempt), AttemptRecord)

    def upload(self, shard: int, attempt: int, part: int) -> UploadRecord | None:
        return self.read(names.part_upload(shard, attempt, part), UploadRecord)

    def job(self, shard: int, attempt: int, part: int) -> JobRecord | None:
        return self.read(names.part_job(shard, attempt, part), JobRecord)

    def collected(self, shard: int, attempt: int, part: int) -> CollectedRecord | None:
        return self.read(names.part_collected(shard, attempt, part), CollectedRecord)

    def outcome(self, shard: int) -> ShardOutcome | None:
        return self.read(names.shard_outcome(shard), ShardOutcome)

    def summary(self) -> Summary | None:
        return self.read(names.SUMMARY, Summary)

    def cancel_requested(self) -> bool:
        return self.storage.exists(names.CANCEL_MARKER)

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
