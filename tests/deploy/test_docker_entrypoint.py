"""deploy/docker-entrypoint.sh, run by the real /bin/sh: secrets file, Flower guard, exec."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy._deploy import DEPLOY

SCRIPT = DEPLOY / "docker-entrypoint.sh"


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), *argv], env={**base, **(env or {})},
        capture_output=True, text=True, timeout=30, check=False,
    )


def show_env() -> tuple[str, ...]:
    return ("sh", "-c", 'printf "%s|%s" "$FLOWER_BASIC_AUTH" "${FLOWER_BASIC_AUTH_FILE-unset}"')


def test_syntax():
    subprocess.run(["/bin/sh", "-n", str(SCRIPT)], check=True)


def test_basic_auth_file_becomes_the_variable(tmp_path: Path):
    secret = tmp_path / "flower_basic_auth"
    secret.write_bytes(b"ops:s3cret\r\n\nviewer:other\n")
    result = run(*show_env(), env={"FLOWER_BASIC_AUTH_FILE": str(secret)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ops:s3cret,viewer:other|unset"


def test_unreadable_or_empty_file_stops_the_start(tmp_path: Path):
    missing = run(*show_env(), env={"FLOWER_BASIC_AUTH_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 2
    assert "FLOWER_BASIC_AUTH_FILE" in missing.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n \n")
    result = run(*show_env(), env={"FLOWER_BASIC_AUTH_FILE": str(empty)})
    assert result.returncode == 2
    assert "no credential" in result.stderr


@pytest.mark.parametrize(
    ("argv", "env", "allowed"),
    [
        (("celery", "-A", "workers", "flower", "--port=5555"), {}, False),
        (("celery", "-A", "workers", "flower"), {"FLOWER_BASIC_AUTH": "a:b"}, True),
        (("celery", "-A", "workers", "flower", "--basic_auth=a:b"), {}, True),
        (("celery", "-A", "workers", "flower"), {"FLOWER_AUTH": ".*@example.com"}, True),
        (("celery", "-A", "workers", "worker"), {}, True),
        (("shardline", "submit", "in.jsonl", "--out", "o"), {}, True),
    ],
)
def test_flower_is_refused_without_auth(tmp_path: Path, argv, env, allowed):
    # A stand-in "celery"/"shardline" on PATH that only says it ran.
    for name in ("celery", "shardline"):
        stub = tmp_path / name
        stub.write_text("#!/bin/sh\necho ran\n")
        stub.chmod(0o755)
    result = run(*argv, env={**env, "PATH": f"{tmp_path}:/usr/bin:/bin"})
    if allowed:
        assert result.returncode == 0, result.stderr
        assert result.stdout == "ran\n"
    else:
        assert result.returncode == 2
        assert "refusing to start Flower" in result.stderr
        assert result.stdout == ""


def test_the_command_replaces_the_shell():
    # exec: the command keeps the entrypoint's pid, so it is PID 1 in a container and
    # receives SIGTERM itself.
    process = subprocess.Popen(
        ["/bin/sh", str(SCRIPT), "sh", "-c", "echo $$"], stdout=subprocess.PIPE, text=True,
    )
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert int(out) == process.pid
