"""Commands that cannot work say so in one line, with the right exit code, before doing
anything: no API key, invalid settings, an invalid option, a reader that went away, a broker
that cannot be reached. Every case runs the real command in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import names
from tests.fixtures.services import REDIS_DB, REPO

LINE = '{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'
SECRET = "SLKEY-other-tenant-secret"
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"  # the suite's own database
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _command(*args: str) -> list[str]:
    script = shutil.which("shardline", path=str(Path(sys.executable).parent))
    return [script, *args] if script else [sys.executable, "-m", "workers", *args]


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SHARDLINE_", "GEMINI_"))}
    return {**base, "SHARDLINE_STATE_URI": str(tmp_path / "state"),
            "SHARDLINE_SECRETS_DIR": "", **values}


def shardline(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), env=_env(tmp_path, **env), cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120, check=False)


def celery_worker(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-l", "info",
               "-Q", "shardline", "--pool", "threads", "-c", "1", "--without-mingle",
               "--without-gossip"]
    try:
        return subprocess.run(command, env=_env(tmp_path, SHARDLINE_BROKER_URL=DOWN, **env),
                              cwd=REPO, capture_output=True, text=True, timeout=60,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker did not refuse to start: {exc.stdout!r} {exc.stderr!r}")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text(LINE)
    return path


def test_run_without_a_key_exits_2_in_one_line_before_doing_anything(
    tmp_path: Path, source: Path
) -> None:
    result = shardline(tmp_path, "run", str(source), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("shardline: no API key: set SHARDLINE_API_KEY")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()


def test_a_worker_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    result = celery_worker(tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("shardline: no API key")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ready" not in result.stdout + result.stderr


@pytest.mark.parametrize("bad", [
    {"SHARDLINE_POLL_MAX_SECONDS": "9999"},       # a rule between fields (input: every field)
    {"SHARDLINE_POLL_MAX_SECONDS": "abc"},        # one field
    {"SHARDLINE_MAX_SHARDS": "0"},
])
def test_invalid_settings_are_one_line_naming_fields_never_values(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    env = {"SHARDLINE_API_KEYS": SECRET, **bad}
    for result in (shardline(tmp_path, "list", **env), celery_worker(tmp_path, **env)):
        assert result.returncode == 2
        assert result.stderr.startswith("shardline: invalid settings: ")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "poll_max_seconds" in result.stderr.lower() or "MAX_SHARDS" in result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "input_value" not in result.stderr and "Traceback" not in result.stderr


def test_an_option_out_of_range_is_one_line_naming_the_switch(
    tmp_path: Path, source: Path
) -> None:
    result = shardline(tmp_path, "run", str(source), "--out", str(tmp_path / "out"),
                       "--shard-max-bytes", "3GB", SHARDLINE_API_KEY="k")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "shardline: invalid options: --shard-max-bytes: Input should be less than or equal "
        "to 2147483648"
    )


def test_a_reader_that_goes_away_is_no_error(tmp_path: Path) -> None:
    """``shardline schema | head -1``: the pipe closes before the output is written."""
    child = subprocess.Popen(_command("schema"), env=_env(tmp_path), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(60) == 0, stderr
    assert stderr == ""


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(BROKER)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_submit_to_an_unreachable_broker_prints_the_run_and_how_to_send_it(
    tmp_path: Path, source: Path, broker: redis.Redis
) -> None:
    out = tmp_path / "out"
    allowed = {"SHARDLINE_INPUT_PREFIXES": str(tmp_path),
               "SHARDLINE_OUTPUT_PREFIXES": str(tmp_path)}
    failed = shardline(tmp_path, "submit", str(source), "--out", str(out),
                       SHARDLINE_BROKER_URL=DOWN, **allowed)
    assert failed.returncode == 4
    run_id = failed.stdout.strip()
    assert run_id and f"shardline resume {run_id} --detach" in failed.stderr
    assert "Traceback" not in failed.stderr

    sent = shardline(tmp_path, "resume", run_id, "--detach", SHARDLINE_BROKER_URL=BROKER,
                     **allowed)
    assert sent.returncode == 0, sent.stderr
    [message] = [json.loads(raw) for raw in broker.lrange(names.QUEUE, 0, -1)]
    assert message["headers"]["task"] == names.TASK_PLAN
    assert run_id in message["headers"]["argsrepr"]
