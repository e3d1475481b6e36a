"""SIGKILL the worker during an Anthropic Message Batches run; the run still ends with the
same bytes as a clean run.

A batch carries no name, so the emulator's job faults cannot be aimed at an attempt and stay
off here (a clean run and a crashed one meet the same answers). A kill while parts are being
created loses the record of each create the dead worker's threads had just sent (at most one
per thread): nobody can find those batches again, so their parts are created once more after
the create lease, the documented cost of this provider. The outputs still match, and a kill
anywhere else makes exactly one batch per part.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from emulator import EmulatorConfig
from shared.run.store import Summary
from tests.chaos.conftest import (
    OUTPUTS,
    WORKER_THREADS,
    Workers,
    chaos_env,
    full_only,
    part_count,
    submit,
    wait_killed,
)
from tests.fixtures.emulator import FAST_TIME_SCALE, OTHER_KEY, TEST_KEY, running_emulator
from tests.fixtures.services import start_worker

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = {"http_timeout_seconds": "5", "http_max_retries": "0"}
LINES = 300
_MESSAGE_ID = re.compile(rb'"id":"msg_[A-Za-z0-9_-]*"')


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=[TEST_KEY, OTHER_KEY], time_scale=FAST_TIME_SCALE)


def _env(emulator, tmp: Path, broker: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return chaos_env(emulator, tmp, broker, **LEASE, provider="anthropic",
                     anthropic_api_key=emulator.api_key,
                     anthropic_base_url=emulator.anthropic_base_url)


def _normalized(path: Path) -> bytes:
    return _MESSAGE_ID.sub(b'"id":"msg_"', path.read_bytes())


def _write(path: Path) -> None:
    with path.open("wb") as out:
        for n in range(1, LINES + 1):
            body = {"max_tokens": 32, "messages": [{"role": "user", "content": f"q {n}"}]}
            out.write(orjson.dumps({"key": f"k-{n}", "request": body, "doc": n}) + b"\n")


@dataclass
class Reference:
    output: Path
    source: Path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, chaos_redis) -> Iterator[Reference]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("anthropic-reference")
    source = tmp / "requests.jsonl"
    _write(source)
    chaos_redis.client().flushall()
    with ExitStack() as stack:
        emulator = stack.enter_context(running_emulator(emulator_config()))
        worker = start_worker(_env(emulator, tmp, chaos_redis.url()), tmp / "worker.log")
        stack.callback(worker.stop)
        run = submit(chaos_redis.url(), source, tmp / "out")
        summary = run.wait_summary(workers=[worker])
    assert summary.accounted and summary.counts.results == LINES
    yield Reference(tmp / "out", source)


CASES = [
    pytest.param("create.after_call=kill@2", id="create.after_call"),
    pytest.param("poll.after_get=kill@3", id="poll.after_get"),
    pytest.param("collect.mid_download=kill", id="collect.mid_download"),
    full_only("create.after_intent=kill@2", id="create.after_intent"),
    full_only("collect.after_parts=kill", id="collect.after_parts"),
    full_only("merge.mid_concat=kill@2", id="merge.mid_concat"),
]


@pytest.mark.parametrize("failpoints", CASES)
def test_anthropic_crash_and_restart_matches_a_clean_run(
    failpoints: str, reference: Reference, broker: str, workers: Workers, tmp_path: Path,
) -> None:
    with running_emulator(emulator_config()) as emulator:
        env = _env(emulator, tmp_path, broker)
        armed = workers.start(env, failpoints)
        run = submit(broker, reference.source, tmp_path / "out")
        wait_killed(armed, run)
        clean = workers.start(env)
        summary = run.wait_summary(workers=workers.started, reconcile_via=broker)

        for name in OUTPUTS:
            assert _normalized(run.output / name) == _normalized(reference.output / name), name
        expected = Summary.model_validate_json((reference.output / "summary.json").read_bytes())
        assert summary.accounted and summary.counts == expected.counts
        made = emulator.stats()["requests"]["anthropic.batches.create"]
        # A kill after a create loses its record, and those of the creates other threads of
        # the dead worker had just made: each such part is created once more.
        extra = WORKER_THREADS if failpoints.startswith("create.") else 0
        assert part_count(run) <= made <= part_count(run) + extra
        assert clean.alive()
