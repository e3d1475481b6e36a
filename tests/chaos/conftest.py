"""Real parts for breaking things on purpose: a private Redis, worker processes, the emulator.

- A private ``redis-server`` (free port, no persistence) per session, flushed before every
  test: chaos tests flush, restart and crash things, so they never share the suite's Redis
  (127.0.0.1:6379) with other tests or other people.
- Workers are real ``celery -A workers worker`` processes (``tests/fixtures/services``);
  ``SHARDLINE_FAILPOINTS`` arms a crash point in one (see :mod:`shared.failpoints`).
- Runs are started through the public contract (``send_task("shardline.start_run")``)
  with an idempotency key, so a run's id, and with it every display name and every seeded
  fault decision of the emulator, is the same in a clean run and in a crashed one.
- Redelivery: a SIGKILLed worker's unacknowledged messages (the task it ran, the countdown
  tasks it held) go back to the queue once they are older than the visibility timeout; kombu
  checks when a worker starts, and then only every ~100 s. So a test waits
  :data:`VISIBILITY_TIMEOUT` after a kill before it starts the next worker.
- A message can still be lost: kombu's Redis transport BRPOPs it off the queue and only then
  records it as unacknowledged, so a SIGKILL between the two loses it (seen: a shard's poll
  after a crash at ``poll.after_get``). The backstop is beat's reconciler, which restarts
  the chain of a shard idle for longer than the visibility timeout + 2 polls + 60 s; tests
  that kill workers play beat (``wait_summary(reconcile_via=...)``).

The full crash matrix runs with ``SHARDLINE_CHAOS_FULL=1``; by default a subset that still
crashes every stage once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from shared import names
from shared.run import layout
from shared.run.registry import run_id_for_key
from shared.run.spec import RunOptions, RunSpec
from shared.run.store import RunStore, Summary
from shared.storage import open_storage
from tests.fixtures.emulator import EmulatorHandle, free_port
from tests.fixtures.services import WorkerProcess, pipeline_environment, start_worker

#: Threads of each chaos worker process.
WORKER_THREADS = 4
FULL = os.environ.get("SHARDLINE_CHAOS_FULL", "") not in ("", "0")
#: Seconds an unacknowledged message stays with its (dead) worker before redelivery.
VISIBILITY_TIMEOUT = 4
#: Upload chunk granularity of the emulator and chunk size of the workers: small, so that a
#: shard of a few kB is uploaded in several chunks.
CHUNK = 4096
RUN_TIMEOUT = 150.0
#: How often a test plays beat and sends ``shardline.reconcile``.
RECONCILE_EVERY = 5.0

_RESPONSE_ID = re.compile(rb'"responseId":"[^"]*"')


def full_only(*values: Any, id: str) -> Any:
    """A parameter that runs only in the full matrix."""
    marks = [] if FULL else [pytest.mark.skip(reason="full chaos matrix: SHARDLINE_CHAOS_FULL=1")]
    return pytest.param(*values, id=id, marks=marks)


# ---- Redis ---------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A ``redis-server`` of our own: started, stopped and restarted at will."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (scripts/services.sh installs it)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGKILL: the data goes with it (no persistence), as a crashed broker loses it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def chaos_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("chaos-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker(chaos_redis: RedisServer) -> str:
    """The private Redis, emptied: no message or admission key of an earlier test left."""
    if chaos_redis.process is None or chaos_redis.process.poll() is not None:
        chaos_redis.start()
    chaos_redis.client().flushall()
    return chaos_redis.url()


# ---- input, runs and outputs ----------------------------------------------------------


def write_input(path: Path, lines: int) -> None:
    """Keyed lines with metadata, bare requests, a bad line and a duplicate key."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, lines + 1):
            request = {"contents": [{"parts": [{"text": f"question {n} — ünïcode"}]}]}
            if n == 77:
                out.write('{"key": "bad", "request": \n')
            elif n == 203:
                out.write(f'{{"key": "k-5", "request": {_json(request)}}}\n')
            elif n % 10 == 4:
                out.write(_json(request) + "\n")
            else:
                out.write(_json({"key": f"k-{n}", "request": request, "doc": n}) + "\n")


