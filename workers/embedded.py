"""The embedded default: Celery's in-memory transport and a worker in this process.

Used when no broker is configured, so that ``shardline run`` works on a laptop with nothing
else installed. It is the same tasks and the same canvas as on a fleet; only the transport
differs (and it dies with the process: ``shardline resume`` picks a run up from storage).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.worker import WorkController, state

from workers.app import ShardlineCelery


class _EmbeddedWorker(WorkController):  # type: ignore[misc]
    """A worker that tells when its consumer is ready (as celery.contrib.testing does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        self.ready.set()


@contextmanager
def embedded_worker(
    app: ShardlineCelery, *, concurrency: int = 4, loglevel: str = "WARNING", pool: str = "threads"
) -> Iterator[WorkController]:
    """Run a thread-pool worker for ``app`` until the block exits."""
    # Chain and chord steps are sent through the *current* app; without this they would
    # go to Celery's default app (and its default broker), not to this in-memory one.
    app.finalize()
    app.set_current()
    app.set_default()
    worker = _EmbeddedWorker(
        app=app,
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        hostname="embedded@localhost",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
    )
    thread = threading.Thread(target=worker.start, name="shardline-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(30):
        raise RuntimeError("the embedded Celery worker did not start within 30 s")
    try:
        yield worker
    finally:
        state.should_terminate = 0
        thread.join(15)
        state.should_terminate = None
