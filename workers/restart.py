"""How the deadline check sends work again: the plan, a shard's chain, or the merge.

Every first message carries the task id the check recorded as the subject's expected
ticket before sending, so it is admitted while stale copies of older messages step aside.
A restarted chain is detached from the run's chord; the merge still comes, expected by the
lease of whichever shard is final last (see :func:`shared.liveness.close_subject`).
"""

from __future__ import annotations

from typing import Any

from shared import names


class CeleryRestarter:
    """A :class:`shared.liveness.Restarter` that sends through a Celery app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def plan(self, run_id: str, output_uri: str, task_id: str) -> None:
        self.app.send_task(names.TASK_PLAN, (run_id, output_uri), task_id=task_id,
                           queue=names.QUEUE, ignore_result=True)

    def chain(self, run_id: str, output_uri: str, shard: int, attempt: int,
              task_id: str) -> None:
        from workers.canvas import shard_chain

        signature = shard_chain(run_id, output_uri, shard, attempt)
        signature.tasks[0].set(task_id=task_id)
        signature.apply_async()

    def merge(self, run_id: str, output_uri: str, task_id: str) -> None:
        self.app.send_task(names.TASK_MERGE, (run_id, output_uri), task_id=task_id,
                           queue=names.QUEUE)
