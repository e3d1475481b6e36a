"""Every provider fault the emulator can produce, end to end through a real worker process.

Each test asserts the guarantees (every line once in results, errors or rejected; no request
succeeded twice; exactly one batch job per part) and the fault's specific effect. One
emulator and one worker serve the module (the worker has two API keys, as a pool); each test
resets the emulator, sets its faults and starts its own run. The admission limits need
workers with their own settings and start them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from emulator import EmulatorConfig
from emulator.state import fingerprint as emulator_fingerprint
from shared.apikeys import fingerprint
from tests.chaos.conftest import (
    CHUNK,
    RedisServer,
    Run,
    assert_accounted,
    assert_one_job_per_part,
    chaos_env,
    part_count,
    submit,
    wait_input_files_deleted,
    write_input,
)
from tests.fixtures.emulator import (
    FAST_TIME_SCALE,
    OTHER_KEY,
    TEST_KEY,
    EmulatorHandle,
    running_emulator,
)
from tests.fixtures.services import WorkerProcess, start_worker

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.timeout(180)]

LINES = 400  # 4 shards of <= 100 requests; lines 77 and 203 are rejected
BENCH_SETTINGS = {
    # With SHARDLINE_API_KEY: a pool of two keys, of two projects (as the emulator has them:
    # each key its own). Unlabelled, they would count as one project and share its limits.
    "api_keys": f"other:{OTHER_KEY}",
    "visibility_timeout_seconds": "60",
    "poll_max_seconds": "0.5",
    # No in-process retries (the task retries instead) and a short HTTP timeout: the lease on
    # a create answered 5xx is then 20 s, not the default's 12 minutes.
    "http_timeout_seconds": "5",
    "http_max_retries": "0",
}


def emulator_config(**fields: Any) -> EmulatorConfig:
    values: dict[str, Any] = {
        "api_keys": [TEST_KEY, OTHER_KEY],
        "time_scale": FAST_TIME_SCALE,
        "upload_chunk_granularity": CHUNK,
        "job_expiry_seconds": 600,
    }
    values.update(fields)
    return EmulatorConfig.model_validate(values)


@dataclass
class Bench:
    emulator: EmulatorHandle
    broker: str
    worker: WorkerProcess
    source: Path

    def run(self, tmp_path: Path, faults: dict[str, Any] | None = None, **options: Any) -> Run:
        """Reset the emulator, set ``faults``, run the input through; the finished run."""
        self.emulator.reset()
        self.emulator.set_faults(faults or {})
        run = submit(self.broker, self.source, tmp_path / "out", key=tmp_path.name, **options)
        run.wait_summary(workers=[self.worker])
        return run


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory,
          chaos_redis: RedisServer) -> Iterator[Bench]:
    tmp = tmp_path_factory.mktemp("bench")
    source = tmp / "requests.jsonl"
    write_input(source, LINES)
    chaos_redis.client().flushall()
    with running_emulator(emulator_config()) as emulator:
        env = chaos_env(emulator, tmp, chaos_redis.url(), **BENCH_SETTINGS)
        worker = start_worker(env, tmp / "worker.log")
        try:
            yield Bench(emulator, chaos_redis.url(), worker, source)
        finally:
            worker.stop()


def calls(emulator: EmulatorHandle) -> Counter[str]:
    """Calls per ``"endpoint"`` and per ``"endpoint status"``."""
    stats = emulator.stats()
    return Counter({**stats["requests"], **stats["responses"]})


def check(run: Run, emulator: EmulatorHandle) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The guarantees every test asserts; (results, errors)."""
    outcome = assert_accounted(run, LINES)
    assert_one_job_per_part(emulator, run)
    wait_input_files_deleted(emulator, run)
    return outcome


def attempts(run: Run, shard: int) -> list[Any]:
    return run.store.attempts(shard)


# ---- HTTP faults ------------------------------------------------------------------------


