"""The orphan sweep: provider files and batch jobs Shardline made and no longer needs.

A killed worker can leave things at the provider that no record will ever name again: an
input file finalized but not yet recorded when its run was then cancelled (no upload resumes
to adopt it), a job created but not yet recorded likewise, a second copy made by a duplicate
delivery that died before deleting it, the output file of a job nobody will collect. They
count against the project's 20 GB of files and 100 live jobs until the provider's 48 h
expiry. The sweep lists each project's files and jobs, recognises Shardline's own, asks the
run's records what became of each part, and frees what is finished or forgotten.

What is Shardline's (and this deployment's):

- a file or job whose display name is ``shardline-<run>-s<shard>-a<attempt>-p<part>``
  (``display_name`` of the storage layout) **and** whose run is in this deployment's run
  registry (``SHARDLINE_STATE_URI``);
- a generated output file (it has no display name) only through a job of ours whose
  ``output`` names it. So output files are deleted before their job: once the job is gone,
  nothing ties the file to us any more, and it stays until the provider expires it.

Everything else is never touched: files and jobs with another display name (another tool,
the SDK, a person), and ours by name whose run this registry does not know. The latter may
be another Shardline deployment sharing the key (its own registry, its own runs), so the
sweep cannot tell a leak from someone else's live work; it counts them in the report.

What happens to a part's things, by what its records say (:class:`PartStatus`):

=============  =========================================================================
final          (collected, shard outcome written, or run merged) files deleted and live
               jobs cancelled at once: no step will use them again. The part's finished
               job is kept (it holds no quota, and it is the provider's record of what
               ``summary.json`` names); any other finished job of the part is deleted
               after the grace period, its output file first.
live           the file and job the records name are kept, and so is anything while the
               records name none yet (an upload or create in flight, or one a restarted
               task will adopt by display name). A *second* file or job of the part (the
               records name another one) is a duplicate: deleted / cancelled after the
               grace period.
cancelled      (the run's cancel marker, part not final) live jobs are cancelled; the
               file and finished job the records name wait until the part is final (the
               cancel collects them); second copies go as for a live part.
missing        (the run is registered, the part has no record) after the grace period,
               treated like a duplicate. The grace spares a record about to be written.
unregistered   never touched (see above); unreadable records: never touched this time.
=============  =========================================================================

The decisions are the pure function :func:`plan_sweep`; :func:`sweep` lists, reads the
records (:func:`read_views`) and carries the actions out. It lists with every key of the
pool (keys of one project see the same things; each is handled once), so a pool whose labels
are wrong still has everything swept.

Cost: each pass lists every file and batch job the keys see (pages of 100 and 1,000) and
reads the records of each run that has something at the provider (a merged run: two small
reads). The part's own finished jobs are kept, so the job listing grows with the jobs the
provider retains.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

from shared.apikeys import ApiKeyPool
from shared.errors import NotFoundError, ProviderError, RunNotFoundError, ShardlineError
from shared.provider import BatchProvider, ProviderFile, ProviderJob, build_provider
from shared.run import layout
from shared.run.records import utcnow
from shared.run.registry import RunRegistry
from shared.run.store import RunStore
from shared.settings import Settings
from shared.storage import open_storage

log = logging.getLogger("shardline.sweep")

#: How long a thing of a part without a record (or a second one) is spared: a worker writes
#: the record just after the create or the upload returns, and may be slow to.
SWEEP_GRACE = timedelta(minutes=10)

_DISPLAY_NAME = re.compile(
    r"shardline-(?P<run>[A-Za-z0-9][A-Za-z0-9-]*?)"
    r"-s(?P<shard>\d{5,})-a(?P<attempt>\d{2,})-p(?P<part>\d{3,})"
)


class PartId(NamedTuple):
    """One part of one attempt of one shard of a run, as its display name spells it."""

    run_id: str
    shard: int
    attempt: int
    part: int


def parse_display_name(display_name: str | None) -> PartId | None:
    """The part a Shardline display name stands for; None for any other name."""
    match = _DISPLAY_NAME.fullmatch(display_name or "")
    if match is None:
        return None
    return PartId(
        match["run"], int(match["shard"]), int(match["attempt"]), int(match["part"])
    )


class PartStatus(StrEnum):
    """What the records say about a part (see the module docstring)."""

    FINAL = "final"
    LIVE = "live"
    CANCELLED = "cancelled"
    MISSING = "missing"
    UNREGISTERED = "unregistered"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class PartView:
    """A part's status and the provider file and job its records name (if any)."""

    status: PartStatus
    file_name: str | None = None
    job_name: str | None = None


