"""A run's storage (a temp directory), a registry, and a fakeredis deadline index."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import fakeredis
import pytest

from shared.liveness import DeadlineIndex
from shared.run import layout
from shared.run.registry import RunEntry
from shared.settings import Settings
from shared.storage import LocalStorage, Storage, open_storage


@dataclass
class Calls:
    """A Restarter that records what it would have sent."""

    plans: list[tuple[str, str]] = field(default_factory=list)
    chains: list[tuple[str, int, int, str]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)
    sends: list[tuple[str, int]] = field(default_factory=list)
    ready: int = 0  # messages waiting in the queue

    def plan(self, run_id: str, output_uri: str, task_id: str) -> None:
        self.plans.append((run_id, task_id))

    def chain(self, run_id: str, output_uri: str, shard: int, attempt: int, step: str,
              task_id: str) -> None:
        self.chains.append((run_id, shard, attempt, task_id))
        self.steps.append(step)

    def send_shards(self, run_id: str, output_uri: str, first: int, task_id: str) -> None:
        self.sends.append((run_id, first))

    def merge(self, run_id: str, output_uri: str, task_id: str) -> None:
        self.merges.append((run_id, task_id))

    def backlog(self) -> int:
        return self.ready


@dataclass
class World:
    settings: Settings
    index: DeadlineIndex
    run_id: str
    output_uri: str

    @property
    def storage(self) -> Storage:
        return open_storage(self.output_uri)


@pytest.fixture
def world(tmp_path: Path) -> World:
    settings = Settings(state_uri=str(tmp_path / "state"))
    run_id = "r-test"
    output = tmp_path / "out"
    entry = RunEntry(run_id=run_id, output_uri=str(output), input_uri="in.jsonl")
    LocalStorage(tmp_path / "state").write_bytes(layout.registry_run(run_id),
                                                 entry.model_dump_json().encode())
    client = fakeredis.FakeRedis(decode_responses=True)
    return World(settings, DeadlineIndex(client), run_id, str(output))


@pytest.fixture
def calls() -> Calls:
    return Calls()
