"""Metrics read from the run records on scrape: right after any restart, on any machine.

:class:`RunsCollector` walks the registry (``Settings.state_uri``) and each run's records
(:class:`shared.run.store.RunStore`), like ``shardline status`` does, and turns them into
metric families. One read serves every scrape for ``Settings.metrics_cache_seconds``; a
finished run (it has its ``summary.json``) never changes, so it is read once per process.

Decisions where the issue is silent:

- Shards and jobs by state count the runs still going (a finished run's are in its
  summary); runs, requests, tokens and cost count every run of the registry.
- Totals read from records are Prometheus counters (``_total``): they only grow while runs
  are added, so ``rate()`` works; a run removed from the registry reads as a reset.
- Cost is the summary's for a finished run and the batch-price estimate of the tokens
  collected so far for a running one (:func:`shared.pricing.estimate_cost`); a model with no
  known price adds none.
- Per-key load (live jobs, file storage against its budget) is read from the admission
  ledger in Redis; with no key configured there is none. A run whose records cannot be read
  is counted in ``shardline_runs_unreadable`` (alerted on), one whose output was deleted in
  ``shardline_runs_missing`` (not alerted on); both are otherwise skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.admission import Admission
from shared.apikeys import ApiKeyPool
from shared.coordination import coordination_redis
from shared.errors import RunNotFoundError, ShardlineError
from shared.pricing import estimate_cost
from shared.run.records import RunManifest, Summary, TokenTotals, utcnow
from shared.run.registry import RunEntry, RunRegistry
from shared.run.store import RunStore
from shared.settings import Settings
from shared.storage import open_storage

log = logging.getLogger("shardline.metrics")

#: The provider deletes a batch job still unfinished after 48 h.
JOB_EXPIRY = timedelta(hours=48)
#: A live job older than this is "near expiry" (the reconciler warns at the same age).
NEAR_EXPIRY = timedelta(hours=44)
TOKEN_KINDS = ("prompt", "candidates", "thoughts", "cached", "total")
REQUEST_OUTCOMES = ("results", "errors", "rejected", "cached")


@dataclass
class RunSnapshot:
    """What one run's records said when read."""

    run_id: str
    state: str
    model: str
    finished: bool = False
    requests: Counter[str] = field(default_factory=Counter)
    tokens: TokenTotals = field(default_factory=TokenTotals)
    cost: float | None = None
    shards: Counter[str] = field(default_factory=Counter)
    jobs: Counter[str] = field(default_factory=Counter)
    #: ``created_at`` of each job the provider still holds live.
    live_jobs: list[datetime] = field(default_factory=list)
    last_activity: datetime | None = None


def read_run(entry: RunEntry) -> RunSnapshot:
    """One run's snapshot from its records (a ``ShardlineError`` if they cannot be read)."""
    store = RunStore(open_storage(entry.output_uri))
    manifest = store.manifest()
    summary = store.summary()
    if summary is not None:
        return _finished(summary)
    return _running(store, manifest)


def _finished(summary: Summary) -> RunSnapshot:
    counts = summary.counts
    requests = Counter(results=counts.results, errors=counts.errors, rejected=counts.rejected)
    # Lines answered from the request cache, once the summary counts them.
    requests["cached"] = int(getattr(counts, "cached", 0) or 0)
    return RunSnapshot(
        run_id=summary.run_id,
        state=summary.state,
        model=summary.model,
        finished=True,
        requests=requests,
        tokens=summary.tokens,
        cost=summary.cost.total,
        last_activity=summary.finished_at,
    )


