"""The deadline check: restart every subject whose lease lapsed or whose message is overdue.

Cheap by construction: one ``ZRANGEBYSCORE`` on the deadline index finds the candidates
(none, on a healthy fleet); each one is then verified against the run's records in storage
— the summary, the subject's lease record, a shard's outcome — before anything is sent, so
an index entry that lags behind storage is corrected, never acted on. A restart writes the
new expectation (a fresh ticket, due now, ``restarts`` + 1, so a subject that keeps being
overdue is retried at growing intervals) *before* sending the message, the way the
reconciler re-sends a chain: the plan task, the shard's chain from its upload step (every
step skips what its records say is done), or the merge.

Where it runs: a timer thread in every worker (``workers.liveness``) calls
:func:`check_deadlines` every ``SHARDLINE_DEADLINE_CHECK_SECONDS``; a Redis claim lets one
worker of the fleet do it per interval. A worker starting up checks at once, so the runs of
a fleet that lost every worker move again seconds after the first new one is up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, Field

from shared.errors import RunNotFoundError, ShardlineError
from shared.liveness.index import REBUILD_LOCK, DeadlineIndex
from shared.liveness.records import (
    PLAN,
    QUEUED_PATIENCE,
    Lease,
    message_ticket,
    overdue_at,
    subject_shard,
)
from shared.liveness.watch import (
    close_subject,
    expect,
    index_lease,
    new_task_id,
    read_lease,
    read_lease_at,
)
from shared.run import layout
from shared.run.records import utcnow
from shared.run.registry import RunRegistry
from shared.settings import Settings
from shared.storage import Storage, open_storage

log = logging.getLogger("shardline.liveness")

#: Candidates verified per check; the rest wait for the next check (most overdue first).
CHECK_BATCH = 500
#: How long one rebuild may hold the fleet-wide rebuild claim.
REBUILD_CLAIM_SECONDS = 600.0


class Restarter(Protocol):
    """Sends the messages a restart needs; the first one carries the task id ``task_id``."""

    def plan(self, run_id: str, output_uri: str, task_id: str) -> None: ...

    def chain(self, run_id: str, output_uri: str, shard: int, attempt: int, step: str,
              task_id: str) -> None: ...

    def send_shards(self, run_id: str, output_uri: str, first: int, task_id: str) -> None: ...

    def merge(self, run_id: str, output_uri: str, task_id: str) -> None: ...

    def backlog(self) -> int:
        """Messages ready in the queue, not yet taken by any worker."""
        ...


class CheckReport(BaseModel):
    backlog: int = 0
    due: int = 0
    restarted: list[str] = Field(default_factory=list)
    reindexed: int = 0
    dropped: int = 0
    rebuilt: int | None = None
    unreadable: list[str] = Field(default_factory=list)


def check_deadlines(settings: Settings, index: DeadlineIndex, restart: Restarter, *,
                    now: datetime | None = None,
                    storage_for: Callable[[str], Storage] = open_storage) -> CheckReport:
    """One pass: rebuild the index if it was lost, then act on every overdue subject."""
    moment = now or utcnow()
    report = CheckReport()
    if not index.built():
        report.rebuilt = rebuild_index(settings, index, storage_for=storage_for)
    report.backlog = restart.backlog()
    # With messages waiting in the queue, a queued subject's message may be among them:
    # only the very late ones count as lost then.
    queued_until = moment if report.backlog == 0 else moment - QUEUED_PATIENCE * _grace(settings)
    for run_id, subject in index.due(moment, CHECK_BATCH, queued_until=queued_until):
        report.due += 1
        try:
            _verify(settings, index, restart, report, run_id, subject, moment, storage_for)
        except ShardlineError as exc:
            log.warning("run %s %s: cannot check its deadline: %s", run_id, subject, exc)
            report.unreadable.append(f"{run_id}/{subject}")
    return report


def _verify(settings: Settings, index: DeadlineIndex, restart: Restarter,
            report: CheckReport, run_id: str, subject: str, now: datetime,
            storage_for: Callable[[str], Storage]) -> None:
    output_uri = index.output_uri(run_id) or _registered_output(settings, run_id, storage_for)
    if output_uri is None:
        index.put(run_id, "", subject, None, shard=False)
        report.dropped += 1
        return
    storage = storage_for(output_uri)
    if storage.exists(layout.SUMMARY):
        index.put(run_id, output_uri, subject, None, shard=False)
        index.forget_run(run_id)
        report.dropped += 1
        return
    lease = read_lease(storage, subject)
    at = None if lease is None else overdue_at(lease, _grace(settings))
    if lease is None or at is None:
        index.put(run_id, output_uri, subject, None, shard=False)
        report.dropped += 1
        return
    patience = (QUEUED_PATIENCE * _grace(settings) if lease.queued and report.backlog
                else timedelta(0))
    if at + patience > now:
        # Renewed or re-scheduled since the index was written, or queued behind a backlog.
        index_lease(index, settings, run_id, output_uri, lease)
        report.reindexed += 1
        return
    shard = subject_shard(subject)
    if shard is not None and storage.exists(layout.shard_outcome(shard)):
        # Final, but its task died before saying so: nothing to restart.
        close_subject(storage, index, settings, run_id=run_id, output_uri=output_uri,
                      subject=subject, now=now)
        report.dropped += 1
        return
    _restart(settings, index, restart, storage, run_id, output_uri, lease, now)
    report.restarted.append(f"{run_id}/{subject}")


def _restart(settings: Settings, index: DeadlineIndex, restart: Restarter, storage: Storage,
             run_id: str, output_uri: str, lease: Lease, now: datetime) -> None:
    """Send the subject's step again, as the message its record names: the same task id (a
    message that killed its worker keeps counting towards being parked as poison, see
    :mod:`shared.poison`), or a new one when the record names none."""
    named = (lease.ticket or "").rpartition(":")[0]
    task_id = named or new_task_id()
    shard = subject_shard(lease.subject)
    log.warning("run %s %s: %s %s since %s; restarting from its records (restart %d)",
                run_id, lease.subject, lease.step,
                "lease lapsed" if lease.state == "running" else "message overdue",
                lease.deadline.isoformat(), lease.restarts + 1)
    expect(storage, index, settings, run_id=run_id, output_uri=output_uri,
           subject=lease.subject, step=lease.step, attempt=lease.attempt,
           ticket=message_ticket(task_id), due=now, restarts=lease.restarts + 1)
    if shard is not None:
        restart.chain(run_id, output_uri, shard, max(lease.attempt, 1), lease.step, task_id)
    elif lease.step == "send":
        restart.send_shards(run_id, output_uri, lease.attempt, task_id)
    elif lease.subject == PLAN:
        restart.plan(run_id, output_uri, task_id)
    else:
        restart.merge(run_id, output_uri, task_id)


def rebuild_index(settings: Settings, index: DeadlineIndex, *,
                  storage_for: Callable[[str], Storage] = open_storage) -> int:
    """Index every lease record of every unfinished run; how many were indexed (-1 when
    another process is rebuilding already).

    Runs once after Redis lost the index (the ``~built`` marker is gone): one listing of
    the registry and, per unfinished run, one listing and one read per subject.
    """
    if not index.claim(REBUILD_LOCK, REBUILD_CLAIM_SECONDS):
        return -1
    count = 0
    try:
        for entry in RunRegistry(storage_for(settings.state_uri)).entries():
            try:
                storage = storage_for(entry.output_uri)
                if storage.exists(layout.SUMMARY):
                    continue
                for info in storage.list(f"{layout.LEASES}/"):
                    lease = read_lease_at(storage, info.key)
                    if lease is not None:
                        index_lease(index, settings, entry.run_id, entry.output_uri, lease)
                        count += 1
            except ShardlineError as exc:
                log.warning("run %s: lease records unreadable, not indexed: %s",
                            entry.run_id, exc)
        index.mark_built()
        log.info("deadline index rebuilt from storage: %d subjects", count)
    finally:
        index.release(REBUILD_LOCK)
    return count


def _registered_output(settings: Settings, run_id: str,
                       storage_for: Callable[[str], Storage]) -> str | None:
    try:
        entry = RunRegistry(storage_for(settings.state_uri)).lookup(run_id)
        return entry.output_uri
    except RunNotFoundError:
        return None


def _grace(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.liveness_grace_seconds)
