"""The worker's side of liveness: the deadline-check timer and the polite hand-back.

Both are Celery bootsteps, added to the app when this module is imported (the app's
``include``, before a worker builds its blueprint), so a worker started from the command
line and the embedded one behave the same.

- :class:`DeadlineTimer` (worker step): a daemon thread that runs
  :func:`shared.liveness.check_deadlines` once at start and then every
  ``SHARDLINE_DEADLINE_CHECK_SECONDS``. A Redis claim that lasts 90 % of the interval
  makes one worker of the fleet do each check, whoever it is; beat is not needed, and the
  check never waits behind a long queue the way a beat message would.
- :class:`HandBack` (consumer step): on a polite shutdown (SIGTERM: a rolling update,
  ``systemctl stop``, a scale-down), before the worker waits for its running tasks, every
  countdown/ETA message it holds goes back to the queue at once for another worker.
  Left alone, kombu returns them only when the connection closes, i.e. after the longest
  running task ends (a 2 GB upload), or never if the orchestrator's kill comes first.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import bootsteps
from celery.worker import state as worker_state
from celery.worker.request import Request

from shared.liveness import DeadlineIndex, check_deadlines
from shared.liveness.index import CHECK_LOCK
from workers.app import app
from workers.restart import CeleryRestarter

log = logging.getLogger("shardline.liveness")

#: kombu's Redis transport keeps one BRPOP outstanding with a 1 s server-side timeout; a
#: message handed back before it expires would be popped by it and held until the
#: connection closes. Waiting this long after cancelling the consumer avoids that.
_BRPOP_DRAIN_SECONDS = 1.5


class DeadlineTimer(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs the deadline check in a thread of every worker; one worker per interval acts."""

    label = "shardline deadline check"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(parent.app,), daemon=True,
                                        name="shardline-deadlines")
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _loop(self, app: Any) -> None:
        interval = app.settings.deadline_check_seconds
        while True:
            try:
                index = DeadlineIndex(app.coordination)
                if index.claim(CHECK_LOCK, 0.9 * interval):
                    report = check_deadlines(app.settings, index, CeleryRestarter(app))
                    if report.restarted or report.rebuilt:
                        log.warning("deadline check: %s", report.model_dump_json())
            except Exception:  # the next tick tries again; a dead timer would hide every run
                log.exception("deadline check failed")
            if self._stop.wait(interval):
                return


class HandBack(bootsteps.StartStopStep):  # type: ignore[misc]
    """Returns held countdown/ETA messages to the queue when the worker begins to stop."""

    label = "shardline hand back"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def stop(self, parent: Any) -> None:
        if parent.app.settings.embedded:
            return  # the in-memory queue ends with the process anyway
        if worker_state.should_stop is None and worker_state.should_terminate is None:
            return  # the consumer restarts after a lost connection: the worker stays
        try:
            handed = hand_back(parent)
        except (*parent.connection_errors, *parent.channel_errors) as exc:
            log.warning("could not hand scheduled messages back (%s): they return after "
                        "the visibility timeout, or sooner through the deadline check", exc)
            return
        if handed:
            log.info("handed %d scheduled message(s) back to the queue", handed)


def hand_back(consumer: Any) -> int:
    """Cancel the task consumer, then reject (requeue) every ETA request the timer holds
    and cancel its timer entry, so this worker neither keeps nor runs it. How many."""
    if consumer.task_consumer is None:
        return 0
    consumer.task_consumer.cancel()
    if getattr(consumer.connection.transport, "driver_type", "") == "redis":
        time.sleep(_BRPOP_DRAIN_SECONDS)
    handed = 0
    for waiting in list(consumer.timer.schedule.queue):
        entry = waiting.entry
        request = entry.args[0] if entry.args else None
        if not isinstance(request, Request) or request.acknowledged:
            continue
        entry.cancel()
        # Directly on the message: Request.reject defers to the event loop, which no
        # longer runs once the worker is stopping.
        request.message.reject(requeue=True)
        request.acknowledged = True
        handed += 1
    return handed


app.steps["worker"].add(DeadlineTimer)
app.steps["consumer"].add(HandBack)
