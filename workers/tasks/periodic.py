"""Beat's tasks: ``shardline.periodic_run`` and ``shardline.inbox_sweep`` (see workers.beat).

Both take a name from the schedule file and read the file on the worker, so no spec travels
in a message; the workers need the same file as beat (``SHARDLINE_SCHEDULE_FILE``). Both are
idempotent (an idempotency key per slot; a claim per object), so a redelivery, a double fire
or a second beat process starts nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task

from shared import names
from shared.errors import SpecError
from shared.inbox import sweep_inbox
from shared.pipeline.start import register_run
from shared.schedule import Schedule, load_schedule
from shared.settings import Settings
from workers.app import app
from workers.launch import launch_run


def _schedule(settings: Settings) -> Schedule:
    if settings.schedule_file is None:
        raise SpecError(
            "SHARDLINE_SCHEDULE_FILE is not set on this worker: periodic runs and inbox "
            "sweeps read the schedule file, so workers need the same file as beat"
        )
    return load_schedule(settings.schedule_file)


@app.task(bind=True, name=names.TASK_PERIODIC_RUN, acks_late=True)
def periodic_run(self: Task, name: str, slot: str | None = None) -> dict[str, Any]:
    """Start the run ``name`` of the schedule file for ``slot`` (ISO time, default now).

    Any time maps to the slot that holds it, so a manual call during a slot is that slot's run.
    """
    settings = app.settings
    run = _schedule(settings).run_named(name)
    moment = datetime.fromisoformat(slot) if slot else datetime.now(UTC)
    fire = run.slot_at(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    registered = register_run(settings, run.spec_for(fire))
    launch_run(registered)
    return {**registered.model_dump(mode="json"), "slot": fire.isoformat()}


@app.task(bind=True, name=names.TASK_INBOX_SWEEP, acks_late=True)
def inbox_sweep(self: Task, name: str) -> dict[str, Any]:
    """Start one run for every new object under the inbox ``name`` (see shared.inbox)."""
    settings = app.settings
    inbox = _schedule(settings).inbox_named(name)
    report = sweep_inbox(settings, inbox, now=datetime.now(UTC), launch=launch_run)
    return report.model_dump(mode="json")
