"""The worker's ``/metrics`` endpoint, started by Celery's ``worker_init`` signal.

Off unless ``SHARDLINE_METRICS_PORT`` is set. ``worker_init`` fires once, in the worker's
main process, before the pool starts: with ``--pool threads`` (the deploy's default) every
task runs in that process, so the event counters see all of them. With ``--pool prefork``
the record-based metrics are still complete, but the event counters (provider calls,
admission waits) only count the main process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import signals

from shared.metrics.server import serve_metrics
from shared.settings import Settings


def connect(load_settings: Callable[[], Settings]) -> None:
    """Start the endpoint when a worker starts (called once by ``workers.app``)."""

    def on_worker_init(**_: Any) -> None:
        serve_metrics(load_settings())

    signals.worker_init.connect(on_worker_init, weak=False, dispatch_uid="shardline.metrics")