def test_429_with_retry_info_on_create(bench: Bench, tmp_path: Path) -> None:
    faults = {"http": [{"endpoint": "batches.create", "code": 429, "times": 3,
                        "retry_delay_seconds": 1.5}]}
    run = bench.run(tmp_path, faults)
    _results, errors = check(run, bench.emulator)
    seen = calls(bench.emulator)
    assert seen["batches.create 429"] == 3
    assert seen["batches.create 200"] == part_count(run) == 4, "a 429 made no job"
    assert errors == []


def test_5xx_bursts_on_get_upload_and_create(bench: Bench, tmp_path: Path) -> None:
    faults = {"http": [
        {"endpoint": "batches.get", "code": 503, "times": 6},
        {"endpoint": "files.upload.chunk", "code": 500, "times": 3, "skip": 2},
        {"endpoint": "files.upload.start", "code": 502, "times": 2},
        {"endpoint": "batches.create", "code": 503, "times": 2},
        {"endpoint": "files.download", "code": 503, "times": 2},
    ]}
    run = bench.run(tmp_path, faults)
    results, errors = check(run, bench.emulator)
    seen = calls(bench.emulator)
    for endpoint, code, times in [("batches.get", 503, 6), ("files.upload.chunk", 500, 3),
                                  ("files.upload.start", 502, 2), ("batches.create", 503, 2),
                                  ("files.download", 503, 2)]:
        assert seen[f"{endpoint} {code}"] == times, endpoint
    assert errors == [] and len(results) == LINES - 2
    assert part_count(run) == 4


def test_5xx_after_the_job_was_made_is_adopted_not_recreated(
    bench: Bench, tmp_path: Path
) -> None:
    """A create whose answer is lost (the job exists, the answer is a 500)."""
    faults = {"http": [{"endpoint": "batches.create", "code": 500, "times": 2,
                        "apply_after": True}]}
    run = bench.run(tmp_path, faults)
    check(run, bench.emulator)
    seen = calls(bench.emulator)
    assert seen["batches.create 500"] == 2
    assert seen["batches.create"] == part_count(run) == 4, "a lost answer made a second job"


def test_dropped_uploads_resume_from_the_server_offset(bench: Bench, tmp_path: Path) -> None:
    faults = {"drops": [{"endpoint": "files.upload.chunk", "after_bytes": 1000, "times": 3,
                         "skip": 2, "rate": 1.0}]}
    run = bench.run(tmp_path, faults)
    check(run, bench.emulator)
    seen = calls(bench.emulator)
    records = run.store
    sizes = [records.upload(s, a.attempt, p.part).size  # type: ignore[union-attr]
             for s in range(4) for a in records.attempts(s) for p in a.parts]
    whole = sum(math.ceil(size / CHUNK) for size in sizes)
    assert seen["files.upload.start"] == len(sizes), "a dropped upload opened a new session"
    dropped = seen["files.upload.chunk 499"]  # the emulator's code for a client gone mid-body
    assert dropped >= 2, seen  # (a short last chunk arrives whole before the drop point)
    assert seen["files.upload.query"] >= dropped, "the client did not ask where to resume"
    # Bytes the server holds are never sent again: a resend from zero into the same session
    # would be refused as a wrong offset (400), a new session would show as another start,
    # and either would cost more chunk calls than one per drop.
    assert seen["files.upload.chunk 400"] == 0
    assert seen["files.upload.chunk"] <= whole + dropped, seen


# ---- job faults -------------------------------------------------------------------------


def test_failed_job_is_retried_as_a_new_attempt(bench: Bench, tmp_path: Path) -> None:
    faults = {"jobs": [{"display_name_contains": "-s00001-a01-",
                        "fail": {"code": 13, "message": "boom"}}]}
    run = bench.run(tmp_path, faults)
    _results, errors = check(run, bench.emulator)
    assert errors == []
    shard = attempts(run, 1)
    assert [a.reason for a in shard] == ["initial", "retry"]
    assert shard[1].parts[0].requests == shard[0].parts[0].requests
    assert part_count(run) == 5


