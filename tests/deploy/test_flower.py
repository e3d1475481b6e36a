"""deploy/flower: the Prometheus scrape config, and Flower started the way compose starts it
(the image's entrypoint, credentials from a file) asks for them everywhere but /metrics and
/healthcheck, which Prometheus and the probes use without credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy._deploy import DEPLOY, REPO, yaml_doc
from tests.fixtures.emulator import free_port

FLOWER = DEPLOY / "flower"


def compose_flower() -> dict:
    return yaml_doc(DEPLOY / "compose.yaml")["services"]["flower"]


def flower_port(command: list[str]) -> int:
    return int(next(a for a in command if a.startswith("--port=")).split("=", 1)[1])


def test_scrape_config_matches_the_flower_service():
    config = yaml_doc(FLOWER / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    static = jobs["shardline-flower"]
    assert static["metrics_path"] == "/metrics"
    port = flower_port(compose_flower()["command"])
    assert static["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
    assert all("basic_auth" not in job for job in jobs.values()), "/metrics needs none"
    pods = jobs["kubernetes-annotated-pods"]
    keep = pods["relabel_configs"][0]
    assert keep["action"] == "keep"
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]


def test_env_example_holds_a_placeholder_only():
    lines = [line for line in (FLOWER / "flower.env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines == ["FLOWER_BASIC_AUTH=ops:change-me"]


@pytest.fixture
def flower(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, tuple[str, str]]]:
    command = list(compose_flower()["command"])
    assert command[:4] == ["celery", "-A", "workers", "flower"]
    port = free_port()
    command = [f"--port={port}" if a.startswith("--port=") else
               "--address=127.0.0.1" if a.startswith("--address=") else a
               for a in command[1:]]
    auth = ("ops", uuid.uuid4().hex)
    secret = tmp_path / "flower_basic_auth"
    secret.write_text(f"{auth[0]}:{auth[1]}\n")
    env = {**os.environ, "SHARDLINE_BROKER_URL": redis_url, "SHARDLINE_RESULT_BACKEND": redis_url,
           "SHARDLINE_SECRETS_DIR": "", "FLOWER_BASIC_AUTH_FILE": str(secret)}
    env.pop("FLOWER_BASIC_AUTH", None)
    log = tmp_path / "flower.log"
    process = subprocess.Popen(
        ["/bin/sh", str(DEPLOY / "docker-entrypoint.sh"), sys.executable, "-m", "celery",
         *command],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthcheck", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"Flower not up:\n{log.read_text()}"
            time.sleep(0.2)
        yield url, auth
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.integration
def test_flower_asks_for_credentials_except_on_metrics_and_health(flower):
    url, auth = flower
    for path in ("/", "/tasks", "/workers", "/api/workers", "/api/tasks"):
        assert httpx.get(url + path, timeout=30).status_code == 401, path
        assert httpx.get(url + path, timeout=30, auth=("ops", "wrong")).status_code == 401, path
        assert httpx.get(url + path, timeout=30, auth=auth).status_code == 200, path
    metrics = httpx.get(url + "/metrics", timeout=30)
    assert metrics.status_code == 200
    assert "flower_events_total" in metrics.text or "flower_worker_online" in metrics.text
    assert httpx.get(url + "/healthcheck", timeout=30).text == "OK"
