"""Poison messages: a task message that killed its worker again and again is parked.

With ``acks_late`` and ``task_reject_on_worker_lost`` a message whose worker dies comes back,
which is what makes crashes harmless, until the message itself is the cause (a line that
takes all memory, a bug that aborts the interpreter): then every delivery kills the next
worker, forever. So each delivery of a message is counted in the coordination Redis when its
task starts, and the count is cleared when the task ends in any way Python sees (success,
retry, error). Only a death that no ``finally`` survives leaves it standing. A delivery that
finds ``limit`` deaths already counted does not run the task again: it is *parked* — logged,
recorded (``ParkedMessage``, in the run's records) — and the stage gives up on it
(``workers.tasks._stage``): a shard's lines become errors that say why, a run that cannot be
planned or merged ends ``failed`` with the reason.

The count is per Celery task id, which a countdown retry keeps: a retry is a finished
delivery (cleared), so a step polled a thousand times is never counted as a thousand crashes.
A worker killed while a healthy task ran beside the culprit counts one death for it too; it
would need ``limit`` such deaths in a row, without finishing once in between, to be parked.
Counts expire after a week (a message is redelivered within the visibility timeout).
"""

from __future__ import annotations

import redis

#: Where the counts live (``names.REDIS_PREFIX`` family).
DELIVERIES_PREFIX = "shardline:deliveries:"
COUNT_TTL_SECONDS = 7 * 24 * 3600


class Deliveries:
    """Counts the deliveries of each task message that started and has not ended."""

    def __init__(self, client: redis.Redis, *, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._redis = client
        self.limit = limit

    def begin(self, task_id: str) -> int:
        """Count this delivery; returns how many started without ending, this one included."""
        key = DELIVERIES_PREFIX + task_id
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, COUNT_TTL_SECONDS)
            count, _ = pipe.execute()
        return int(count)

    def end(self, task_id: str) -> None:
        """The task ended (in any way Python saw): its deliveries killed nothing."""
        self._redis.delete(DELIVERIES_PREFIX + task_id)

    def is_poison(self, count: int) -> bool:
        """``count`` (from :meth:`begin`) means ``limit`` earlier deliveries died."""
        return count - 1 >= self.limit


def poison_reason(task: str, deaths: int) -> str:
    """The reason a parked message's lines and run carry."""
    return (f"task {task} was parked: its message was delivered {deaths} times and each "
            "time the worker died before it ended (poison message)")


__all__ = [
    "COUNT_TTL_SECONDS",
    "DELIVERIES_PREFIX",
    "Deliveries",
    "poison_reason",
]
