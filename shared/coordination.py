"""The Redis that workers share for coordination (admission control), chosen from settings.

Which Redis, first match wins:

1. ``SHARDLINE_REDIS_URL`` (``Settings.redis_url``);
2. the broker URL, when it is Redis (``redis://``, ``rediss://``, ``unix://``);
3. the result backend, when it is Redis;
4. in embedded mode (no broker: one process does everything) an in-process fake Redis, one
   ``fakeredis.FakeServer`` shared by every client this process makes, with Lua (``lupa``);
5. otherwise (a RabbitMQ broker and no Redis anywhere) a ``ValueError`` naming the setting.

Clients answer with ``str`` (``decode_responses=True``): everything Shardline keeps there is
text (fingerprints, holder ids, numbers). A call builds a new client whose pool connects on
first use, so nothing connects at import; build one per process and keep it.

Connection errors are retried by redis-py (its default retry policy); every admission
operation is idempotent per holder, so a command sent twice counts once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis

from shared.settings import Settings

if TYPE_CHECKING:
    import fakeredis

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_SOCKET_TIMEOUT_SECONDS = 10.0
_CONNECT_TIMEOUT_SECONDS = 5.0

_fake_server_lock = threading.Lock()
_fake_servers: dict[str, fakeredis.FakeServer] = {}  # at most one, made on first use


def coordination_url(settings: Settings) -> str | None:
    """The Redis URL to coordinate through; None means the embedded in-process fake.

    Raises ``ValueError`` when workers could run on several machines (a broker is set) but
    no Redis is configured anywhere.
    """
    if settings.redis_url:
        if not is_redis_url(settings.redis_url):
            raise ValueError(
                "SHARDLINE_REDIS_URL must be a redis://, rediss:// or unix:// URL "
                f"(got a {_scheme(settings.redis_url)}:// URL)"
            )
        return settings.redis_url
    for url in (settings.broker_url, settings.result_backend):
        if url and is_redis_url(url):
            return url
    if settings.embedded:
        return None
    raise ValueError(
        f"admission control needs Redis shared by every worker, but the broker is "
        f"{_scheme(settings.broker_url or '')}:// and the result backend is not Redis: "
        "set SHARDLINE_REDIS_URL (e.g. redis://redis:6379/0)"
    )


def coordination_redis(settings: Settings) -> redis.Redis:
    """A client of the coordination Redis (see the module docstring for which one)."""
    url = coordination_url(settings)
    if url is None:
        return _embedded_client()
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=_CONNECT_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


def is_redis_url(url: str) -> bool:
    return _scheme(url) in _REDIS_SCHEMES


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower() or "(none)"


def _embedded_client() -> redis.Redis:
    """A client of this process's one fake server: every caller sees the same data."""
    import fakeredis

    with _fake_server_lock:
        server = _fake_servers.get("embedded")
        if server is None:
            server = _fake_servers["embedded"] = fakeredis.FakeServer()
    client: redis.Redis = fakeredis.FakeRedis(server=server, decode_responses=True)
    return client
