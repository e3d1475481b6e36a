"""SIGKILL the worker at every stage boundary (and at random moments); the run still ends
with the same bytes as a clean run, and with exactly one batch job per part.

Each case: a worker armed with one failpoint takes the run until it kills itself there; a
clean worker starts right away, and the run must finish within ``RECOVERY_BOUND`` of it on
the shipped visibility timeout: the deadline check restarts what the dead worker held (its
running task's lease lapses, the countdowns it held go overdue), nothing is redelivered. The run's
``results.jsonl``, ``errors.jsonl`` and ``rejected.jsonl`` must equal a clean reference
run's byte for byte (``responseId`` aside: the emulator derives it from the job's random id).

The emulator's faults are part of the input: shard 1's first job FAILS, shard 2's first job
EXPIRES (so attempt 2 comes in two parts), 10 % of first-attempt requests answer 503
(retried) and 10 % of second-attempt requests answer 400 (final errors with attempts=2).
All of it is decided by a seeded hash of the display name and the request key, and the
display names are the same in every case because the run id comes from the idempotency key;
so the reference and every crashed run meet exactly the same faults.
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
from shared.pipeline.progress import read_progress
from shared.run.store import Summary
from tests.chaos.conftest import (
    CHUNK,
    OUTPUTS,
    RECOVERY_BOUND,
    WORKER_THREADS,
    RedisServer,
    Run,
    Workers,
    assert_one_job_per_part,
    chaos_env,
    default_env,
    full_only,
    normalized,
    submit,
    wait_input_files_deleted,
    wait_killed,
    write_input,
)
from tests.fixtures.emulator import FAST_TIME_SCALE, OTHER_KEY, TEST_KEY, running_emulator
from tests.fixtures.services import start_worker

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(240)]

#: Short HTTP timeout, no in-process retries: a create killed in flight is retried after a
#: lease of 20 s (5 s + margin) instead of the default's 12 minutes.
LEASE = {"http_timeout_seconds": "5", "http_max_retries": "0"}
LINES = 400  # 398 accepted in 4 shards of <= 100, 2 rejected (a bad line, a duplicate key)
FAULTS = FaultConfig.model_validate({
    "seed": 11,
    "jobs": [
        {"display_name_contains": "-s00001-a01-", "fail": {"code": 13, "message": "boom"}},
        {"display_name_contains": "-s00002-a01-", "expire": True},
        {"display_name_contains": "-a01-", "request_errors": {
            "rate": 0.1, "code": 503, "status": "UNAVAILABLE", "message": "overloaded"}},
        {"display_name_contains": "-a02-", "request_errors": {
            "rate": 0.1, "code": 400, "status": "INVALID_ARGUMENT", "message": "bad"}},
    ],
})


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        api_keys=[TEST_KEY, OTHER_KEY],
        time_scale=FAST_TIME_SCALE,
        upload_chunk_granularity=CHUNK,
        job_expiry_seconds=600,  # an expiring job ends after 0.5 s of real time
        faults=FAULTS,
    )


@dataclass
class Reference:
    output: Path
    source: Path
    seconds: float
    chunks: int


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, chaos_redis) -> Iterator[Reference]:
    """One clean run of the same input against the same faults."""
    tmp = tmp_path_factory.mktemp("reference")
    source = tmp / "requests.jsonl"
    write_input(source, LINES)
    chaos_redis.client().flushall()
    with ExitStack() as stack:
        emulator = stack.enter_context(running_emulator(emulator_config()))
        env = chaos_env(emulator, tmp, chaos_redis.url(), **LEASE)
        worker = start_worker(env, tmp / "worker.log")
        stack.callback(worker.stop)
        started = time.monotonic()
        run = submit(chaos_redis.url(), source, tmp / "out")
        summary = run.wait_summary(workers=[worker])
        seconds = time.monotonic() - started
        jobs = assert_one_job_per_part(emulator, run)
        chunks = emulator.stats()["requests"].get("files.upload.chunk", 0)
    assert summary.accounted and summary.counts.rejected == 2
    # Nothing died: every message arrived as its lease expected it (also the next attempt's
    # chain a collect replaced itself with), so nothing stepped aside or was restarted.
    log = worker.log_path.read_text()
    assert "steps aside" not in log and "restarting from its records" not in log, log[-3000:]
    assert summary.counts.errors > 0 and summary.counts.results > 0
    assert len(jobs) >= 8, "the faults should have made second attempts, one in two parts"
    yield Reference(tmp / "out", source, seconds, chunks)


@dataclass(frozen=True)
class Case:
    failpoints: str | None = None
    kills: int = 0  # random-moment SIGKILLs when no failpoint is armed
    seed: int = 0
    lose_unacked: bool = False  # the dead worker's messages are lost, not redelivered
    defaults: bool = False  # no setting shortened at all


CASES = [
    # The default subset crashes every stage once.
    pytest.param(Case("plan.mid_pass=kill@150"), id="plan.mid_pass"),
    pytest.param(Case("upload.after_chunk=kill@3"), id="upload.after_chunk"),
    pytest.param(Case("create.after_call=kill@2"), id="create.after_call"),
    pytest.param(Case("poll.after_get=kill@3"), id="poll.after_get"),
    pytest.param(Case("collect.after_staging=kill"), id="collect.after_staging"),
    pytest.param(Case("merge.mid_concat=kill@2"), id="merge.mid_concat"),
    pytest.param(Case("merge.after_summary=kill"), id="merge.after_summary"),
    # The rest of the matrix.
    full_only(Case("plan.after_shards=kill"), id="plan.after_shards"),
    full_only(Case("plan.after_record=kill"), id="plan.after_record"),
    full_only(Case("upload.after_session=kill@2"), id="upload.after_session"),
    full_only(Case("upload.after_finalize=kill@3"), id="upload.after_finalize"),
    full_only(Case("create.after_intent=kill@2"), id="create.after_intent"),
    full_only(Case("collect.mid_download=kill"), id="collect.mid_download"),
    full_only(Case("collect.after_download=kill@2"), id="collect.after_download"),
    full_only(Case("collect.after_parts=kill"), id="collect.after_parts"),
    full_only(Case("finish.after_results=kill@2"), id="finish.after_results"),
    full_only(Case("merge.after_results=kill"), id="merge.after_results"),
    full_only(Case("poll.after_get=kill@1;collect.mid_download=kill@1"), id="first-of-two"),
    # The dead worker's messages are gone for good (as after a kill between kombu's BRPOP
    # and its unacked record): the deadline check alone moves the run on.
    pytest.param(Case("poll.after_get=kill@2", lose_unacked=True), id="lost-messages"),
    # Every setting at its shipped default: lease 60 s, grace 60 s, check every 20 s, polls
    # from 10 s, visibility timeout 600 s.
    pytest.param(Case("poll.after_get=kill@3", defaults=True), id="all-defaults"),
    pytest.param(Case(kills=1, seed=1), id="random-1"),
    full_only(Case(kills=1, seed=2), id="random-2"),
    full_only(Case(kills=1, seed=3), id="random-3"),
    full_only(Case(kills=1, seed=4), id="random-4"),
    full_only(Case(kills=1, seed=5), id="random-5"),
    full_only(Case(kills=3, seed=6), id="random-3-kills"),
    # The acceptance: six SIGKILLs at random moments, then a clean worker.
    full_only(Case(kills=6, seed=7), id="random-6-kills"),
]


@pytest.mark.parametrize("case", CASES)
def test_crash_and_restart_matches_a_clean_run(
    case: Case, reference: Reference, broker: str, workers: Workers, tmp_path: Path,
    chaos_redis: RedisServer,
) -> None:
    with running_emulator(emulator_config()) as emulator:
        env = (default_env(emulator, tmp_path, broker) if case.defaults
               else chaos_env(emulator, tmp_path, broker, **LEASE))
        run: Run | None = None
        if case.failpoints:
            armed = workers.start(env, case.failpoints)
            run = submit(broker, reference.source, tmp_path / "out")
            wait_killed(armed, run)
            if case.lose_unacked:
                chaos_redis.client().delete("unacked", "unacked_index")
        else:
            rng = random.Random(case.seed)
            for kill in range(case.kills):
                victim = workers.start(env)
                if run is None:
                    run = submit(broker, reference.source, tmp_path / "out")
                # The first anywhere in a clean run's time; later ones soon after the
                # restart, while the redelivered work is under way.
                time.sleep(rng.uniform(0.2, 0.7 * reference.seconds if kill == 0 else 2.0))
                stage = _stage(run)
                victim.kill()
                print(f"random kill {case.seed}: SIGKILL while {stage}")
        assert run is not None
        clean = workers.start(env)
        summary = run.wait_summary(timeout=RECOVERY_BOUND, workers=workers.started)

        for name in OUTPUTS:
            assert normalized(run.output / name) == normalized(reference.output / name), name
        expected = Summary.model_validate_json((reference.output / "summary.json").read_bytes())
        assert summary.accounted
        assert summary.counts == expected.counts
        assert len(summary.jobs) == len(expected.jobs)
        assert_one_job_per_part(emulator, run)
        wait_input_files_deleted(emulator, run)
        if case.failpoints and case.failpoints.startswith("upload.after_chunk"):
            _assert_upload_resumed(emulator, reference)
        assert clean.alive()
        failed = [line for line in clean.log().splitlines()
                  if "shardline.reconcile[" in line and "raised unexpected" in line]
        assert not failed, failed[0]


def _assert_upload_resumed(emulator, reference: Reference) -> None:  # type: ignore[no-untyped-def]
    """The interrupted upload went on from the server's offset, and the session was asked
    where it stood instead of a new one being opened.

    The kill lands after one thread's chunk; another thread may be half way through its own
    chunk then. The server keeps the bytes that arrived and the resumed upload sends the rest
    in a request of its own, so each such thread adds one chunk request, no more (an upload
    started again from zero would add several).
    """
    stats = emulator.stats()["requests"]
    assert stats.get("files.upload.query", 0) >= 1
    sent = stats.get("files.upload.chunk", 0)
    assert reference.chunks <= sent <= reference.chunks + WORKER_THREADS - 1


def _stage(run: Run) -> str:
    """Where the run is, for the log of a random kill."""
    try:
        progress = read_progress(run.store)
    except Exception as exc:
        return f"starting ({type(exc).__name__})"
    return f"{progress.state}, jobs {progress.jobs}, {progress.shards_final} shards final"
