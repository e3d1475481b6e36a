"""Metrics: counters of things that happen and leave no record: provider calls, admission waits,
reconciler passes. Per process (each worker counts its own; Prometheus sums them).

The code that does the thing calls one function here; nothing else about metrics leaks into
the stages. The counters live in ``prometheus_client``'s default registry, which every
endpoint of :mod:`shared.metrics.server` exposes (README "Metrics").
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import Counter, Gauge

PROVIDER_CALLS = Counter(
    "shardline_provider_calls",
    "HTTP calls made to the provider, by provider and answer code ('transport': no answer).",
    ["provider", "code"],
)
PROVIDER_ERRORS = Counter(
    "shardline_provider_errors",
    "Provider calls that failed, by provider and answer code ('transport': no answer).",
    ["provider", "code"],
)
ADMISSION_WAITS = Counter(
    "shardline_admission_waits",
    "Steps told to wait by admission control: a key's live jobs, enqueued tokens or file "
    "storage was at its limit.",
    ["reason"],
)
RECONCILER_PASSES = Counter("shardline_reconciler_passes", "Reconciler passes run here.")
RECONCILER_FINDINGS = Counter(
    "shardline_reconciler_findings",
    "What the reconciler found and did, by kind (chains/merges/plans restarted, jobs pending "
    "near the 48 h expiry, unreadable or refused runs, admission holdings dropped, orphan "
    "files and jobs swept).",
    ["kind"],
)
RECONCILER_LAST_PASS = Gauge(
    "shardline_reconciler_last_pass_timestamp_seconds",
    "When this process last finished a reconciler pass (UNIX time).",
)

ADMISSION_REASONS = ("jobs", "tokens", "file_bytes")
RECONCILER_KINDS = (
    "chains_restarted",
    "merges_restarted",
    "plans_restarted",
    "pending_near_expiry",
    "unreadable",
    "admission_dropped",
    "skipped_entries",
    "refused",
    "orphan_files_deleted",
    "orphan_jobs_cancelled",
    "orphan_jobs_deleted",
    "sweep_errors",
)
for _reason in ADMISSION_REASONS:  # every series exists from the start, at 0
    ADMISSION_WAITS.labels(reason=_reason)
for _kind in RECONCILER_KINDS:
    RECONCILER_FINDINGS.labels(kind=_kind)


def provider_call(provider: str, code: int | None) -> None:
    """One HTTP call to ``provider`` answered ``code`` (None: no answer arrived)."""
    label = "transport" if code is None else str(code)
    PROVIDER_CALLS.labels(provider=provider, code=label).inc()
    if code is None or code >= 400:
        PROVIDER_ERRORS.labels(provider=provider, code=label).inc()


def admission_wait(reason: str) -> None:
    """A step was refused a live-job slot, token budget or file storage, and will wait."""
    ADMISSION_WAITS.labels(reason=reason).inc()


def reconciler_pass(findings: Mapping[str, int]) -> None:
    """A reconciler pass ended with these counts per kind (see :data:`RECONCILER_KINDS`)."""
    RECONCILER_PASSES.inc()
    for kind, count in findings.items():
        if count:
            RECONCILER_FINDINGS.labels(kind=kind).inc(count)
    RECONCILER_LAST_PASS.set(time.time())
