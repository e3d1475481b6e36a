"""The inbox sweep: exactly one run for every new object under an input prefix.

An object is new when its ``(inbox, URI, etag)`` has no claim yet. For each one the sweep

1. creates the claim ``inbox/<digest>.json`` in the registry storage (``Settings.state_uri``)
   with create-if-absent: of any number of sweeps (a double fire, two beat processes, a
   redelivered task) exactly one wins it, and only the winner goes on;
2. starts the run with an idempotency key derived from the digest, so even a second start
   of the same object (see 4) names the same run;
3. launches the run (sends its plan unless an earlier launch did, see
   ``workers.launch.launch_run``) and marks the claim ``started``.
4. A claim still ``claimed`` after :data:`CLAIM_TIMEOUT` belongs to a sweep that died between
   1 and 3: the next sweep finishes it. Start and launch are both idempotent, so this repeats
   no run, and no plan unless the dead sweep sent it but died before the launch marker.

A changed object (new etag) is a new object: a new claim, a new run, a new output
``<output_prefix>/<name without suffix>-<12 hex digits>``. S3 and GCS etags follow the
content, so the same bytes dropped again are not run again; a local file's etag follows its
modification time. An object that vanishes before its run starts gives its claim back. A run
that cannot start (not JSONL, outside the allowed prefixes, its output taken) leaves a
``failed`` claim with the reason; delete that claim to try again.

Cost: one small read per object under the prefix per sweep (the claim), so move or expire
processed objects from a busy inbox.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from shared.errors import InputError, InputFileError, ObjectNotFoundError
from shared.pipeline.start import RegisteredRun, register_run
from shared.run import layout
from shared.run.registry import run_id_for_key
from shared.run.spec import RunSpec
from shared.run.store import dump
from shared.schedule import Inbox
from shared.settings import Settings
from shared.storage import ObjectInfo, Storage, join_uri, open_storage, split_uri

log = logging.getLogger("shardline.inbox")

#: A claim left ``claimed`` this long was abandoned by a sweep that died; sweeps finish it.
CLAIM_TIMEOUT = timedelta(minutes=10)

#: ``launch(registered)``: send the run's plan unless already sent (``workers.launch.launch_run``).
Launch = Callable[[RegisteredRun], object]


class InboxClaim(BaseModel):
    """The record of one object taken by one inbox: written once, then marked."""

    inbox: str
    object_uri: str
    etag: str
    size: int
    run_id: str
    spec: RunSpec
    claimed_at: datetime
    state: Literal["claimed", "started", "failed"] = "claimed"
    started_at: datetime | None = None
    error: str | None = None


class SweepReport(BaseModel):
    """What one sweep did; small enough for a task result."""

    inbox: str
    seen: int = 0
    started: list[str] = Field(default_factory=list, description="Run ids this sweep started.")
    recovered: list[str] = Field(
        default_factory=list, description="Runs of claims a dead sweep left, finished here."
    )
    already: int = Field(default=0, description="Objects claimed before (or by a live sweep).")
    too_young: int = 0
    vanished: int = 0
    failed: list[str] = Field(default_factory=list, description="Objects whose run cannot start.")
    more: bool = Field(default=False, description="Stopped at max_starts; the next sweep goes on.")


def candidates(inbox: Inbox, storage: Storage) -> Iterator[ObjectInfo]:
    """Objects under the prefix with the inbox's suffix, hidden and ``_`` names left out."""
    for info in storage.list(""):
        if not info.key.endswith(inbox.suffix):
            continue
        if any(segment.startswith((".", "_")) for segment in info.key.split("/")):
            continue
        yield info


def object_etag(info: ObjectInfo) -> str:
    """The object's etag; size and modification time where a backend reports none."""
    if info.etag:
        return info.etag
    stamp = info.last_modified.isoformat() if info.last_modified else "-"
    return f"size={info.size};modified={stamp}"


def object_digest(inbox_name: str, object_uri: str, etag: str) -> str:
    """Names the claim and the run of one version of one object in one inbox."""
    return hashlib.sha256(f"{inbox_name}\0{object_uri}\0{etag}".encode()).hexdigest()


