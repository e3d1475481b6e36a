"""How the deadline check sends work again: the plan, a shard's chain, or the merge.

Every first message carries the task id the check recorded as the subject's expected
ticket before sending, so it is admitted while stale copies of older messages step aside.
A shard's chain is sent again from the step its lease names. The merge is not part of a
shard's chain (the last batch sends it, and it waits until every shard is final).
"""

from __future__ import annotations

from typing import Any

from celery import chain

from shared import names
from workers.canvas import send_shards_step, shard_chain


class CeleryRestarter:
    """A :class:`shared.liveness.Restarter` that sends through a Celery app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def plan(self, run_id: str, output_uri: str, task_id: str) -> None:
        self.app.send_task(names.TASK_PLAN, (run_id, output_uri), task_id=task_id,
                           queue=names.QUEUE, ignore_result=True)

    def chain(self, run_id: str, output_uri: str, shard: int, attempt: int, step: str,
              task_id: str) -> None:
        """The shard's chain from ``step`` on (the whole chain for an unknown step)."""
        steps = list(shard_chain(run_id, output_uri, shard, attempt).tasks)
        order = ["upload", "create", "poll", "collect"]  # the steps of shard_chain
        rest = steps[order.index(step):] if step in order else steps
        rest[0].set(task_id=task_id)
        chain(*rest).apply_async()

    def send_shards(self, run_id: str, output_uri: str, first: int, task_id: str) -> None:
        send_shards_step(run_id, output_uri, first).apply_async(task_id=task_id)

    def merge(self, run_id: str, output_uri: str, task_id: str) -> None:
        self.app.send_task(names.TASK_MERGE, (run_id, output_uri), task_id=task_id,
                           queue=names.QUEUE)

    def backlog(self) -> int:
        """Ready messages in the queue (a passive declare: Redis LLEN, AMQP's count); a
        queue the broker does not know (an empty Redis list does not exist) holds none."""
        with self.app.connection_for_read() as connection:
            try:
                declared = connection.default_channel.queue_declare(queue=names.QUEUE,
                                                                    passive=True)
            except connection.channel_errors:
                return 0
            return int(declared.message_count)
