"""The Celery application: ``celery -A workers worker`` finds it as ``workers.app``.

The app object exists at import (Celery needs it to register tasks), but it reads no
setting until Celery first needs its configuration; then :func:`configure` applies the
Shardline settings. An entry point that already built settings (the CLI, tests) calls
:func:`configure` itself first.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import redis
from celery import Celery, signals

from shared import names
from shared.coordination import coordination_redis
from shared.errors import ConfigError
from shared.settings import Settings, load_settings, require_api_key
from workers import logs

EMBEDDED_BROKER = "memory://"
EMBEDDED_BACKEND = "cache+memory://"


class ShardlineCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries the Shardline settings it was configured with."""

    _settings: Settings | None = None
    _coordination: redis.Redis | None = None

    @property
    def settings(self) -> Settings:
        """Loaded on first use. Only the ``celery -A workers ...`` commands get here
        unconfigured (the CLI and tests call :func:`configure`), so a bad setting ends the
        process with one line naming the variables instead of a traceback."""
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                refuse(exc)
        return self._settings

    @property
    def coordination(self) -> redis.Redis:
        """One coordination Redis client per worker process (admission control)."""
        if self._coordination is None:
            self._coordination = coordination_redis(self.settings)
        return self._coordination


class _LazyConfig(Mapping[str, Any]):
    """Celery reads its configuration from this mapping on first use, not at import."""

    def __init__(self, app: ShardlineCelery) -> None:
        self._app = app
        self._cache: dict[str, Any] | None = None

    def _data(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = celery_config(self._app.settings)
        return self._cache

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def result_backend_for(settings: Settings) -> str:
    """``start_run`` answers its callers through the result backend; Redis is the one
    Shardline uses (with RabbitMQ as broker it must be named)."""
    if settings.result_backend:
        return settings.result_backend
    if settings.embedded:
        return EMBEDDED_BACKEND
    broker = settings.broker_url or ""
    if broker.startswith(("redis://", "rediss://")):
        return broker
    raise ValueError(
        "SHARDLINE_RESULT_BACKEND is required with a non-Redis broker "
        f"({broker.split('://')[0]}://): start_run answers its callers through a result "
        "backend such as redis://127.0.0.1:6379/1"
    )


def celery_config(settings: Settings) -> dict[str, Any]:
    """Everything Celery needs, derived from the settings; see README "Delivery"."""
    transport: dict[str, Any] = {
        # A countdown task is held unacknowledged by a worker until its ETA; on Redis it is
        # delivered again once unacknowledged for this long, so it must exceed the longest
        # countdown Shardline schedules (validated in Settings).
        "visibility_timeout": settings.visibility_timeout_seconds,
    }
    if settings.embedded:
        transport["polling_interval"] = 0.05  # the in-memory queue is polled, not pushed
    return {
        "broker_url": settings.broker_url or EMBEDDED_BROKER,
        "result_backend": result_backend_for(settings),
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": names.QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_extended": True,
        "result_expires": 7 * 24 * 3600,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        # Beat's scheduler adds the entries of SHARDLINE_SCHEDULE_FILE (see workers.beat).
        "beat_scheduler": "workers.beat:ScheduleFileScheduler",
        "beat_schedule": {
            "shardline-reconcile": {
                "task": names.TASK_RECONCILE,
                "schedule": settings.reconcile_interval_seconds,
                # A reconcile still queued when the next is due is worthless: drop it.
                "options": {"expires": settings.reconcile_interval_seconds},
            }
        },
    }


def refuse(exc: ConfigError) -> NoReturn:
    """End a ``celery`` command that cannot work with these settings: one line, exit 2."""
    print(f"shardline: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _check_worker(**_: Any) -> None:
    """A worker without a key would take messages and turn every request into an error:
    refuse to start. ``celeryd_init`` is sent by ``celery worker`` only, before it connects
    (not by the embedded worker, whose command checks first, nor by beat or Flower)."""
    try:
        require_api_key(app.settings)
    except ConfigError as exc:
        refuse(exc)


app = ShardlineCelery("shardline", include=["workers.tasks"])
app.config_from_object(_LazyConfig(app))
logs.connect(lambda: app.settings)
signals.celeryd_init.connect(_check_worker, weak=False, dispatch_uid="shardline.check_worker")


def configure(settings: Settings) -> ShardlineCelery:
    """Apply ``settings`` to the app before it is used (CLI, embedded worker, tests)."""
    app._settings = settings
    app._coordination = None
    app.conf.update(celery_config(settings))
    # Connections and producers made before point at the previous broker: drop them, as
    # Celery does after a fork, so the next send uses this configuration's broker.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    return app
