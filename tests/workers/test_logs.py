"""Worker logs: the task's ids on every line it logs, JSON when asked, and no key, ever."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from shared.settings import Settings
from workers import logs
from workers.logs import REDACTED, TaskFields, bound, current_fields, instrument, task_fields

REPO = Path(__file__).resolve().parents[2]
KEY = "AIzaFAKE-primary-5d1e0c9b7a"
POOL_KEY = "AIzaFAKE-pool-42f6e8a1c3"


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    """A throwaway app whose tasks have Shardline's parameter names (eager, in memory)."""
    app = Celery("test-logs", broker="memory://", backend="cache+memory://",
                 set_as_current=False)
    app.conf.task_always_eager = True
    yield app
    app.close()


def settings(**overrides: object) -> Settings:
    return Settings(api_key=KEY, api_keys=[POOL_KEY], **overrides)  # type: ignore[arg-type]


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own with one handler writing to a string."""
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def test_ids_are_found_by_parameter_name(celery_app: Celery) -> None:
    @celery_app.task(bind=True, name="shardline.upload")
    def upload(self, run_id: str, output_uri: str, shard: int, attempt: int,
               failures: int = 0) -> None: ...

    @celery_app.task(bind=True, name="shardline.start_run")
    def start_run(self, spec: dict) -> None: ...

    @celery_app.task(name="other.task")
    def other(x: int) -> None: ...

    assert task_fields(upload, "t1", ("r1", "/out", 3, 2), {"failures": 1}) == TaskFields(
        task="shardline.upload", task_id="t1", run_id="r1", shard=3, attempt=2)
    assert task_fields(upload, "t2", ("r1",), {"output_uri": "/o", "shard": 0, "attempt": 1}) \
        == TaskFields(task="shardline.upload", task_id="t2", run_id="r1", shard=0, attempt=1)
    assert task_fields(start_run, "t3", ({"input_uri": "x"},), {}) == TaskFields(
        task="shardline.start_run", task_id="t3")
    assert task_fields(other, "t4", (1, 2, 3), {}) == TaskFields(task="other.task", task_id="t4")
    assert task_fields(upload, "t5", (7, "/out", "x", None), {}) == TaskFields(
        task="shardline.upload", task_id="t5")


def test_the_ids_are_bound_while_the_task_runs_only(celery_app: Celery) -> None:
    logs.connect(Settings)
    seen: list[TaskFields | None] = []

    @celery_app.task(bind=True, name="shardline.poll")
    def poll(self, run_id: str, output_uri: str, shard: int, attempt: int) -> None:
        seen.append(current_fields())

    result = poll.apply(args=("run-7", "/out", 4, 2))

    assert seen == [TaskFields(task="shardline.poll", task_id=result.id, run_id="run-7",
                               shard=4, attempt=2)]
    assert current_fields() is None


def test_json_lines_carry_the_ids(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    instrument(logger, settings(log_json=True))

    with bound(TaskFields(task="shardline.collect", task_id="t1", run_id="r1", shard=2,
                          attempt=3)):
        logger.info("collected %d lines", 10)
    logger.warning("outside")

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "collected 10 lines"
    assert (inside["level"], inside["logger"]) == ("INFO", logger.name)
    assert {k: inside[k] for k in logs.FIELDS} == {
        "task": "shardline.collect", "task_id": "t1", "run_id": "r1", "shard": 2, "attempt": 3}
    assert {k: outside[k] for k in logs.FIELDS} == dict.fromkeys(logs.FIELDS)


def test_text_lines_end_with_the_ids(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    instrument(logger, settings())

    with bound(TaskFields(task="shardline.poll", run_id="r1", shard=0, attempt=1)):
        logger.info("polled")
    with bound(TaskFields(task="shardline.merge", run_id="r1")):
        logger.info("merged")
    logger.info("idle")

    assert stream.getvalue().splitlines() == [
        "INFO polled [run=r1 shard=0 attempt=1]", "INFO merged [run=r1]", "INFO idle"]


@pytest.mark.parametrize("log_json", [True, False])
def test_no_key_survives_in_message_arguments_or_traceback(
    capture: tuple[logging.Logger, io.StringIO], log_json: bool
) -> None:
    logger, stream = capture
    instrument(logger, settings(log_json=log_json))

    logger.info("key %s and %r", KEY, {"pool": POOL_KEY})
    logger.info(f"inline {KEY}")
    try:
        raise RuntimeError(f"the server said: bad key {POOL_KEY}")
    except RuntimeError:
        logger.exception("call failed")
    logger.info("stack", stack_info=True)

    text = stream.getvalue()
    assert KEY not in text and POOL_KEY not in text
    assert text.count(REDACTED) == 4
    assert "the server said: bad key" in text  # the rest of the traceback is kept


def test_instrumenting_twice_adds_nothing(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    instrument(logger, settings(log_json=True))
    instrument(logger, settings(log_json=True))

    (handler,) = [h for h in logger.handlers if getattr(h, "stream", None) is stream]
    assert len(handler.filters) == 2
    logger.info("once")
    assert len(stream.getvalue().splitlines()) == 1


def test_a_malformed_call_reaches_the_handler_unharmed(
    capture: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, stream = capture
    instrument(logger, settings())
    monkeypatch.setattr(logging, "raiseExceptions", False)  # no "--- Logging error ---"

    logger.info("%d lines", "not a number")  # the formatter's error, not the filter's
    logger.info("after")

    assert stream.getvalue().splitlines() == ["INFO after"]


_CELERY_PROCESS = """
import logging
from workers.app import app
app.log.setup(loglevel="INFO")
log = logging.getLogger("shardline.tasks")
log.info("key %s", {key!r})
try:
    raise RuntimeError("bad key " + {key!r})
except RuntimeError:
    log.exception("failed")
"""


@pytest.mark.parametrize("log_json", ["1", "0"])
def test_celery_logging_set_up_by_the_app_redacts_keys(log_json: str) -> None:
    """What ``celery -A workers worker`` does first: the app's signal wiring is live."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARDLINE_")}
    env.update(SHARDLINE_API_KEY=KEY, SHARDLINE_LOG_JSON=log_json, SHARDLINE_SECRETS_DIR="")
    done = subprocess.run(
        [sys.executable, "-c", _CELERY_PROCESS.format(key=KEY)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )

    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert KEY not in done.stderr + done.stdout
    assert f"key {REDACTED}" in done.stderr and f"bad key {REDACTED}" in done.stderr
    if log_json == "1":
        first = json.loads(lines[0])
        assert first["logger"] == "shardline.tasks" and first["message"] == f"key {REDACTED}"
    else:
        assert lines[0].endswith(f"key {REDACTED}")
