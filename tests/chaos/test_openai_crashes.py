"""SIGKILL the worker at the stage boundaries of an OpenAI-style run; the run still ends with
the same bytes as a clean run, one batch per part, and no file uploaded twice where a
crashed upload had already made one.

The same method as ``test_crash_matrix`` (a worker armed with one failpoint kills itself
there; a clean worker takes over after the visibility timeout), on the emulator's OpenAI
API, with its faults: shard 1's first batch FAILS, shard 2's first batch EXPIRES (attempt 2
comes in two parts), 10 % of first-attempt requests answer 503 (retried, from the error
file) and 10 % of second-attempt requests 400 (final errors).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator import EmulatorConfig, FaultConfig
from shared.run.store import Summary
from tests.chaos.conftest import (
    OUTPUTS,
    RedisServer,
    Run,
    Workers,
    assert_one_job_per_part,
    chaos_env,
    full_only,
    part_count,
    submit,
    wait_input_files_deleted,
    wait_killed,
)
from tests.fixtures.emulator import FAST_TIME_SCALE, OTHER_KEY, TEST_KEY, running_emulator
from tests.fixtures.openai_input import (
    first_difference,
    normalized,
    openai_env,
    write_chat_input,
)
from tests.fixtures.services import start_worker

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = {"http_timeout_seconds": "5", "http_max_retries": "0"}
LINES = 400
FAULTS = FaultConfig.model_validate({
    "seed": 11,
    "jobs": [
        {"display_name_contains": "-s00001-a01-", "fail": {"code": 13, "message": "boom"}},
        {"display_name_contains": "-s00002-a01-", "expire": True},
        {"display_name_contains": "-a01-", "request_errors": {"rate": 0.1, "code": 503}},
        {"display_name_contains": "-a02-", "request_errors": {"rate": 0.1, "code": 400}},
    ],
})


def emulator_config() -> EmulatorConfig:
    # The expiry is what ends the job meant to expire (4 s real), and it also ends any job
    # not finished by then: at 600 s emulated (0.5 s real) a loaded machine made ordinary
    # jobs expire now and then, and a clean run differ from a crashed one.
    return EmulatorConfig(
        api_keys=[TEST_KEY, OTHER_KEY], time_scale=FAST_TIME_SCALE, job_expiry_seconds=4800,
        faults=FAULTS,
    )


@dataclass
class Reference:
    output: Path
    source: Path
    seconds: float
    uploads: int


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, chaos_redis) -> Iterator[Reference]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("openai-reference")
    source = tmp / "requests.jsonl"
    write_chat_input(source, LINES)
    chaos_redis.client().flushall()
    with ExitStack() as stack:
        emulator = stack.enter_context(running_emulator(emulator_config()))
        env = chaos_env(emulator, tmp, chaos_redis.url(), **LEASE, **openai_env(emulator))
        worker = start_worker(env, tmp / "worker.log")
        stack.callback(worker.stop)
        started = time.monotonic()
        run = submit(chaos_redis.url(), source, tmp / "out")
        summary = run.wait_summary(workers=[worker])
        seconds = time.monotonic() - started
        jobs = assert_one_job_per_part(emulator, run)
        uploads = emulator.stats()["requests"]["openai.files.upload"]
    assert summary.accounted and summary.counts.rejected == 2
    assert summary.counts.errors > 0 and summary.counts.results > 0
    assert len(jobs) >= 8, "the faults should have made second attempts, one in two parts"
    assert uploads == len(jobs)
    yield Reference(tmp / "out", source, seconds, uploads)


@dataclass(frozen=True)
class Case:
    failpoints: str | None = None
    kills: int = 0
    seed: int = 0


CASES = [
    pytest.param(Case("upload.after_chunk=kill@3"), id="upload.after_chunk"),
    pytest.param(Case("upload.after_finalize=kill@2"), id="upload.after_finalize"),
    pytest.param(Case("create.after_call=kill@2"), id="create.after_call"),
    pytest.param(Case("collect.mid_download=kill"), id="collect.mid_download"),
    full_only(Case("upload.after_session=kill@2"), id="upload.after_session"),
    full_only(Case("create.after_intent=kill@2"), id="create.after_intent"),
    full_only(Case("poll.after_get=kill@3"), id="poll.after_get"),
    full_only(Case("collect.after_staging=kill"), id="collect.after_staging"),
    full_only(Case(kills=1, seed=1), id="random-1"),
]


@pytest.mark.parametrize("case", CASES)
def test_openai_crash_and_restart_matches_a_clean_run(
    case: Case, reference: Reference, broker: str, workers: Workers, tmp_path: Path,
    chaos_redis: RedisServer,
) -> None:
    with running_emulator(emulator_config()) as emulator:
        env = chaos_env(emulator, tmp_path, broker, **LEASE, **openai_env(emulator))
        run: Run | None = None
        if case.failpoints:
            armed = workers.start(env, case.failpoints)
            run = submit(broker, reference.source, tmp_path / "out")
            wait_killed(armed, run)
        else:
            rng = random.Random(case.seed)
            victim = workers.start(env)
            run = submit(broker, reference.source, tmp_path / "out")
            time.sleep(rng.uniform(0.2, 0.7 * reference.seconds))
            victim.kill()
        clean = workers.start(env)
        summary = run.wait_summary(workers=workers.started, reconcile_via=broker)

        for name in OUTPUTS:
            ours, theirs = normalized(run.output / name), normalized(reference.output / name)
            assert ours == theirs, f"{name}: {first_difference(ours, theirs)}"
        expected = Summary.model_validate_json((reference.output / "summary.json").read_bytes())
        assert summary.accounted and summary.counts == expected.counts
        assert len(summary.jobs) == len(expected.jobs)
        assert_one_job_per_part(emulator, run)
        wait_input_files_deleted(emulator, run)
        if case.failpoints and case.failpoints.startswith("upload.after_finalize"):
            # The file the killed upload made was found by name and size, not made again.
            # (Counted as files made, not upload calls: an upload another thread of the dead
            # worker had half sent made no file and is sent again from its first byte.)
            made = emulator.stats()["responses"]["openai.files.upload 200"]
            assert made == part_count(run)
        assert clean.alive()
