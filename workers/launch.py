"""Sending a registered run to the workers: its plan step, once.

``shared.pipeline.start.register_run`` claims the run and writes its manifest; this module is
the broker half. ``shardline.start_run``, ``shardline submit``, periodic runs and the inbox
all start a run as register, then :func:`launch_run`.
"""

from __future__ import annotations

import logging

from shared.liveness import PLAN, DeadlineIndex, expect, message_ticket, new_task_id
from shared.liveness.watch import index_lease
from shared.pipeline.start import RegisteredRun
from shared.run.records import utcnow
from shared.run.store import RunStore
from shared.storage import open_storage
from workers.app import app
from workers.canvas import plan_step

log = logging.getLogger("shardline.launch")


def send_plan(run_id: str, output_uri: str) -> None:
    """Enqueue the run's plan step (harmless twice: the plan is idempotent).

    The plan's lease records the message, so a plan lost on its way (a worker killed as it
    took it off the queue) is sent again by the deadline check. A sender without the
    coordination Redis (a cron host with RabbitMQ only) records it in storage alone.
    """
    task_id = new_task_id()
    lease = expect(open_storage(output_uri), None, app.settings, run_id=run_id,
                   output_uri=output_uri, subject=PLAN, step="plan", attempt=0,
                   ticket=message_ticket(task_id), due=utcnow())
    # Nobody waits on the plan's own result (progress is read from storage): not asking for
    # it keeps a sender, such as a cron job, from needing the result backend at all.
    plan_step(run_id, output_uri).apply_async(ignore_result=True, task_id=task_id)
    # Indexed once sent (a broker outage fails above, without waiting on Redis too).
    try:
        index: DeadlineIndex | None = DeadlineIndex(app.coordination)
    except ValueError as exc:
        log.info("run %s: plan not indexed for the deadline check: %s", run_id, exc)
        index = None
    index_lease(index, app.settings, run_id, output_uri, lease)


def launch_run(registered: RegisteredRun) -> bool:
    """Send the run's plan step unless an earlier call already did; True if sent now.

    A caller that claimed the run but failed to reach the broker leaves no ``launched``
    marker, so the next call with the same idempotency key sends it (the marker is written
    after the send: a crash in between can only mean a duplicate plan, which is harmless).
    """
    store = RunStore(open_storage(registered.output_uri))
    if not registered.created and store.launched():
        return False
    send_plan(registered.run_id, registered.output_uri)
    store.mark_launched()
    return True