def expected_keys(lines: int) -> dict[int, str | None]:
    """What :func:`write_input` wrote: line → key, None for a line that must be rejected."""
    return {
        n: None if n in (77, 203) else (f"line-{n}" if n % 10 == 4 else f"k-{n}")
        for n in range(1, lines + 1)
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    with path.open("rb") as handle:
        return [json.loads(line) for line in handle]


def assert_accounted(run: Run, lines: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every input line in exactly one of results, errors, rejected; none succeeded twice;
    outputs in input order; counts in the summary agree. Returns (results, errors)."""
    expected = expected_keys(lines)
    results = read_jsonl(run.output / layout.RESULTS)
    errors = read_jsonl(run.output / layout.ERRORS)
    rejected = read_jsonl(run.output / layout.REJECTED)
    line_of = {key: n for n, key in expected.items() if key is not None}
    ok = [r["key"] for r in results]
    failed = [e["key"] for e in errors]
    assert len(set(ok)) == len(ok), "a request succeeded twice"
    assert len(set(failed)) == len(failed), "a request failed twice"
    assert not set(ok) & set(failed), "a request is in results and in errors"
    assert set(ok) | set(failed) == set(line_of)
    assert {r["line"] for r in rejected} == {n for n, k in expected.items() if k is None}
    assert [line_of[k] for k in ok] == sorted(line_of[k] for k in ok)
    assert [line_of[k] for k in failed] == sorted(line_of[k] for k in failed)
    summary = run.summary()
    assert summary is not None and summary.accounted
    assert (summary.counts.lines, summary.counts.results, summary.counts.errors,
            summary.counts.rejected) == (lines, len(results), len(errors), len(rejected))
    return results, errors


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


@dataclass
class Run:
    """One run started through ``shardline.start_run``; where it writes."""

    run_id: str
    output: Path
    spec: RunSpec

    @property
    def store(self) -> RunStore:
        return RunStore(open_storage(str(self.output)))

    def summary(self) -> Summary | None:
        return self.store.summary()

    def wait_summary(self, timeout: float = RUN_TIMEOUT,
                     workers: list[WorkerProcess] | None = None,
                     reconcile_via: str | None = None) -> Summary:
        """Wait for the run's summary; with ``reconcile_via`` (a broker URL), send
        ``shardline.reconcile`` every few seconds meanwhile, as beat does."""
        deadline = time.monotonic() + timeout
        client = (
            Celery("chaos-beat", broker=reconcile_via, set_as_current=False)
            if reconcile_via else None
        )
        next_tick = time.monotonic()
        try:
            while time.monotonic() < deadline:
                summary = self.summary()
                if summary is not None:
                    return summary
                if client is not None and time.monotonic() >= next_tick:
                    client.send_task(names.TASK_RECONCILE, queue=names.QUEUE)
                    next_tick = time.monotonic() + RECONCILE_EVERY
                time.sleep(0.2)
        finally:
            if client is not None:
                client.close()
        logs = "\n".join(w.log()[-4000:] for w in workers or [])
        raise AssertionError(f"no summary in {self.output} after {timeout} s\n{logs}")


def submit(broker_url: str, source: Path, output: Path, *, key: str = "chaos",
           shard_max_requests: int = 100, **options: Any) -> Run:
    """Start a run the way other services do: ``send_task`` by name, the spec as payload."""
    spec = RunSpec(
        input_uri=str(source),
        output_uri=str(output),
        idempotency_key=key,
        options=RunOptions(shard_max_requests=shard_max_requests, **options),
    )
    client = Celery("chaos-client", broker=broker_url, set_as_current=False)
    try:
        client.send_task(names.TASK_START_RUN, args=[spec.model_dump(mode="json")],
                         queue=names.QUEUE)
    finally:
        client.close()
    return Run(run_id_for_key(key), output, spec)


def normalized(path: Path) -> bytes:
    """The file's bytes with ``responseId`` blanked: the emulator derives it from the job's
    random id, the only part of a response that is not a function of the request."""
    return _RESPONSE_ID.sub(b'"responseId":"-"', path.read_bytes())


OUTPUTS = (layout.RESULTS, layout.ERRORS, layout.REJECTED)


def part_count(run: Run) -> int:
    """How many parts (each one batch job) the run's records hold, over every attempt."""
    records = run.store
    plan = records.plan()
    assert plan is not None
    return sum(len(a.parts) for s in plan.shards for a in records.attempts(s.index))


def run_jobs(emulator: EmulatorHandle, run: Run) -> list[dict[str, Any]]:
    prefix = f"shardline-{run.run_id}-"
    return [j for j in emulator.jobs() if (j["displayName"] or "").startswith(prefix)]


def assert_one_job_per_part(emulator: EmulatorHandle, run: Run) -> list[dict[str, Any]]:
    """The emulator holds exactly one job per part the records name, and that job."""
    jobs = run_jobs(emulator, run)
    display = [j["displayName"] for j in jobs]
    assert len(display) == len(set(display)), f"a part was created twice: {sorted(display)}"
    assert len(jobs) == part_count(run), "jobs at the provider != parts in the records"
    recorded = set()
    records = run.store
    plan = records.plan()
    assert plan is not None
    for shard in plan.shards:
        for attempt in records.attempts(shard.index):
            for part in attempt.parts:
                job = records.job(shard.index, attempt.attempt, part.part)
                assert job is not None and job.job_name is not None
                recorded.add(job.job_name)
    assert recorded == {j["name"] for j in jobs}
    return jobs


def wait_input_files_deleted(emulator: EmulatorHandle, run: Run, timeout: float = 30.0) -> None:
    """The run's uploaded inputs are deleted after the merge (the 20 GB quota is freed)."""
    prefix = f"shardline-{run.run_id}-"
    deadline = time.monotonic() + timeout
    while True:
        left = [f["name"] for f in emulator.files()
                if f["source"] == "UPLOADED" and (f["displayName"] or "").startswith(prefix)]
        if not left:
            return
        assert time.monotonic() < deadline, f"uploaded input files never deleted: {left}"
        time.sleep(0.2)


# ---- workers --------------------------------------------------------------------------


def chaos_env(emulator: EmulatorHandle, tmp_path: Path, broker_url: str,
              **overrides: str) -> dict[str, str]:
    return pipeline_environment(
        emulator.base_url, emulator.api_key, tmp_path, broker=broker_url,
        **{
            "visibility_timeout_seconds": str(VISIBILITY_TIMEOUT),
            "poll_initial_seconds": "0.2",
            "poll_max_seconds": "1.0",
            "upload_chunk_bytes": str(CHUNK),
            # Module-wide workers and the session's reference input serve several tests:
            # allow the session's whole folder (every test's folder is a child of it).
            "input_prefixes": str(tmp_path.parent),
            "output_prefixes": str(tmp_path.parent),
            **overrides,
        },
    )


@dataclass
class Workers:
    """Starts worker processes for one test and stops (or kills) them all after it."""

    tmp_path: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, env: dict[str, str], failpoints: str | None = None) -> WorkerProcess:
        env = dict(env)
        if failpoints:
            env["SHARDLINE_FAILPOINTS"] = failpoints
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        worker = start_worker(env, log, concurrency=WORKER_THREADS)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            worker.stop(timeout=10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    yield pool
    pool.close()


def wait_redelivery(killed_at: float) -> None:
    """Sleep until a message the dead worker held is old enough to be redelivered."""
    time.sleep(max(0.0, killed_at + VISIBILITY_TIMEOUT + 0.5 - time.monotonic()))


def wait_killed(worker: WorkerProcess, run: Run, timeout: float = 90.0) -> float:
    """Wait for the armed worker to die by SIGKILL; the moment it did."""
    deadline = time.monotonic() + timeout
    while worker.alive():
        if run.summary() is not None and worker.alive():
            time.sleep(1.0)  # a point after the summary may still fire
            if worker.alive():
                pytest.fail(f"the failpoint never fired:\n{worker.log()[-3000:]}")
        assert time.monotonic() < deadline, f"worker still alive:\n{worker.log()[-3000:]}"
        time.sleep(0.05)
    assert worker.process.returncode == -signal.SIGKILL, worker.log()[-3000:]
    return time.monotonic()


Factory = Callable[..., EmulatorHandle]
