"""Beat schedules from the operator's schedule file (``SHARDLINE_SCHEDULE_FILE``).

``celery -A workers beat`` runs :class:`ScheduleFileScheduler` (the app's ``beat_scheduler``):

- at start it reads the file and refuses to start on a bad one, naming the file and the
  problem;
- it reads the file again when it changes (checked on every tick, so within beat's loop
  interval, 5 minutes at most by default); an edit that does not validate is logged and the
  schedule in force is kept;
- every ``shardline.periodic_run`` it sends carries the *slot* of the fire (the scheduled
  time, see :mod:`shared.schedule`), so the run does not depend on when a beat process or a
  worker got to it, and two beat processes firing the same slot start one run.

Entries carry only names (``run:<name>``/``inbox:<name>`` → the task with the name as its
argument): the worker reads the spec from its own copy of the file, so workers need the same
file as beat. ``every`` schedules are aligned to the epoch (``every = "6h"`` fires at 00:00,
06:00, 12:00, 18:00 UTC), unlike Celery's own intervals, which count from beat's start and
drift; that is what makes two beats fire the same slots.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import BaseSchedule, schedstate, schedule

from shared import names
from shared.errors import InputFileError
from shared.schedule import PeriodicRun, Schedule, floor_slot, parse_cron, schedule_of
from shared.settings import Settings

log = logging.getLogger("shardline.beat")

RUN_ENTRY = "run:"
INBOX_ENTRY = "inbox:"


class aligned_every(schedule):  # type: ignore[misc]  # noqa: N801 (as Celery names schedules)
    """Due at every multiple of ``run_every`` since the epoch (UTC), like ``*/N`` in cron."""

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        now: datetime = self.maybe_make_aware(self.now())
        period: timedelta = self.run_every
        return floor_slot(self.maybe_make_aware(last_run_at), period) + period - now

    def is_due(self, last_run_at: datetime) -> schedstate:
        now: datetime = self.maybe_make_aware(self.now())
        current = floor_slot(now, self.run_every)
        next_in = (current + self.run_every - now).total_seconds()
        last = floor_slot(self.maybe_make_aware(last_run_at), self.run_every)
        return schedstate(last < current, next_in)

    def __repr__(self) -> str:
        return f"<aligned every {self.run_every}>"


def entries_for(plan: Schedule) -> dict[str, dict[str, Any]]:
    """Beat entries of a schedule: small, secret-free arguments (names only)."""
    entries: dict[str, dict[str, Any]] = {}
    for run in plan.run:
        timing: BaseSchedule = (
            aligned_every(run.every) if run.every is not None else parse_cron(run.cron or "")
        )
        entries[f"{RUN_ENTRY}{run.name}"] = {
            "task": names.TASK_PERIODIC_RUN,
            "schedule": timing,
            "args": (run.name,),
        }
    for inbox in plan.inbox:
        entries[f"{INBOX_ENTRY}{inbox.name}"] = {
            "task": names.TASK_INBOX_SWEEP,
            "schedule": aligned_every(inbox.every),
            "args": (inbox.name,),
            # A sweep still queued when the next is due is worthless: drop it.
            "options": {"expires": inbox.every.total_seconds()},
        }
    return entries


def beat_schedule_from(settings: Settings) -> dict[str, dict[str, Any]]:
    """``app.conf.beat_schedule`` entries for the settings' schedule file (none without one).

    Raises ``InputFileError`` naming the file and the problem when the file is unusable.
    """
    return entries_for(schedule_of(settings.schedule_file))


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What changes when the file is edited or replaced (editors often write a new file)."""
    if path is None:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino


class ScheduleFileScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's persistent scheduler plus the entries of the schedule file (see module)."""

    _stamp: tuple[int, int, int] | None = None
    _runs: dict[str, PeriodicRun] = {}  # replaced on every load, never mutated
    _file_entries: dict[str, dict[str, Any]] = {}

    @property
    def _path(self) -> Path | None:
        path: Path | None = self.app.settings.schedule_file
        return path

    def _load(self) -> Schedule:
        stamp = _stamp(self._path)  # before reading: an edit made meanwhile is seen next tick
        plan = schedule_of(self._path)
        self._file_entries = entries_for(plan)
        self._runs = {run.name: run for run in plan.run}
        self._stamp = stamp
        return plan

    def setup_schedule(self) -> None:
        try:
            plan = self._load()
        except InputFileError as exc:
            # Raised on, Celery logs it with a traceback and re-raises it into a stderr
            # its logging proxy writes one character a line: log it once and stop.
            log.critical("cannot start: %s", exc)
            raise SystemExit(2) from None
        if self._path is not None:
            log.info("schedule file %s: %d run(s), %d inbox(es)",
                     self._path, len(plan.run), len(plan.inbox))
        super().setup_schedule()

    def merge_inplace(self, b: dict[str, Any]) -> None:
        super().merge_inplace({**b, **self._file_entries})

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._reload_if_edited()
        delay: float = super().tick(*args, **kwargs)
        return delay

    def _reload_if_edited(self) -> None:
        if self._path is None:
            return
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        try:
            plan = self._load()
        except InputFileError as exc:
            self._stamp = stamp  # say it once per edit, not on every tick
            log.error("schedule file changed but cannot be used; keeping the schedule in "
                      "force: %s", exc)
            return
        self.merge_inplace(self.app.conf.beat_schedule)
        self._heap = None  # recompute every due time from the new entries
        log.info("schedule file %s reloaded: %d run(s), %d inbox(es)",
                 self._path, len(plan.run), len(plan.inbox))

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        """Send the entry's task; a periodic run also gets the slot this fire stands for."""
        run = self._runs.get(entry.args[0]) if (
            entry.task == names.TASK_PERIODIC_RUN and entry.args
        ) else None
        if run is not None:
            slot = run.slot_at(entry.schedule.now())
            entry = self.Entry(**dict(entry, kwargs={**entry.kwargs, "slot": slot.isoformat()}))
        return super().apply_async(entry, producer, advance, **kwargs)
