"""The ``/metrics`` endpoint: one HTTP server per process, off unless a port is given.

Workers start it from Celery's ``worker_init`` signal (:mod:`workers.metrics`) when
``SHARDLINE_METRICS_PORT`` is set; ``shardline run --metrics-port`` starts it in the CLI.
It serves ``prometheus_client``'s default registry: the event counters of
:mod:`shared.events`, the process metrics, and a :class:`RunsCollector` over the
run records, registered once per process.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, start_http_server

from shared.metrics.runs import RunsCollector
from shared.settings import Settings

log = logging.getLogger("shardline.metrics")

_lock = threading.Lock()
#: The collector registered in this process (at most one: a second would double every series).
_registered: list[RunsCollector] = []
#: The endpoint serving in this process, if any (one per process).
_serving: list[WSGIServer] = []


def serve_metrics(settings: Settings, port: int | None = None) -> WSGIServer | None:
    """Serve ``/metrics`` on ``port`` (default ``settings.metrics_port``; 0: any free port)
    at ``settings.metrics_host`` in a daemon thread. None when no port is set. The bound
    port is ``server.server_port``; ``server.shutdown()`` and ``server.server_close()`` stop
    it.

    One endpoint per process: while one is open, a second call returns it. (``shardline
    run --metrics-port`` starts one, then its embedded worker's ``worker_init`` asks again.)
    """
    port = settings.metrics_port if port is None else port
    if port is None:
        return None
    with _lock:
        if not _registered:
            _registered.append(RunsCollector(settings))
            REGISTRY.register(_registered[0])
        if _serving and _serving[0].fileno() != -1:
            return _serving[0]
        server, _thread = start_http_server(port, addr=settings.metrics_host)
        _serving[:] = [server]
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.server_port)
    return server
