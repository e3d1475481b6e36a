"""A run's shard chains go out in batches: each ``send_shards`` task sends its batch, then
the next batch or the merge, and sending any number of shards takes flat memory."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import names
from shared.settings import Settings
from tests.fixtures.services import REDIS_DB, REPO
from workers import canvas
from workers.app import configure

BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
sys.path.insert(0, str(REPO / "benchmarks"))
from send_shards import measure  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    client.flushdb()
    configure(Settings(broker_url=BROKER, state_uri=str(tmp_path / "state")))
    yield client
    client.flushdb()
    configure(Settings(state_uri=str(tmp_path / "state")))  # back to embedded


def queued(client: redis.Redis) -> list[tuple[str, str]]:
    messages = [json.loads(raw) for raw in client.lrange(names.QUEUE, 0, -1)]
    return [(m["headers"]["task"], m["headers"]["kwargsrepr"]) for m in messages]


def test_a_batch_sends_its_chains_then_the_next_batch(broker: redis.Redis) -> None:
    shards = list(range(canvas.SHARD_BATCH + 5))
    assert canvas.send_shards("r1", "/out", shards, first=0) == canvas.SHARD_BATCH
    sent = Counter(task for task, _ in queued(broker))
    assert sent == {names.TASK_UPLOAD: canvas.SHARD_BATCH, names.TASK_SEND_SHARDS: 1}
    [following] = [kwargs for task, kwargs in queued(broker) if task == names.TASK_SEND_SHARDS]
    assert f"'first': {canvas.SHARD_BATCH}" in following


def test_the_last_batch_sends_the_merge(broker: redis.Redis) -> None:
    shards = list(range(canvas.SHARD_BATCH + 5))
    assert canvas.send_shards("r1", "/out", shards, first=canvas.SHARD_BATCH) == 5
    sent = Counter(task for task, _ in queued(broker))
    assert sent == {names.TASK_UPLOAD: 5, names.TASK_MERGE: 1}


def test_a_run_without_shards_is_merged_at_once(broker: redis.Redis) -> None:
    assert canvas.send_shards("r1", "/out", [], first=0) == 0
    assert [task for task, _ in queued(broker)] == [names.TASK_MERGE]


def test_sending_many_shards_takes_flat_memory(broker: redis.Redis) -> None:
    """Peak RSS of a child process sending 10,000 shards' chains (every batch, one process),
    against building them as one chord the way the run was sent before."""
    batches = measure(10_000, BROKER, as_chord=False)["peak_above_base_mib"]
    chord = measure(10_000, BROKER, as_chord=True)["peak_above_base_mib"]
    assert batches < 4.0, batches  # measured: under 1 MiB
    assert chord > 15.0, (batches, chord)  # measured 20-80 MiB: the check tells them apart