ActionKind = Literal["delete_file", "cancel_job", "delete_job"]


@dataclass(frozen=True)
class Action:
    """One thing to do at the provider. ``after``: a file whose deletion must succeed first
    (a job's output: deleting the job first would orphan it for good)."""

    kind: ActionKind
    name: str
    part: PartId
    reason: str
    size_bytes: int = 0
    after: str | None = None


@dataclass
class SweepPlan:
    """The actions (file deletions first), and how many things were kept, by reason."""

    actions: list[Action] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)


def owned_parts(files: Iterable[ProviderFile], jobs: Iterable[ProviderJob]) -> set[PartId]:
    """The parts whose records the sweep must read: every Shardline display name listed."""
    names = [f.display_name for f in files] + [j.display_name for j in jobs]
    return {part for part in map(parse_display_name, names) if part is not None}


def plan_sweep(
    files: Iterable[ProviderFile],
    jobs: Iterable[ProviderJob],
    views: Mapping[PartId, PartView],
    *,
    now: datetime,
    grace: timedelta = SWEEP_GRACE,
) -> SweepPlan:
    """Decide, for one project's listing, what to delete and cancel (pure; see the module).

    ``views`` holds a :class:`PartView` for each part of :func:`owned_parts`; a part
    without one is treated as unreadable (kept).
    """
    plan = SweepPlan()
    job_list = list(jobs)
    # Generated files carry no display name: they are ours through the job that made them.
    producer = {job.output: job for job in job_list if job.output and _ref(job) is not None}
    deleted_files: set[str] = set()
    for file in files:
        ref = parse_display_name(file.display_name)
        job = None
        if ref is None:
            job = producer.get(file.name)
            ref = _ref(job) if job is not None else None
        if ref is None:
            plan.kept["not shardline's"] += 1
            continue
        view = views.get(ref, PartView(PartStatus.UNREADABLE))
        reason = _file_verdict(view, file.name if job is None else None, job, file, now, grace)
        if reason.startswith("keep:"):
            plan.kept[reason.removeprefix("keep:")] += 1
            continue
        deleted_files.add(file.name)
        plan.actions.append(
            Action("delete_file", file.name, ref, reason, size_bytes=file.size_bytes or 0)
        )
    for job in job_list:
        ref = _ref(job)
        if ref is None:
            plan.kept["not shardline's"] += 1
            continue
        view = views.get(ref, PartView(PartStatus.UNREADABLE))
        verdict = _job_verdict(view, job, now, grace)
        if verdict is None:
            plan.kept[_keep_reason(view)] += 1
            continue
        kind, reason = verdict
        after = job.output if kind == "delete_job" and job.output in deleted_files else None
        plan.actions.append(Action(kind, job.name, ref, reason, after=after))
    return plan


def _ref(job: ProviderJob | None) -> PartId | None:
    return None if job is None else parse_display_name(job.display_name)


def _keep_reason(view: PartView) -> str:
    if view.status in (PartStatus.UNREGISTERED, PartStatus.UNREADABLE):
        return f"run {view.status}"
    return f"part {view.status}"


def _aged(created: datetime | None, now: datetime, grace: timedelta) -> bool:
    """Older than the grace period (a thing without a time is judged by its records only)."""
    return created is None or now - created >= grace


def _file_verdict(
    view: PartView,
    uploaded: str | None,
    job: ProviderJob | None,
    file: ProviderFile,
    now: datetime,
    grace: timedelta,
) -> str:
    """``"keep:<why>"`` or the reason to delete. ``uploaded``: the file's name if it is an
    input (a display name of ours); ``job``: the job whose output it is, if generated."""
    status = view.status
    if status is PartStatus.FINAL:
        return "part final"
    if status in (PartStatus.UNREGISTERED, PartStatus.UNREADABLE):
        return f"keep:run {status}"
    aged = _aged(file.create_time, now, grace)
    if status is PartStatus.MISSING:
        return "part has no record" if aged else "keep:part missing, in grace"
    if uploaded is not None:
        duplicate = view.file_name is not None and view.file_name != uploaded
    else:
        duplicate = job is not None and view.job_name is not None and view.job_name != job.name
    if duplicate:
        if not aged:
            return "keep:duplicate, in grace"
        return "a second upload of the part" if uploaded else "output of a second job of the part"
    return f"keep:part {status}"