def test_failed_job_past_max_job_attempts_reports_the_provider_error(
    bench: Bench, tmp_path: Path
) -> None:
    faults = {"jobs": [{"display_name_contains": "-s00001-",
                        "fail": {"code": 13, "message": "boom"}}]}
    run = bench.run(tmp_path, faults, max_job_attempts=2)
    _results, errors = check(run, bench.emulator)
    shard = run.store.plan().shards[1]  # type: ignore[union-attr]
    assert len(errors) == shard.requests
    assert {(e["error"]["code"], e["error"]["message"], e["attempts"]) for e in errors} == {
        (13, "boom", 2)}
    assert len(attempts(run, 1)) == 2
    assert run.summary().state == "partial"  # type: ignore[union-attr]


def test_expired_job_is_resubmitted_in_two_halves(bench: Bench, tmp_path: Path) -> None:
    faults = {"jobs": [{"display_name_contains": "-s00002-a01-", "expire": True}]}
    run = bench.run(tmp_path, faults)
    _results, errors = check(run, bench.emulator)
    assert errors == []
    first, second = attempts(run, 2)
    assert second.reason == "expired"
    sizes = [p.requests for p in second.parts]
    assert len(sizes) == 2 and sum(sizes) == first.parts[0].requests
    assert max(sizes) - min(sizes) <= 1
    expired = [j for j in bench.emulator.jobs() if j["state"] == "BATCH_STATE_EXPIRED"]
    assert [j["displayName"][-15:] for j in expired] == ["s00002-a01-p000"]


def test_ten_percent_503_per_request_are_retried_until_all_succeed(
    bench: Bench, tmp_path: Path
) -> None:
    faults = {"seed": 3, "jobs": [{"display_name_contains": "-a01-", "request_errors": {
        "rate": 0.1, "code": 503, "status": "UNAVAILABLE"}}]}
    run = bench.run(tmp_path, faults)
    results, errors = check(run, bench.emulator)
    assert errors == [] and len(results) == LINES - 2
    retried = [a for s in range(4) for a in attempts(run, s) if a.attempt == 2]
    assert retried and all(a.reason == "retry" for a in retried)
    assert sum(a.parts[0].requests for a in retried) < LINES // 4, "only the failed lines"


def test_ten_percent_400_per_request_are_final_errors(bench: Bench, tmp_path: Path) -> None:
    faults = {"seed": 3, "jobs": [{"request_errors": {
        "rate": 0.1, "code": 400, "status": "INVALID_ARGUMENT", "message": "bad request"}}]}
    run = bench.run(tmp_path, faults)
    _results, errors = check(run, bench.emulator)
    assert 10 <= len(errors) <= 80
    assert {(e["error"]["code"], e["error"]["status"], e["attempts"]) for e in errors} == {
        (400, "INVALID_ARGUMENT", 1)}
    assert part_count(run) == 4, "a final error is not retried"


def test_second_api_key_keeps_each_job_with_the_key_that_made_it(
    bench: Bench, tmp_path: Path
) -> None:
    run = bench.run(tmp_path)
    check(run, bench.emulator)
    records = run.store
    ours = {fingerprint(SecretStr(key)): key for key in (TEST_KEY, OTHER_KEY)}
    theirs = {emulator_fingerprint(key): key for key in (TEST_KEY, OTHER_KEY)}
    owner = {j["name"]: theirs[j["keyFingerprint"]] for j in bench.emulator.jobs()}
    used = set()
    for shard in range(4):
        for attempt in records.attempts(shard):
            for part in attempt.parts:
                upload = records.upload(shard, attempt.attempt, part.part)
                job = records.job(shard, attempt.attempt, part.part)
                assert upload is not None and job is not None and job.job_name is not None
                assert job.key_fingerprint == upload.key_fingerprint
                assert owner[job.job_name] == ours[job.key_fingerprint]
                used.add(ours[job.key_fingerprint])
    assert used == {TEST_KEY, OTHER_KEY}, "the pool spreads parts over both keys"
    # The emulator answers 404 to a key asking for another key's job or file.
    seen = calls(bench.emulator)
    assert not [k for k in seen if k.endswith(" 404") and not k.startswith("files.delete")]
