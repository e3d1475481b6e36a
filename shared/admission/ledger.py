"""Admission control across workers: what each Google Cloud project holds at the provider.

The provider's limits (100 live batch jobs, enqueued tokens per model, 20 GB of files) belong
to a *project*, and every key of a project shares them. Callers still name a key by its
fingerprint; the ledger counts under the key's project (:meth:`Settings.key_projects`:
``label:KEY`` entries of ``SHARDLINE_API_KEYS``, unlabelled keys all in one project). So two
keys of one project add no capacity, and keys of two projects add theirs. A fingerprint the
settings do not name (a key since removed from the pool) is counted as a project of its own.
Every worker must therefore be given the same pool and labels.

A *holder* is one part of one attempt (:func:`shared.names.redis_holder`); it holds, per
project, at most one live-job slot (with the tokens it enqueued, per model) and at most one
share of file storage (the bytes of its uploaded input file). Every change is one Lua script,
so workers racing for the last slot cannot both win, and is idempotent per holder: a task
redelivered after it acquired counts once, a release sent twice frees once.

Leaks, and why two remedies:

- A holding older than its TTL is dropped by the next script touching that key (job holdings
  72 h: longer than a job may live, 48 h, plus slack; file holdings 50 h: the provider deletes
  files after 48 h). This needs nothing to run, but a holder whose worker died keeps its slot
  until then.
- :meth:`Admission.reconcile` drops, sooner, holdings the run records do not vouch for. It
  trusts its caller to name every live holder (or to scope the call to some runs), and spares
  holdings younger than a grace period, since a holder writes its record just after acquiring.

Re-acquiring refreshes a holding's time, so a holder still at work is never dropped by TTL.
Redis holds project labels, fingerprints, holder ids, model names and numbers only: never an
API key. Keys are named ``shardline:{project-<label>}:...`` (``{fp-...}`` for a key of its own;
holdings made under a key's name before projects existed expire by their TTL).

Other limits, by choice:

- No queue: waiters poll with a jittered countdown, first come first served at each retry.
  A part needing most of a budget can wait while small parts keep filling it; it still runs
  once the key drains (a part larger than the whole budget runs alone).
- The counts are Shardline's view. Jobs or files made outside it in the same project (another
  tool, a lost worker's create found later) are not seen; set the budgets below the
  provider's limits to leave room. Output files the provider generates are not counted: they
  are deleted as soon as they are collected.
- The Redis must keep these keys: ``maxmemory-policy noeviction`` (Celery's broker needs
  the same). All keys of one fingerprint share a hash tag, but the client is a plain
  ``redis.Redis``: Redis Cluster is not supported.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from shared.admission import _lua
from shared.admission.rules import KeyLoad, Limits, orphans, pick_key, retry_countdown
from shared.apikeys import fingerprint
from shared.errors import RetryLater
from shared.settings import Settings

JOB_TTL_SECONDS = 72 * 3600.0
FILE_TTL_SECONDS = 50 * 3600.0
RECONCILE_GRACE_SECONDS = 600.0
RETRY_SECONDS = (30.0, 60.0)

_FINGERPRINT = re.compile(r"fp-[0-9a-f]+")


class Admit(BaseModel):
    """The holder holds it now; ``fresh`` is False when it already did (a redelivery)."""

    model_config = ConfigDict(frozen=True)

    key_fingerprint: str
    holder: str
    fresh: bool


class Holding(BaseModel):
    holder: str
    acquired_at: datetime
    amount: int  # tokens of a job holding, bytes of a file holding
    model: str | None = None


class KeySnapshot(BaseModel):
    """What a key's project holds, for status and debugging; secret-free."""

    key_fingerprint: str
    project: str | None  # None: a fingerprint the settings do not name, counted alone
    key_fingerprints: list[str]  # every configured key sharing these counts
    taken_at: datetime
    live_jobs: int
    max_live_jobs: int
    tokens_by_model: dict[str, int]
    token_budget: int | None
    file_bytes: int
    file_budget_bytes: int
    jobs: list[Holding]
    files: list[Holding]


class Reconciled(BaseModel):
    """The holders :meth:`Admission.reconcile` dropped."""

    jobs: list[str]
    files: list[str]