def _job_verdict(
    view: PartView, job: ProviderJob, now: datetime, grace: timedelta
) -> tuple[ActionKind, str] | None:
    status = view.status
    if status not in (PartStatus.FINAL, PartStatus.LIVE, PartStatus.CANCELLED,
                      PartStatus.MISSING):
        return None
    if job.is_live and status is PartStatus.FINAL:
        return ("cancel_job", "part final")
    if job.is_live and status is PartStatus.CANCELLED:
        return ("cancel_job", "run cancelled")
    if status is PartStatus.MISSING:
        reason = "part has no record"
    elif view.job_name is not None and view.job_name != job.name:
        reason = "a second job of the part"
    elif status is PartStatus.FINAL and view.job_name is None:
        reason = "a job its final part never recorded"
    else:
        # The part's own job (a finished one costs no quota and is the provider's record of
        # the part), or one a create in flight will adopt by its display name.
        return None
    if not _aged(job.create_time, now, grace):
        return None
    return ("cancel_job", reason) if job.is_live else ("delete_job", reason)


# ---- reading the records -------------------------------------------------------------------


def read_views(parts: Iterable[PartId], registry: RunRegistry) -> dict[PartId, PartView]:
    """What the records say about each part, reading each run once.

    A run the registry does not have is UNREGISTERED; a registered run without a readable
    manifest (storage failing, or pointing elsewhere) is UNREADABLE: a part is only MISSING
    when its run's records are there and say nothing about it.
    """
    by_run: dict[str, list[PartId]] = {}
    for ref in parts:
        by_run.setdefault(ref.run_id, []).append(ref)
    views: dict[PartId, PartView] = {}
    for run_id, refs in sorted(by_run.items()):
        try:
            entry = registry.lookup(run_id)
        except RunNotFoundError:
            views.update(dict.fromkeys(refs, PartView(PartStatus.UNREGISTERED)))
            continue
        except ShardlineError as exc:
            log.warning("sweep: run %s: cannot read the registry: %s", run_id, exc)
            views.update(dict.fromkeys(refs, PartView(PartStatus.UNREADABLE)))
            continue
        try:
            views.update(_run_views(RunStore(open_storage(entry.output_uri)), refs))
        except ShardlineError as exc:
            log.warning("sweep: run %s: cannot read its records: %s", run_id, exc)
            views.update(dict.fromkeys(refs, PartView(PartStatus.UNREADABLE)))
    return views


def _run_views(records: RunStore, refs: list[PartId]) -> dict[PartId, PartView]:
    records.manifest()  # raises when the run's records are not there
    if records.summary() is not None:
        return dict.fromkeys(refs, PartView(PartStatus.FINAL))
    live = PartStatus.CANCELLED if records.cancel_requested() else PartStatus.LIVE
    views = {}
    for ref in refs:
        _, shard, attempt, part = ref
        upload = records.upload(shard, attempt, part)
        job = records.job(shard, attempt, part)
        named = {
            "file_name": upload.file_name if upload is not None else None,
            "job_name": job.job_name if job is not None else None,
        }
        record = records.attempt(shard, attempt)
        if records.outcome(shard) is not None or records.collected(shard, attempt, part):
            views[ref] = PartView(PartStatus.FINAL, **named)
        elif record is None or part not in {p.part for p in record.parts}:
            views[ref] = PartView(PartStatus.MISSING, **named)
        else:
            views[ref] = PartView(live, **named)
    return views


# ---- listing and acting ----------------------------------------------------------------------


class SweptItem(BaseModel):
    """One action, as reported (names and reasons only: nothing secret)."""

    kind: ActionKind
    name: str
    part: str  # the part's display name
    reason: str
    size_bytes: int = 0
    done: bool  # False in a dry run, or when the provider refused


