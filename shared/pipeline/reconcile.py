"""The reconciler: finds runs that nobody is moving any more and sets them going again.

Nothing in a run is lost when a message is (a flushed broker, a poll whose countdown message
vanished): the records say what is left to do, and every step is idempotent. A shard is
*stale* when none of its records changed for longer than a live worker can stay silent —
the visibility timeout (after which the broker itself redelivers) plus two poll intervals.
Then its latest attempt's chain is sent again, on its own; a run whose shards
are all final but which has no summary gets its merge sent again. Jobs pending close to the
provider's 48 h limit are reported, so an operator can act before they expire. Last, the
orphan sweep (:mod:`shared.pipeline.sweep`) frees provider files and jobs nothing needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import get_args

from pydantic import BaseModel, Field

from shared import names
from shared.access import AccessPolicy
from shared.admission import Admission
from shared.apikeys import ApiKeyPool
from shared.errors import AccessError, ShardlineError
from shared.ownership import verify_run
from shared.pipeline.sweep import SweepReport, sweep_orphans
from shared.run.records import utcnow
from shared.run.registry import RunEntry, RunRegistry
from shared.run.states import BatchState
from shared.run.store import RunStore, parts_of
from shared.settings import ProviderName, Settings
from shared.storage import open_storage

log = logging.getLogger("shardline.reconcile")

#: A job still pending after this long is close to the provider's 48 h expiry.
PENDING_WARNING = timedelta(hours=44)


class ReconcileReport(BaseModel):
    runs_checked: int = 0
    live_jobs: dict[str, set[str]] = Field(default_factory=dict)
    live_files: dict[str, set[str]] = Field(default_factory=dict)
    admission_dropped: int = 0
    chains_restarted: list[str] = Field(default_factory=list)
    merges_restarted: list[str] = Field(default_factory=list)
    plans_restarted: list[str] = Field(default_factory=list)
    pending_near_expiry: list[str] = Field(default_factory=list)
    unreadable: list[str] = Field(default_factory=list)
    #: Registry objects that are not readable entries (skipped; see RunRegistry.entries).
    skipped_entries: list[str] = Field(default_factory=list)
    #: Runs left alone: their output is no longer allowed, or holds another run.
    refused: list[str] = Field(default_factory=list)
    sweep: SweepReport | None = None


def stale_after(settings: Settings) -> timedelta:
    return timedelta(
        seconds=settings.visibility_timeout_seconds + 2 * settings.poll_max_seconds + 60
    )


def last_activity(store: RunStore, shard: int) -> datetime | None:
    """The newest timestamp in any record of the shard (None if it has none yet)."""
    attempts = store.attempts(shard)
    moments: list[datetime] = [attempt.created_at for attempt in attempts]
    for ref in parts_of(attempts):
        upload = store.upload(ref.shard, ref.attempt, ref.part)
        if upload is not None:
            moments.extend(m for m in (upload.started_at, upload.finished_at) if m)
        job = store.job(ref.shard, ref.attempt, ref.part)
        if job is not None:
            moments.extend(m for m in (job.intent_at, job.created_at, job.polled_at) if m)
        collected = store.collected(ref.shard, ref.attempt, ref.part)
        if collected is not None:
            moments.append(collected.collected_at)
    return max(moments, default=None)


def reconcile_run(
    entry: RunEntry,
    settings: Settings,
    report: ReconcileReport,
    *,
    now: datetime,
    restart_chain: Callable[[str, str, int, int], None],
    restart_merge: Callable[[str, str], None],
    restart_plan: Callable[[str, str], None],
    policy: AccessPolicy | None = None,
) -> None:
    storage = open_storage(entry.output_uri)
    if policy is not None:
        try:
            verify_run(policy, storage, entry.run_id, entry.output_uri)
        except AccessError as exc:
            log.warning("run %s: left alone: %s", entry.run_id, exc)
            report.refused.append(entry.run_id)
            return
    store = RunStore(storage)
    if store.summary() is not None:
        return
    report.runs_checked += 1
    threshold = now - stale_after(settings)
    manifest = store.manifest()
    plan = store.plan()
    if plan is None:
        if manifest.created_at < threshold:
            restart_plan(entry.run_id, entry.output_uri)
            report.plans_restarted.append(entry.run_id)
        return
    all_final = True
    newest: datetime | None = None
    for shard in plan.shards:
        outcome = store.outcome(shard.index)
        if outcome is not None:
            newest = max(filter(None, [newest, outcome.finished_at]))
            continue
        all_final = False
        attempts = store.attempts(shard.index)
        latest = attempts[-1] if attempts else None
        for ref in parts_of(attempts[-1:]):
            job = store.job(ref.shard, ref.attempt, ref.part)
            if (job is not None and job.state is BatchState.PENDING
                    and job.created_at is not None
                    and now - job.created_at > PENDING_WARNING):
                report.pending_near_expiry.append(job.job_name or job.display_name)
                log.warning("job %s of run %s pending for %s: near the 48 h expiry",
                            job.job_name, entry.run_id, now - job.created_at)
        _note_holders(entry.run_id, store, shard.index, report)
        activity = last_activity(store, shard.index) or plan.planned_at
        if latest is not None and activity < threshold:
            restart_chain(entry.run_id, entry.output_uri, shard.index, latest.attempt)
            report.chains_restarted.append(f"{entry.run_id}/s{shard.index}/a{latest.attempt}")
    if all_final and (newest is None or newest < threshold):
        restart_merge(entry.run_id, entry.output_uri)
        report.merges_restarted.append(entry.run_id)


def _note_holders(run_id: str, store: RunStore, shard: int, report: ReconcileReport) -> None:
    """What the records say each key holds: live jobs and undeleted provider files."""
    for ref in store.parts(shard):
        holder = names.redis_holder(run_id, ref.shard, ref.attempt, ref.part)
        upload = store.upload(ref.shard, ref.attempt, ref.part)
        if upload is not None and not upload.deleted:
            report.live_files.setdefault(upload.key_fingerprint, set()).add(holder)
        job = store.job(ref.shard, ref.attempt, ref.part)
        if job is not None and (job.state is None or not job.state.terminal):
            report.live_jobs.setdefault(job.key_fingerprint, set()).add(holder)


def reconcile(
    settings: Settings,
    *,
    restart_chain: Callable[[str, str, int, int], None],
    restart_merge: Callable[[str, str], None],
    restart_plan: Callable[[str, str], None],
    admission: Admission | None = None,
    sweep: bool = False,
    now: datetime | None = None,
) -> ReconcileReport:
    """Look at every unfinished run of the registry once; with ``sweep``, sweep orphans."""
    report = ReconcileReport()
    moment = now or utcnow()
    policy = AccessPolicy.from_settings(settings)
    registry = RunRegistry(open_storage(settings.state_uri))
    for entry in registry.entries(unreadable=lambda key, _: report.skipped_entries.append(key)):
        try:
            reconcile_run(
                entry, settings, report, now=moment, restart_chain=restart_chain,
                restart_merge=restart_merge, restart_plan=restart_plan, policy=policy,
            )
        except ShardlineError as exc:
            log.warning("run %s: cannot reconcile: %s", entry.run_id, exc)
            report.unreadable.append(entry.run_id)
    if admission is not None and not report.unreadable:
        # Holdings of workers that died between acquiring and recording are freed here,
        # per project: the census of all its keys together.
        fingerprints = [
            fp
            for name in get_args(ProviderName)
            for fp in ApiKeyPool(settings.key_pool(name)).fingerprints
        ]
        dropped = admission.reconcile_all(
            fingerprints,
            jobs=report.live_jobs,
            files=report.live_files,
        )
        report.admission_dropped += len(dropped.jobs) + len(dropped.files)
    if sweep:
        report.sweep = sweep_orphans(settings, now=moment)
    return report
