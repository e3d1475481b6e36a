"""Settings: where each value comes from, and the rules between them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.apikeys import ApiKeyPool, fingerprint
from shared.settings import Settings, load_settings


def test_the_key_comes_from_either_variable(env) -> None:
    env(GEMINI_API_KEY="from-gemini")
    assert load_settings().api_key.get_secret_value() == "from-gemini"
    env(SHARDLINE_API_KEY="from-shardline")
    assert load_settings().api_key.get_secret_value() == "from-shardline"


def test_the_key_comes_from_a_secrets_file(env, tmp_path: Path) -> None:
    (tmp_path / "SHARDLINE_API_KEY").write_text("from-file")
    env(SHARDLINE_SECRETS_DIR=str(tmp_path))
    assert load_settings().api_key.get_secret_value() == "from-file"


def test_keys_never_show(env) -> None:
    env(SHARDLINE_API_KEY="AIza-very-secret", SHARDLINE_API_KEYS="k2-secret,k3-secret")
    settings = load_settings()
    text = repr(settings) + str(settings.model_dump()) + settings.model_dump_json()
    assert "very-secret" not in text and "k2-secret" not in text


def test_a_key_pool_has_the_primary_first_without_repeats(env) -> None:
    env(SHARDLINE_API_KEY="a", SHARDLINE_API_KEYS="b, a ,c")
    pool = load_settings().key_pool()
    assert [k.get_secret_value() for k in pool] == ["a", "b", "c"]
    keys = ApiKeyPool(pool)
    assert keys.fingerprints[0] == fingerprint(pool[0]) and keys.fingerprints[0].startswith("fp-")


def test_prefixed_variables_reach_every_field(env) -> None:
    env(SHARDLINE_BROKER_URL="redis://127.0.0.1:6379/0", SHARDLINE_SHARD_MAX_REQUESTS="7",
        SHARDLINE_POLL_MAX_SECONDS="60")
    settings = load_settings()
    assert (settings.broker_url, settings.shard_max_requests, settings.poll_max_seconds) == (
        "redis://127.0.0.1:6379/0", 7, 60.0)
    assert not settings.embedded and Settings(broker_url=None).embedded


def test_shards_never_exceed_the_provider_limit() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 2147483648"):
        Settings(shard_max_bytes=2_147_483_649)


def test_a_poll_countdown_must_fit_the_visibility_timeout() -> None:
    with pytest.raises(ValidationError, match="poll_max_seconds must be under 80"):
        Settings(visibility_timeout_seconds=100, poll_max_seconds=90)


def test_rabbitmq_consumer_timeout_caps_countdowns() -> None:
    redis = Settings(broker_url="redis://h/0", visibility_timeout_seconds=3600)
    rabbit = Settings(broker_url="amqp://guest:guest@h//", result_backend="redis://h/1",
                      visibility_timeout_seconds=3600)
    assert redis.countdown_cap_seconds == 0.8 * 3600
    assert rabbit.countdown_cap_seconds == 0.8 * 1800


def test_default_visibility_timeout_follows_the_longest_countdown_on_both_brokers() -> None:
    """Recovery does not wait for it (leases do), so it is sized by the longest countdown:
    polls and error backoff (300 s) fit under the cap, and so does RabbitMQ's default
    consumer_timeout (1,800 s) without any setting."""
    redis = Settings(broker_url="redis://h/0")
    rabbit = Settings(broker_url="amqp://guest:guest@h//", result_backend="redis://h/1")
    assert redis.visibility_timeout_seconds == 600
    assert redis.countdown_cap_seconds == rabbit.countdown_cap_seconds == 480
    assert redis.poll_max_seconds < redis.countdown_cap_seconds
    # A dead worker's running task is restarted within a lease and a check interval, a
    # lost message within a grace and a check interval of its due time: inside 3 minutes.
    assert redis.lease_seconds + redis.deadline_check_seconds < 180
    assert redis.liveness_grace_seconds + redis.deadline_check_seconds < 180
