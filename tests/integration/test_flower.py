"""Operators watch runs in Flower: every task by name, small arguments, never a key.

One run on real parts (Flower, a worker process, Redis, the emulator as a process), with a
distinctive fake API key and JSON logs; the tests then read every Flower endpoint and the
worker's log file.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.fixtures.emulator import EmulatorProcess, start_emulator_process
from tests.fixtures.services import (
    FlowerProcess,
    WorkerProcess,
    pipeline_environment,
    purge_queue,
    start_flower,
    start_worker,
)
from tests.integration.conftest import check_output, wait_summary, write_input

pytestmark = pytest.mark.integration

FAKE_KEY = "AIzaFAKE-flower-9c4e1b7d30a2f56e"
LINES = 300
#: Every task one run goes through (``shardline.cancel`` only runs when asked).
RUN_TASKS = {
    "shardline.start_run", "shardline.plan", "shardline.send_shards", "shardline.upload",
    "shardline.create", "shardline.poll", "shardline.collect", "shardline.merge",
}
SHARD_TASKS = {"shardline.upload", "shardline.create", "shardline.poll", "shardline.collect"}


@dataclass
class ObservedRun:
    run_id: str
    out: Path
    expected: dict[int, str | None]
    flower: FlowerProcess
    worker: WorkerProcess
    worker_name: str


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def worker_name(worker: WorkerProcess) -> str:
    match = re.search(r"(test-[0-9a-f]{8}@\S+) v\d", worker.log())
    assert match, worker.log()
    return match.group(1)


def flower_knows_worker(flower: FlowerProcess, name: str) -> bool:
    """Flower learns of workers from their events: this proves its event stream is live."""
    workers = flower.get("/workers", json=1).json()["data"]
    return any(w["hostname"] == name and w["status"] for w in workers)


def run_tasks(flower: FlowerProcess, run_id: str) -> dict[str, dict[str, Any]]:
    tasks: dict[str, dict[str, Any]] = flower.get("/api/tasks").json()
    return {uuid: t for uuid, t in tasks.items() if run_id in (t.get("args") or "")
            or (t.get("name") == "shardline.start_run" and run_id in (t.get("result") or ""))}


@pytest.fixture(scope="module")
def observed(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedRun]:
    tmp_path = tmp_path_factory.mktemp("flower")
    purge_queue(redis_url)
    emulator: EmulatorProcess = start_emulator_process(
        "--api-key", FAKE_KEY, "--time-scale", "600", api_key=FAKE_KEY
    )
    env = pipeline_environment(
        emulator.handle.base_url, FAKE_KEY, tmp_path, broker=redis_url, log_json="1"
    )
    # Flower gets the worker's whole environment, key included: the worst case.
    flower = start_flower(env, tmp_path / "flower.log")
    worker = start_worker(env, tmp_path / "worker.log")
    client = Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        name = worker_name(worker)
        wait_for("Flower to see the worker", lambda: flower_knows_worker(flower, name))
        source, out = tmp_path / "requests.jsonl", tmp_path / "out"
        expected = write_input(source, LINES)
        spec = {"input_uri": str(source), "output_uri": str(out),
                "options": {"shard_max_requests": 100}}
        started = client.send_task("shardline.start_run", [spec], queue="shardline")
        run_id = started.get(timeout=60)["run_id"]
        wait_summary(out, timeout=120)
        yield ObservedRun(run_id, out, expected, flower, worker, name)
    finally:
        client.close()
        worker.stop()
        flower.stop()
        emulator.stop()


def test_the_run_completes(observed: ObservedRun) -> None:
    summary = check_output(observed.out, observed.expected)
    assert summary.run_id == observed.run_id
    assert summary.shards == 3


def test_flower_lists_every_task_by_name_with_small_arguments(observed: ObservedRun) -> None:
    flower, run_id = observed.flower, observed.run_id

    def merged() -> dict[str, dict[str, Any]] | None:
        tasks = run_tasks(flower, run_id)
        done = any(t["name"] == "shardline.merge" and t["state"] == "SUCCESS"
                   for t in tasks.values())
        return tasks if done else None

    tasks = wait_for("Flower to see the merge succeed", merged)
    assert {t["name"] for t in tasks.values()} == RUN_TASKS
    for task in tasks.values():
        assert task["state"] == "SUCCESS", task
        assert task["worker"] == observed.worker_name
        assert len(task["args"]) < 400, task["args"]
        kwargs = ast.literal_eval(task["kwargs"] or "{}")
        assert all(isinstance(v, int | str | None) for v in kwargs.values()), kwargs
        assert len(task["kwargs"] or "") < 200, kwargs
        assert "contents" not in task["args"], "a request payload in a task's arguments"
    shard_args = {tuple(ast.literal_eval(t["args"])) for t in tasks.values()
                  if t["name"] in SHARD_TASKS}
    # (run_id, output_uri, shard, attempt) for each of the three shards' first attempt.
    assert shard_args == {(run_id, str(observed.out), shard, 1) for shard in range(3)}
    types = flower.get("/api/task/types").json()["task-types"]
    assert set(types) >= RUN_TASKS


def test_no_flower_answer_holds_the_key(observed: ObservedRun) -> None:
    flower, run_id = observed.flower, observed.run_id
    task_ids = list(run_tasks(flower, run_id))
    paths = [
        "/api/tasks", "/api/task/types", "/api/queues/length", "/api/workers?refresh=1",
        "/workers?json=1", "/metrics", "/", "/tasks", "/broker",
        "/tasks/datatable?draw=1&start=0&length=1000&order%5B0%5D%5Bcolumn%5D=0",
        f"/worker/{observed.worker_name}",
    ]
    for task_id in task_ids:
        paths += [f"/api/task/info/{task_id}", f"/api/task/result/{task_id}", f"/task/{task_id}"]
    answers = {path: flower.get(path) for path in paths}
    failed = {path: (a.status_code, a.text[:300]) for path, a in answers.items()
              if a.status_code != 200}
    assert not failed
    for path, answer in answers.items():
        assert FAKE_KEY not in answer.text, f"the API key is in Flower's {path}"
    # The answers are the real thing, not empty pages: the worker and the run are in them.
    workers = answers["/api/workers?refresh=1"].json()
    assert observed.worker_name in workers
    registered = workers[observed.worker_name]["registered"]
    assert RUN_TASKS | {"shardline.cancel"} <= set(registered)
    # Every task has a chosen name, none the module path Celery would make up.
    assert all(name.startswith(("shardline.", "celery.")) for name in registered), registered
    assert 'task="shardline.poll"' in answers["/metrics"].text
    info = answers[f"/api/task/info/{task_ids[0]}"].json()
    assert run_id in json.dumps(info)


def test_worker_logs_are_json_lines_naming_run_shard_and_attempt(observed: ObservedRun) -> None:
    text = observed.worker.log()
    assert FAKE_KEY not in text, "the API key is in the worker's log"
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    task_lines = [e for e in entries if e["task"] and e["task"].startswith("shardline.")]
    assert task_lines, text[-2000:]
    shard_lines = [e for e in task_lines if e["task"] in SHARD_TASKS]
    assert {e["shard"] for e in shard_lines} == {0, 1, 2}
    for entry in shard_lines:
        assert entry["run_id"] == observed.run_id, entry
        assert entry["attempt"] == 1, entry
        assert entry["task_id"], entry
    for entry in task_lines:
        if entry["task"] in {"shardline.plan", "shardline.merge"}:
            assert entry["run_id"] == observed.run_id, entry
    # Celery's own line for each finished task is among them (it carries the ids too).
    succeeded = [e for e in shard_lines if " succeeded in " in e["message"]]
    assert {e["task"] for e in succeeded} == SHARD_TASKS