def new_claim(inbox: Inbox, info: ObjectInfo, now: datetime) -> InboxClaim:
    """The claim (and so the run) for one object; a pure function of inbox, object and etag."""
    etag = object_etag(info)
    object_uri = join_uri(inbox.input_prefix, info.key)
    digest = object_digest(inbox.name, object_uri, etag)
    stem = info.key.removesuffix(inbox.suffix) if inbox.suffix else info.key
    key = f"inbox:{inbox.name}:{digest[:40]}"
    spec = RunSpec(
        input_uri=object_uri,
        output_uri=join_uri(inbox.output_prefix, f"{stem}-{digest[:12]}"),
        idempotency_key=key,
        model=inbox.spec.model,
        kind=inbox.spec.kind,
        options=inbox.spec.options,
        labels={"inbox": inbox.name, **inbox.spec.labels},
    )
    return InboxClaim(
        inbox=inbox.name,
        object_uri=object_uri,
        etag=etag,
        size=info.size,
        run_id=run_id_for_key(key),
        spec=spec,
        claimed_at=now,
    )


def claim_key(claim: InboxClaim) -> str:
    return layout.registry_inbox(object_digest(claim.inbox, claim.object_uri, claim.etag))


def read_claim(state: Storage, key: str) -> InboxClaim | None:
    try:
        return InboxClaim.model_validate_json(state.read_bytes(key))
    except ObjectNotFoundError:
        return None


def sweep_inbox(
    settings: Settings, inbox: Inbox, *, now: datetime, launch: Launch
) -> SweepReport:
    """One sweep of ``inbox`` at time ``now``: claim and start every new object (see module)."""
    state = open_storage(settings.state_uri)
    report = SweepReport(inbox=inbox.name)
    min_age = timedelta(seconds=inbox.min_age_seconds)
    for info in candidates(inbox, open_storage(inbox.input_prefix)):
        report.seen += 1
        if info.last_modified is not None and now - info.last_modified < min_age:
            report.too_young += 1
            continue
        if len(report.started) + len(report.recovered) >= inbox.max_starts:
            report.more = True
            break
        fresh = new_claim(inbox, info, now)
        key = claim_key(fresh)
        claim = read_claim(state, key)
        if claim is None:
            if state.create_if_absent(key, dump(fresh)):
                _start(settings, state, key, fresh, launch, report, now=now, recovering=False)
                continue
            claim = read_claim(state, key)
        if claim is not None and _abandoned(claim, now):
            log.warning("inbox %s: finishing %s, abandoned since %s",
                        inbox.name, claim.object_uri, claim.claimed_at)
            _start(settings, state, key, claim, launch, report, now=now, recovering=True)
        else:
            report.already += 1
    return report


def _start(
    settings: Settings,
    state: Storage,
    key: str,
    claim: InboxClaim,
    launch: Launch,
    report: SweepReport,
    *,
    now: datetime,
    recovering: bool,
) -> None:
    """Start the claimed run and launch it, then mark the claim ``started``."""
    try:
        started = register_run(settings, claim.spec)
    except InputError as exc:
        if isinstance(exc, InputFileError) and not _still_there(claim.object_uri):
            log.info("inbox %s: %s vanished before its run started", claim.inbox,
                     claim.object_uri)
            state.delete(key)
            report.vanished += 1
            return
        # Refused for good (not JSONL, outside the allowed prefixes, output taken): a
        # failed claim, so the next sweeps do not try again.
        log.error("inbox %s: cannot start a run for %s (delete %s/%s to retry): %s",
                  claim.inbox, claim.object_uri, state.uri, key, exc)
        failed = claim.model_copy(update={"state": "failed", "error": str(exc)})
        state.write_bytes(key, dump(failed))
        report.failed.append(claim.object_uri)
        return
    launch(started)
    state.write_bytes(key, dump(claim.model_copy(update={"state": "started", "started_at": now})))
    (report.recovered if recovering else report.started).append(started.run_id)
    log.info("inbox %s: run %s for %s", claim.inbox, started.run_id, claim.object_uri)


def _still_there(object_uri: str) -> bool:
    store, key = split_uri(object_uri)
    return store.exists(key)


def _abandoned(claim: InboxClaim, now: datetime) -> bool:
    return claim.state == "claimed" and now - claim.claimed_at > CLAIM_TIMEOUT
