"""The compose health checks against real processes: a worker and beat started with the exact
commands of deploy/compose.yaml answer the probes for the node names those commands give,
a probe for another name fails, and SIGTERM ends each cleanly (warm shutdown)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy._deploy import DEPLOY, REPO, yaml_doc

pytestmark = pytest.mark.integration


class Process:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self.popen = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log.open("ab"),
                                      stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


@pytest.fixture
def environment(redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHARDLINE_BROKER_URL": redis_url,
        "SHARDLINE_RESULT_BACKEND": redis_url,
        "SHARDLINE_STATE_URI": str(tmp_path / "state"),
        "SHARDLINE_SECRETS_DIR": "",
        "SHARDLINE_API_KEY": "deploy-test-key",  # a worker without one refuses to start
        "SHARDLINE_SCHEDULE_FILE": str(DEPLOY / "beat" / "schedule.empty.toml"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Process]]:
    processes: list[Process] = []
    yield processes
    for process in processes:
        process.stop()


def service_command(name: str, host: str, tmp_path: Path) -> list[str]:
    """The compose command, run from this venv, ``%h`` pinned to a name unique to this test
    (the container's hostname there; here, other test runs may share the machine)."""
    command = list(yaml_doc(DEPLOY / "compose.yaml")["services"][name]["command"])
    assert command[0] == "celery"
    command = [a.replace("%h", host) for a in command[1:]]
    command = [f"--schedule={tmp_path / 'beat-schedule'}" if a.startswith("--schedule=") else a
               for a in command]
    return [sys.executable, "-m", "celery", *command]


def probe(name: str, host: str, env: dict[str, str], *, timeout: int = 10) -> int:
    """The compose healthcheck, run by /bin/sh with $HOSTNAME as the container would have it."""
    test = yaml_doc(DEPLOY / "compose.yaml")["services"][name]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    script = test[1].replace("$$", "$").replace("--timeout 10", f"--timeout {timeout}")
    bin_dir = str(Path(sys.executable).parent)  # `celery` from this venv
    result = subprocess.run(
        ["/bin/sh", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**env, "HOSTNAME": host, "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"},
        check=False,
    )
    return result.returncode


def wait_until_healthy(name: str, host: str, env: dict[str, str], process: Process) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.popen.poll() is None, f"{name} exited:\n{process.log()}"
        if probe(name, host, env, timeout=3) == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} never answered its health check:\n{process.log()}")


@pytest.mark.parametrize("service", ["worker", "beat"])
def test_probe_answers_for_the_node_the_command_names(service, environment, started,
                                                       tmp_path: Path):
    host = f"deploy-test-{uuid.uuid4().hex[:8]}"
    process = Process(service_command(service, host, tmp_path), environment,
                      tmp_path / f"{service}.log")
    started.append(process)
    wait_until_healthy(service, host, environment, process)
    assert probe(service, f"nobody-{uuid.uuid4().hex[:8]}", environment, timeout=2) != 0
    assert process.stop() == 0, process.log()
    if service == "worker":
        assert re.search(r"shardline@deploy-test-\w+ ready", process.log()), process.log()