def _running(store: RunStore, manifest: RunManifest) -> RunSnapshot:
    plan = store.plan()
    snap = RunSnapshot(
        run_id=manifest.run_id,
        state="planning" if plan is None else "running",
        model=manifest.model,
        last_activity=manifest.created_at,
    )
    if plan is None:
        return snap
    moments: list[datetime] = [plan.planned_at]
    snap.requests["rejected"] = plan.rejected
    tokens = TokenTotals()
    final = 0
    for shard in plan.shards:
        outcome = store.outcome(shard.index)
        if outcome is not None:
            final += 1
            snap.shards[outcome.state] += 1
            snap.requests["results"] += outcome.results
            snap.requests["errors"] += outcome.errors
            tokens = tokens.add(outcome.tokens)
            moments.append(outcome.finished_at)
            continue
        attempts = store.attempts(shard.index)
        if not attempts:
            snap.shards["waiting"] += 1
            continue
        latest = attempts[-1].attempt
        shard_state = "collecting"
        for ref in store.parts(shard.index):
            moments.append(attempts[ref.attempt - 1].created_at)
            collected = store.collected(ref.shard, ref.attempt, ref.part)
            if collected is not None:
                tokens = tokens.add(collected.tokens)
                moments.append(collected.collected_at)
            job = store.job(ref.shard, ref.attempt, ref.part)
            if job is None or job.job_name is None:
                snap.jobs["UPLOADING" if job is None else "CREATING"] += 1
                upload = store.upload(ref.shard, ref.attempt, ref.part)
                if upload is not None:
                    moments.append(upload.finished_at or upload.started_at)
                if job is not None:
                    moments.append(job.intent_at)
                if ref.attempt == latest and collected is None:
                    shard_state = "uploading"
                continue
            state = (job.state or "PENDING").removeprefix("BATCH_STATE_")
            snap.jobs[state] += 1
            moments.extend(m for m in (job.created_at, job.polled_at) if m is not None)
            if not job.is_final and job.created_at is not None:
                snap.live_jobs.append(job.created_at)
                if ref.attempt == latest and shard_state == "collecting":
                    shard_state = "running"
        snap.shards[shard_state] += 1
    snap.tokens = tokens
    snap.cost = estimate_cost(manifest.model, tokens).total
    if plan.shards and final == len(plan.shards):
        snap.state = "merging"
    snap.last_activity = max(moments)
    return snap


