"""``shardline submit`` as a system crontab runs it: a child process with cron's bare
environment, no TTY, a real Redis broker. One run and one plan per idempotency key; errors
exit non-zero with one clear line.

Uses its own Redis database (``REDIS_DB`` + 4, flushed before and after), so no worker of
another test consumes the plan messages it counts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import names
from shared.run.registry import run_id_for_key
from shared.run.store import RunStore
from shared.storage import open_storage
from tests.fixtures.services import REDIS_DB

LINE = '{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB + 4}"
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        if os.environ.get("CI"):
            pytest.fail("Redis does not answer on 127.0.0.1:6379")
        pytest.skip("Redis does not answer on 127.0.0.1:6379 (scripts/services.sh starts it)")
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def cron(tmp_path: Path, *args: str, broker_url: str = BROKER) -> subprocess.CompletedProcess[str]:
    """Run ``shardline`` the way cron does: minimal environment, no terminal, cwd = HOME."""
    script = shutil.which("shardline", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "workers"]
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh", "LOGNAME": "cron",
        "SHARDLINE_BROKER_URL": broker_url,
        "SHARDLINE_STATE_URI": str(tmp_path / "state"),
        "SHARDLINE_SECRETS_DIR": "",
        # A CLI with a broker checks the workers' allowlists itself, from the same settings.
        "SHARDLINE_INPUT_PREFIXES": str(tmp_path),
        "SHARDLINE_OUTPUT_PREFIXES": str(tmp_path),
    }
    return subprocess.run(
        [*command, *args], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, check=False,
    )


def plans(client: redis.Redis) -> list[list[str]]:
    """The arguments of every plan message waiting on the queue."""
    found = []
    for raw in client.lrange(names.QUEUE, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == names.TASK_PLAN
        found.append(message["headers"]["argsrepr"])
    return found


def test_the_same_key_twice_is_one_run_and_one_plan(tmp_path: Path, broker: redis.Redis) -> None:
    source = tmp_path / "requests.jsonl"
    source.write_text(LINE)
    out = tmp_path / "out"
    submit = ("submit", str(source), "--out", str(out), "--idempotency-key", "nightly-2026-11-26")

    first, second = cron(tmp_path, *submit), cron(tmp_path, *submit)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    run_id = run_id_for_key("nightly-2026-11-26")
    assert first.stdout == second.stdout == f"{run_id}\n"
    assert broker.llen(names.QUEUE) == 1
    [args] = plans(broker)
    assert run_id in args and str(out) in args
    assert RunStore(open_storage(str(out))).manifest().run_id == run_id


def test_a_missing_input_exits_non_zero_naming_it(tmp_path: Path, broker: redis.Redis) -> None:
    missing = tmp_path / "in" / "2026-11-26.jsonl"
    result = cron(tmp_path, "submit", str(missing), "--out", str(tmp_path / "out"),
                  "--idempotency-key", "nightly-2026-11-26")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"shardline: {missing}: no such file or object"
    assert broker.llen(names.QUEUE) == 0
    assert not (tmp_path / "state").exists() or not list((tmp_path / "state").rglob("*.json"))


def test_a_location_outside_the_prefixes_exits_2_with_one_line(tmp_path: Path,
                                                               broker: redis.Redis) -> None:
    result = cron(tmp_path, "submit", "/etc/passwd", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "shardline: input_uri /etc/passwd: a protected location (system files, secrets, "
        "Shardline's state or installation) no setting allows")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.jsonl"
    elsewhere.write_text(LINE)
    result = cron(tmp_path, "submit", str(elsewhere), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "SHARDLINE_INPUT_PREFIXES" in result.stderr
    assert broker.llen(names.QUEUE) == 0 and not (tmp_path / "out").exists()


def test_a_broker_outage_fails_clearly_and_the_next_cron_run_sends_the_plan(
    tmp_path: Path, broker: redis.Redis
) -> None:
    source = tmp_path / "requests.jsonl"
    source.write_text(LINE)
    submit = ("submit", str(source), "--out", str(tmp_path / "out"),
              "--idempotency-key", "nightly-2026-11-26")

    failed = cron(tmp_path, *submit, broker_url=DOWN)
    assert failed.returncode != 0
    assert failed.stderr.startswith("shardline: cannot reach the broker"), failed.stderr
    assert "Traceback" not in failed.stderr

    retried = cron(tmp_path, *submit)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"{run_id_for_key('nightly-2026-11-26')}\n"
    assert broker.llen(names.QUEUE) == 1, "the run claimed during the outage was never planned"