class Admission:
    """Live-job slots, enqueued tokens and file storage per project, shared through Redis.

    ``clock`` (seconds since the epoch) replaces the Redis server's clock, for tests;
    ``retry_seconds`` bounds the jittered countdown of the ``RetryLater`` a refusal raises.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        *,
        job_ttl_seconds: float = JOB_TTL_SECONDS,
        file_ttl_seconds: float = FILE_TTL_SECONDS,
        retry_seconds: tuple[float, float] = RETRY_SECONDS,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.redis = redis_client
        self.limits = Limits.from_settings(settings)
        self._projects = {fingerprint(key): label for key, label in settings.key_projects()}
        self._ttls = (round(job_ttl_seconds * 1000), round(file_ttl_seconds * 1000))
        self._retry = retry_seconds
        self._clock = clock
        self._rng = rng
        self._acquire_job = redis_client.register_script(_lua.ACQUIRE_JOB)
        self._release_job = redis_client.register_script(_lua.RELEASE_JOB)
        self._acquire_file = redis_client.register_script(_lua.ACQUIRE_FILE)
        self._release_file = redis_client.register_script(_lua.RELEASE_FILE)
        self._load = redis_client.register_script(_lua.LOAD)
        self._snapshot = redis_client.register_script(_lua.SNAPSHOT)

    # ---- live jobs and enqueued tokens ---------------------------------------------------

    def acquire_job(self, key_fingerprint: str, holder: str, model: str, tokens: int) -> Admit:
        """Take a live-job slot and ``tokens`` of ``model``'s budget, or raise ``RetryLater``.

        Admitted while the key's project has fewer live jobs than
        ``max_live_jobs_per_project`` and the tokens fit ``enqueued_token_budget`` (a part
        larger than the budget goes alone).
        """
        _check(key_fingerprint, holder, tokens)
        verdict, live, enqueued = self._run(
            self._acquire_job,
            key_fingerprint,
            holder,
            model,
            tokens,
            self.limits.max_live_jobs,
            "" if self.limits.token_budget is None else self.limits.token_budget,
        )
        if verdict == "jobs":
            self._wait(
                f"{self._who(key_fingerprint)} has {live} live batch jobs, the limit is "
                f"{self.limits.max_live_jobs}"
            )
        if verdict == "tokens":
            self._wait(
                f"{self._who(key_fingerprint)} has {enqueued} tokens of {model} enqueued; "
                f"{tokens} more would pass the budget of {self.limits.token_budget}"
            )
        return Admit(key_fingerprint=key_fingerprint, holder=holder, fresh=verdict == "admit")

    def release_job(self, key_fingerprint: str, holder: str) -> bool:
        """The job ended (any terminal state) or was never made: free its slot and tokens.

        Returns False when there was nothing to free (released before, or never acquired).
        """
        _check(key_fingerprint, holder)
        return bool(self._run(self._release_job, key_fingerprint, holder, ""))

    # ---- provider file storage -----------------------------------------------------------

    def acquire_file_bytes(self, key_fingerprint: str, holder: str, size: int) -> Admit:
        """Claim ``size`` bytes of the key's file storage before uploading, or ``RetryLater``."""
        _check(key_fingerprint, holder, size)
        verdict, held = self._run(
            self._acquire_file, key_fingerprint, holder, size, self.limits.file_budget_bytes
        )
        if verdict == "bytes":
            self._wait(
                f"{self._who(key_fingerprint)} holds {held} bytes of uploaded files; {size} "
                f"more would pass the budget of {self.limits.file_budget_bytes}"
            )
        return Admit(key_fingerprint=key_fingerprint, holder=holder, fresh=verdict == "admit")

    def release_file_bytes(self, key_fingerprint: str, holder: str) -> bool:
        """The holder's uploaded file is deleted (or gone): its bytes are free again."""
        _check(key_fingerprint, holder)
        return bool(self._run(self._release_file, key_fingerprint, holder, ""))

    # ---- choosing a key ------------------------------------------------------------------

    def loads(
        self, key_fingerprints: Sequence[str], *, model: str, holder: str | None = None
    ) -> list[KeyLoad]:
        """What each key's project holds now (one round trip, one read per project);
        ``held`` marks keys of a project ``holder`` holds something in."""
        for fp in key_fingerprints:
            _check(fp, holder or "-")
        scopes = list(dict.fromkeys(self._scope(fp) for fp in key_fingerprints))
        pipe = self.redis.pipeline(transaction=False)
        for scope in scopes:
            self._run(self._load, scope, model, holder or "", client=pipe, scoped=True)
        answers = dict(zip(scopes, pipe.execute(), strict=True))
        loads = []
        for fp in key_fingerprints:
            live, enqueued, file_bytes, held = answers[self._scope(fp)]
            loads.append(
                KeyLoad(
                    key_fingerprint=fp,
                    live_jobs=int(live),
                    enqueued_tokens=int(enqueued),
                    file_bytes=int(file_bytes),
                    held=bool(held),
                )
            )
        return loads

    def choose_key(
        self,
        key_fingerprints: Sequence[str],
        *,
        model: str,
        tokens: int,
        size: int,
        holder: str | None = None,
    ) -> str:
        """The key a new part should upload (and later create its job) with.

        A key of the project ``holder`` already holds something in, if any (a redelivered
        upload stays in its project); else a key of the project where the part fits now with
        the most headroom (keys of one project tie; pool order decides). Advisory only: the
        acquire that follows is what admits or refuses.
        """
        loads = self.loads(key_fingerprints, model=model, holder=holder)
        return pick_key(loads, self.limits, tokens=tokens, size=size)

    # ---- leaks and status ----------------------------------------------------------------

    def reconcile(
        self,
        key_fingerprint: str,
        *,
        jobs: Collection[str],
        files: Collection[str],
        runs: Collection[str] | None = None,
        grace_seconds: float = RECONCILE_GRACE_SECONDS,
    ) -> Reconciled:
        """Drop holdings the records do not vouch for; returns the holders dropped.

        ``jobs``: holders whose batch job is live (or whose create may be under way);
        ``files``: holders whose uploaded file still exists at the provider (or is being
        uploaded). With ``runs``, only holders of those runs are judged; without, the sets
        must name every live holder of the key's PROJECT, across all runs and keys
        (:meth:`reconcile_all` groups a per-key census for that). Holdings younger than
        ``grace_seconds`` are kept, and so is one re-acquired while this call ran.
        """
        raw = self._read(key_fingerprint)
        grace_ms = grace_seconds * 1000
        pipe = self.redis.pipeline(transaction=False)
        judged: list[list[str]] = []
        for held, live, script in (
            (raw.jobs, jobs, self._release_job),
            (raw.files, files, self._release_file),
        ):
            acquired = {h.holder: h.acquired_ms for h in held}
            found = orphans(acquired, live, now_ms=raw.now_ms, grace_ms=grace_ms, runs=runs)
            for holder in found:
                self._run(script, key_fingerprint, holder, acquired[holder], client=pipe)
            judged.append(found)
        freed = iter(pipe.execute())
        return Reconciled(
            jobs=[holder for holder in judged[0] if next(freed)],
            files=[holder for holder in judged[1] if next(freed)],
        )

    def reconcile_all(
        self,
        key_fingerprints: Sequence[str],
        *,
        jobs: Mapping[str, Collection[str]],
        files: Mapping[str, Collection[str]],
        grace_seconds: float = RECONCILE_GRACE_SECONDS,
    ) -> Reconciled:
        """:meth:`reconcile` every project of ``key_fingerprints`` once.

        ``jobs`` and ``files`` map a key fingerprint to the live holders the records name
        under it (every run); keys of one project are pooled, so a holder recorded under one
        key of a project vouches for its holding there whichever key acquired it.
        """
        by_scope: dict[str, list[str]] = {}
        for fp in key_fingerprints:
            by_scope.setdefault(self._scope(fp), []).append(fp)
        dropped = Reconciled(jobs=[], files=[])
        for fps in by_scope.values():
            found = self.reconcile(
                fps[0],
                jobs={h for fp in fps for h in jobs.get(fp, ())},
                files={h for fp in fps for h in files.get(fp, ())},
                grace_seconds=grace_seconds,
            )
            dropped.jobs.extend(found.jobs)
            dropped.files.extend(found.files)
        return dropped

    def snapshot(self, key_fingerprint: str) -> KeySnapshot:
        """Counts, tokens per model, bytes and holders of the key's project (expired ones
        dropped)."""
        raw = self._read(key_fingerprint)
        project = self._projects.get(key_fingerprint)
        return KeySnapshot(
            key_fingerprint=key_fingerprint,
            project=project,
            key_fingerprints=[fp for fp, label in self._projects.items() if label == project],
            taken_at=_when(raw.now_ms),
            live_jobs=len(raw.jobs),
            max_live_jobs=self.limits.max_live_jobs,
            tokens_by_model=raw.tokens,
            token_budget=self.limits.token_budget,
            file_bytes=raw.file_bytes,
            file_budget_bytes=self.limits.file_budget_bytes,
            jobs=[h.public() for h in raw.jobs],
            files=[h.public() for h in raw.files],
        )

    def _read(self, key_fingerprint: str) -> _Raw:
        _check(key_fingerprint, "-")
        now, tokens, file_bytes, jobs, job_claims, files, file_claims = self._run(
            self._snapshot, key_fingerprint
        )
        claims = dict(_pairs(job_claims))
        sizes = dict(_pairs(file_claims))
        job_holdings = []
        for holder, acquired in _pairs(jobs):
            amount, _, model = claims.get(holder, "0 ").partition(" ")
            job_holdings.append(_RawHolding(holder, int(float(acquired)), int(amount), model))
        return _Raw(
            now_ms=int(now),
            tokens={model: int(count) for model, count in _pairs(tokens)},
            file_bytes=int(file_bytes),
            jobs=job_holdings,
            files=[
                _RawHolding(holder, int(float(acquired)), int(sizes.get(holder, 0)), "")
                for holder, acquired in _pairs(files)
            ],
        )

    # ---- plumbing ------------------------------------------------------------------------

    def _run(
        self,
        script: Any,
        key_fingerprint: str,
        *args: object,
        client: Any = None,
        scoped: bool = False,
    ) -> Any:
        """Run a script on the holdings of the key's project (``scoped``: given the scope)."""
        now = "" if self._clock is None else str(round(self._clock() * 1000))
        argv = [now, *self._ttls, *args]
        scope = key_fingerprint if scoped else self._scope(key_fingerprint)
        return script(keys=_lua.keys_of(scope), args=argv, client=client)

    def _scope(self, key_fingerprint: str) -> str:
        """Whose counts a key's holdings join: its project's, or its own if not configured."""
        project = self._projects.get(key_fingerprint)
        return key_fingerprint if project is None else f"project-{project}"

    def _who(self, key_fingerprint: str) -> str:
        project = self._projects.get(key_fingerprint)
        if project is None:
            return f"key {key_fingerprint}"
        return f"project {project!r} (key {key_fingerprint})"

    def _wait(self, reason: str) -> None:
        raise RetryLater(reason, retry_countdown(*self._retry, rng=self._rng))


def _check(key_fingerprint: str, holder: str, amount: int = 0) -> None:
    # The value is never echoed: a caller that passes a raw API key by mistake must not
    # see it land in an exception message, a log line or a Redis key.
    if not _FINGERPRINT.fullmatch(key_fingerprint):
        raise ValueError("admission takes a key fingerprint (fp-...), never the key itself")
    if not holder:
        raise ValueError("admission needs a holder id")
    if amount < 0:
        raise ValueError(f"admission amounts cannot be negative ({amount})")


def _pairs(flat: list[Any]) -> list[tuple[str, Any]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


def _when(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class _RawHolding:
    holder: str
    acquired_ms: int
    amount: int
    model: str  # "" for a file holding

    def public(self) -> Holding:
        return Holding(
            holder=self.holder,
            acquired_at=_when(self.acquired_ms),
            amount=self.amount,
            model=self.model or None,
        )


@dataclass(frozen=True)
class _Raw:
    """One key's holdings as the snapshot script read them, times in ms."""

    now_ms: int
    tokens: dict[str, int]
    file_bytes: int
    jobs: list[_RawHolding]
    files: list[_RawHolding]
