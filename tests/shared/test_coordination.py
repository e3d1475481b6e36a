"""Which Redis coordinates the workers: explicit URL, broker, result backend, embedded fake."""

from __future__ import annotations

import os
import socket

import pytest

from shared.coordination import coordination_redis, coordination_url
from shared.settings import Settings

REAL_REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_explicit_url_wins_over_broker_and_backend():
    settings = Settings(
        redis_url="redis://coord:6379/3",
        broker_url="redis://broker:6379/0",
        result_backend="redis://backend:6379/1",
    )
    assert coordination_url(settings) == "redis://coord:6379/3"


def test_env_variable_names_the_setting(monkeypatch):
    monkeypatch.setenv("SHARDLINE_REDIS_URL", "rediss://coord:6380/2")
    assert coordination_url(Settings()) == "rediss://coord:6380/2"


def test_redis_broker_is_used_when_no_url_is_set():
    settings = Settings(broker_url="redis://broker:6379/0", result_backend="redis://b:6379/1")
    assert coordination_url(settings) == "redis://broker:6379/0"


def test_redis_result_backend_serves_a_rabbitmq_broker():
    settings = Settings(broker_url="amqp://guest:guest@mq:5672//", result_backend="rediss://r/4")
    assert coordination_url(settings) == "rediss://r/4"


def test_rabbitmq_without_redis_names_the_setting_and_hides_the_password():
    settings = Settings(broker_url="amqp://user:hunter2-secret@mq:5672//", result_backend="rpc://")
    with pytest.raises(ValueError, match="SHARDLINE_REDIS_URL") as caught:
        coordination_url(settings)
    assert "hunter2-secret" not in str(caught.value)
    assert "amqp://" in str(caught.value)


def test_a_non_redis_explicit_url_is_refused():
    with pytest.raises(ValueError, match="SHARDLINE_REDIS_URL"):
        coordination_url(Settings(redis_url="amqp://mq//"))


@pytest.mark.parametrize("broker", [None, "memory://"])
def test_embedded_mode_shares_one_fake_server_across_clients(broker):
    settings = Settings(broker_url=broker)
    assert coordination_url(settings) is None
    first, second = coordination_redis(settings), coordination_redis(settings)
    key = f"shardline:test-coordination:{os.getpid()}"
    try:
        first.set(key, "seen")
        assert second.get(key) == "seen"  # decode_responses: str, not bytes
    finally:
        first.delete(key)


def test_embedded_fake_runs_lua():
    client = coordination_redis(Settings())
    assert client.eval("return redis.call('TIME')[1] + 0 > 0", 0) == 1


def test_building_a_client_does_not_connect():
    client = coordination_redis(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert client.connection_pool.connection_kwargs["port"] == 1
    client.close()


def test_real_redis_answers_through_the_factory():
    if not _redis_answers():
        message = "Redis does not answer on 127.0.0.1:6379 (scripts/services.sh starts it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    client = coordination_redis(Settings(redis_url=REAL_REDIS_URL))
    try:
        assert client.ping() is True
        assert client.connection_pool.connection_kwargs["db"] == 15
        assert client.eval("return ARGV[1]", 0, "text") == "text"
    finally:
        client.close()
