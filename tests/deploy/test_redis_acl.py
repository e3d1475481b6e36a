"""deploy/redis/users.acl.example in a real redis-server: anonymous clients may only PING (the
compose health check still works), Shardline's user with its password may do its work, and
a wrong password gets nothing."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.coordination import coordination_redis
from shared.settings import Settings
from tests.deploy._deploy import DEPLOY, yaml_doc

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    server = shutil.which("redis-server")
    if not server or not shutil.which("redis-cli"):
        pytest.skip("redis-server and redis-cli are not installed")
    password = secrets.token_hex(16)
    digest = hashlib.sha256(password.encode()).hexdigest()
    template = (DEPLOY / "redis" / "users.acl.example").read_text()
    (tmp_path / "users.acl").write_text(
        template.replace("REPLACE-ME-sha256-of-the-password", digest))
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--aclfile", str(tmp_path / "users.acl"), "--dir", str(tmp_path)],
        stdout=(tmp_path / "redis.log").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "redis.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        yield port, password
    finally:
        process.kill()
        process.wait(10)


def cli(port: int, *args: str) -> str:
    result = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                            text=True, timeout=30, check=False)
    return result.stdout + result.stderr


def test_anonymous_clients_may_only_ping(acl_redis) -> None:
    port, _ = acl_redis
    probe = yaml_doc(DEPLOY / "compose.yaml")["services"]["redis"]["healthcheck"]["test"][1]
    healthy = subprocess.run(["/bin/sh", "-c", probe.replace("redis-cli", f"redis-cli -p {port}")],
                             capture_output=True, timeout=30, check=False)
    assert healthy.returncode == 0
    assert "NOPERM" in cli(port, "LPUSH", "shardline", "{}")
    assert "NOPERM" in cli(port, "KEYS", "*")


def test_shardline_works_with_the_password_only(acl_redis) -> None:
    from kombu import Connection

    port, password = acl_redis
    url = f"redis://shardline:{password}@127.0.0.1:{port}/0"
    assert coordination_redis(Settings(broker_url=url)).ping()
    with Connection(url) as connection:
        queue = connection.SimpleQueue("shardline-acl-test")
        queue.put({"task": "ping"})
        message = queue.get(timeout=10)
        assert message.payload == {"task": "ping"}
        message.ack()
        queue.close()
    wrong = f"redis://shardline:{secrets.token_hex(16)}@127.0.0.1:{port}/0"
    with pytest.raises(Exception, match=r"(?i)auth|password|WRONGPASS"):
        coordination_redis(Settings(broker_url=wrong)).ping()