class RunsCollector(Collector):
    """Prometheus collector over the registry's runs; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] = utcnow,
        admission: Callable[[], Admission] | None = None,
    ) -> None:
        self.settings = settings
        self._now = now
        self._admission_factory = admission
        self._admission: Admission | None = None
        self._lock = threading.Lock()
        self._finished: dict[str, RunSnapshot] = {}
        self._families: list[Metric] = []
        self._read_at = float("-inf")

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not read every run's records

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.settings.metrics_cache_seconds:
                self._families = self._read()
                self._read_at = time.monotonic()
            families = list(self._families)
        return iter(families)

    # ---- one read ------------------------------------------------------------------------

    def _read(self) -> list[Metric]:
        started = time.monotonic()
        now = self._now()
        snaps: list[RunSnapshot] = []
        unreadable = runs_missing = 0
        try:
            entries = list(RunRegistry(open_storage(self.settings.state_uri)).entries())
        except ShardlineError as exc:
            log.warning("metrics: cannot list the registry: %s", exc)
            entries = []
            unreadable += 1
        for entry in entries:
            snap = self._finished.get(entry.run_id)
            if snap is None:
                try:
                    snap = read_run(entry)
                except RunNotFoundError:  # its output was deleted: not a fault to alert on
                    runs_missing += 1
                    continue
                except (ShardlineError, ValueError) as exc:
                    log.warning("metrics: run %s unreadable: %s", entry.run_id, exc)
                    unreadable += 1
                    continue
                if snap.finished:
                    self._finished[entry.run_id] = snap
            snaps.append(snap)
        families = self._run_families(snaps, now)
        families.extend(self._key_families())
        families.append(_gauge("shardline_runs_missing",
                               "Runs in the registry whose output (run.json) is gone.",
                               runs_missing))
        families.append(_gauge("shardline_runs_unreadable",
                               "Runs (or the registry) whose records could not be read.",
                               unreadable))
        families.append(_gauge("shardline_metrics_read_seconds",
                               "How long the last read of the run records took.",
                               time.monotonic() - started))
        return families

    def _run_families(self, snaps: list[RunSnapshot], now: datetime) -> list[Metric]:
        runs: Counter[str] = Counter()
        shards: Counter[str] = Counter()
        jobs: Counter[str] = Counter()
        requests: Counter[str] = Counter({outcome: 0 for outcome in REQUEST_OUTCOMES})
        tokens: dict[str, TokenTotals] = {}
        cost: dict[str, float] = {}
        live_jobs: list[datetime] = []
        idle = GaugeMetricFamily(
            "shardline_run_idle_seconds",
            "Seconds since any record of a live run last changed (a stalled run grows).",
            labels=["run_id"],
        )
        for snap in snaps:
            runs[snap.state] += 1
            requests.update(snap.requests)
            tokens[snap.model] = tokens.get(snap.model, TokenTotals()).add(snap.tokens)
            if snap.cost is not None:
                cost[snap.model] = cost.get(snap.model, 0.0) + snap.cost
            if snap.finished:
                continue
            shards.update(snap.shards)
            jobs.update(snap.jobs)
            live_jobs.extend(snap.live_jobs)
            if snap.last_activity is not None:
                idle.add_metric([snap.run_id], (now - snap.last_activity).total_seconds())
        ages = [(now - created).total_seconds() for created in live_jobs]
        families: list[Metric] = [
            _labelled(GaugeMetricFamily, "shardline_runs", "Runs in the registry by state.",
                      "state", runs),
            _labelled(GaugeMetricFamily, "shardline_shards", "Shards of live runs by state.",
                      "state", shards),
            _labelled(GaugeMetricFamily, "shardline_jobs",
                      "Batch jobs (parts) of live runs by state.", "state", jobs),
            _labelled(CounterMetricFamily, "shardline_requests",
                      "Input lines accounted for, by outcome, over every run.", "outcome",
                      requests),
            _labelled(CounterMetricFamily, "shardline_cost_usd",
                      "Cost in USD at the batch price, by model (known prices only).",
                      "model", cost),
            idle,
            _gauge("shardline_oldest_live_job_age_seconds",
                   "Age of the oldest batch job the provider still holds live (0: none).",
                   max(ages, default=0.0)),
            _gauge("shardline_live_jobs_near_expiry",
                   "Live jobs older than 44 h (the provider expires them at 48 h).",
                   sum(age >= NEAR_EXPIRY.total_seconds() for age in ages)),
            _gauge("shardline_job_expiry_seconds",
                   "The provider's limit on a batch job's life (48 h).",
                   JOB_EXPIRY.total_seconds()),
        ]
        token_family = CounterMetricFamily(
            "shardline_tokens", "Tokens from usageMetadata by model and kind, over every run.",
            labels=["model", "kind"],
        )
        for model, totals in sorted(tokens.items()):
            for kind in TOKEN_KINDS:
                token_family.add_metric([model, kind], getattr(totals, kind))
        families.append(token_family)
        return families

    def _key_families(self) -> list[Metric]:
        """Per-key load from the admission ledger (Redis), for the file-quota alert."""
        fingerprints = ApiKeyPool(self.settings.key_pool()).fingerprints
        families = {
            name: GaugeMetricFamily(f"shardline_key_{name}", text, labels=["key"])
            for name, text in (
                ("live_jobs", "Batch jobs the key's project holds live at the provider."),
                ("max_live_jobs", "The live-job limit of the key's project (all its keys)."),
                ("file_bytes", "Bytes of uploaded files the key's project holds at the provider."),
                ("file_budget_bytes", "The file storage budget of the key's project."),
            )
        }
        for fingerprint in fingerprints:
            try:
                snapshot = self._ledger().snapshot(fingerprint)
            except Exception as exc:  # Redis away: the run metrics still answer
                log.warning("metrics: admission ledger unreadable: %s", exc)
                break
            families["live_jobs"].add_metric([fingerprint], snapshot.live_jobs)
            families["max_live_jobs"].add_metric([fingerprint], snapshot.max_live_jobs)
            families["file_bytes"].add_metric([fingerprint], snapshot.file_bytes)
            families["file_budget_bytes"].add_metric([fingerprint], snapshot.file_budget_bytes)
        return list(families.values())

    def _ledger(self) -> Admission:
        if self._admission is None:
            if self._admission_factory is not None:
                self._admission = self._admission_factory()
            else:
                self._admission = Admission(coordination_redis(self.settings), self.settings)
        return self._admission


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _labelled(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    text: str,
    label: str,
    values: Mapping[str, float],
) -> Metric:
    family = kind(name, text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
