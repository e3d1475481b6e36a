"""Sending a registered run to the workers: its plan step, once.

``shared.pipeline.start.register_run`` claims the run and writes its manifest; this module is
the broker half. ``shardline.start_run``, ``shardline submit``, periodic runs and the inbox
all start a run as register, then :func:`launch_run`.
"""

from __future__ import annotations

from shared.pipeline.start import RegisteredRun
from shared.run.store import RunStore
from shared.storage import open_storage
from workers.canvas import plan_step


def send_plan(run_id: str, output_uri: str) -> None:
    """Enqueue the run's plan step (harmless twice: the plan is idempotent)."""
    # Nobody waits on the plan's own result (progress is read from storage): not asking for
    # it keeps a sender, such as a cron job, from needing the result backend at all.
    plan_step(run_id, output_uri).apply_async(ignore_result=True)


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