class SweepReport(BaseModel):
    """What a sweep saw, freed and kept; ``dry_run`` reports what it would have done."""

    dry_run: bool = False
    keys_listed: int = 0
    files_seen: int = 0
    jobs_seen: int = 0
    files_deleted: int = 0
    bytes_freed: int = 0
    jobs_cancelled: int = 0
    jobs_deleted: int = 0
    kept: dict[str, int] = Field(default_factory=dict)
    actions: list[SweptItem] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


def sweep(
    key_fingerprints: Sequence[str],
    provider_for: Callable[[str], BatchProvider],
    registry: RunRegistry,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    grace: timedelta = SWEEP_GRACE,
) -> SweepReport:
    """List what each key sees at the provider, free what is Shardline's and done with.

    A key whose listing fails is reported in ``errors``; the others are still swept.
    """
    report = SweepReport(dry_run=dry_run)
    kept: Counter[str] = Counter()
    seen_files: set[str] = set()
    seen_jobs: set[str] = set()
    moment = now or utcnow()
    for fingerprint in key_fingerprints:
        provider = provider_for(fingerprint)
        try:
            files = [f for f in provider.list_files() if f.name not in seen_files]
            jobs = [j for j in provider.list_jobs() if j.name not in seen_jobs]
        except ProviderError as exc:
            report.errors.append(f"key {fingerprint}: cannot list: {exc}")
            continue
        report.keys_listed += 1
        seen_files.update(f.name for f in files)
        seen_jobs.update(j.name for j in jobs)
        report.files_seen += len(files)
        report.jobs_seen += len(jobs)
        parts = owned_parts(files, jobs)
        views = read_views(parts, registry)
        plan = plan_sweep(files, jobs, views, now=moment, grace=grace)
        kept.update(plan.kept)
        _carry_out(plan, provider, report, dry_run=dry_run)
    report.kept = dict(sorted(kept.items()))
    return report


def sweep_orphans(
    settings: Settings,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SweepReport:
    """:func:`sweep` with every configured key and this deployment's run registry."""
    pool = ApiKeyPool(settings.key_pool())
    providers: dict[str, BatchProvider] = {}

    def provider_for(key_fingerprint: str) -> BatchProvider:
        if key_fingerprint not in providers:
            providers[key_fingerprint] = build_provider(settings, pool.get(key_fingerprint))
        return providers[key_fingerprint]

    try:
        return sweep(
            pool.fingerprints,
            provider_for,
            RunRegistry(open_storage(settings.state_uri)),
            dry_run=dry_run,
            now=now,
        )
    finally:
        for provider in providers.values():
            provider.close()


def _carry_out(
    plan: SweepPlan, provider: BatchProvider, report: SweepReport, *, dry_run: bool
) -> None:
    failed: set[str] = set()
    for action in plan.actions:
        done = False
        if not dry_run and action.after not in failed:
            done = _act(action, provider, report, failed)
        report.actions.append(
            SweptItem(
                kind=action.kind,
                name=action.name,
                part=_display(action.part),
                reason=action.reason,
                size_bytes=action.size_bytes,
                done=done,
            )
        )


def _act(action: Action, provider: BatchProvider, report: SweepReport, failed: set[str]) -> bool:
    """Do one action; False if the provider refused (recorded in ``errors``)."""
    try:
        if action.kind == "delete_file":
            provider.delete_file(action.name)
        elif action.kind == "cancel_job":
            provider.cancel_job(action.name)
        else:
            provider.delete_job(action.name)
    except NotFoundError:
        return False  # gone meanwhile (its part's own cleanup, or expiry): nothing freed
    except ProviderError as exc:
        report.errors.append(f"{action.kind} {action.name}: {exc}")
        failed.add(action.name)
        return False
    log.info("sweep: %s %s (%s): %s", action.kind, action.name, _display(action.part),
             action.reason)
    if action.kind == "delete_file":
        report.files_deleted += 1
        report.bytes_freed += action.size_bytes
    elif action.kind == "cancel_job":
        report.jobs_cancelled += 1
    else:
        report.jobs_deleted += 1
    return True


def _display(ref: PartId) -> str:
    return layout.display_name(*ref)
