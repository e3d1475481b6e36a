"""A run's progress, read from its records alone (works for any broker, any machine)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from pydantic import BaseModel, Field

from shared.run.records import Summary, utcnow
from shared.run.store import RunStore


class RunProgress(BaseModel):
    run_id: str
    state: str
    lines: int | None = None
    rejected: int = 0
    shards: int = 0
    shards_final: int = 0
    jobs: dict[str, int] = Field(default_factory=dict)
    requests_done: int = 0
    requests_total: int = 0
    tokens: int = 0
    started_at: datetime
    elapsed_seconds: float
    cancel_requested: bool = False
    summary: Summary | None = None

    @property
    def finished(self) -> bool:
        return self.summary is not None


def read_progress(store: RunStore) -> RunProgress:
    manifest = store.manifest()
    summary = store.summary()
    cancel = store.cancel_requested()
    plan = store.plan()
    now = summary.finished_at if summary else utcnow()
    progress = RunProgress(
        run_id=manifest.run_id,
        state=summary.state if summary else ("planning" if plan is None else "running"),
        started_at=manifest.created_at,
        elapsed_seconds=(now - manifest.created_at).total_seconds(),
        cancel_requested=cancel,
        summary=summary,
    )
    if plan is None:
        return progress
    progress.lines = plan.lines
    progress.rejected = plan.rejected
    progress.shards = len(plan.shards)
    progress.requests_total = plan.accepted
    jobs: Counter[str] = Counter()
    for shard in plan.shards:
        outcome = store.outcome(shard.index)
        if outcome is not None:
            progress.shards_final += 1
            progress.requests_done += outcome.results + outcome.errors
            progress.tokens += outcome.tokens.total
            jobs["DONE"] += len(outcome.jobs)
            continue
        for ref in store.parts(shard.index):
            job = store.job(ref.shard, ref.attempt, ref.part)
            state = (job.state if job and job.state else "UPLOADING").removeprefix(
                "BATCH_STATE_"
            )
            jobs[state] += 1
    if summary is None and progress.shards and progress.shards_final == progress.shards:
        progress.state = "merging"
    progress.jobs = dict(jobs)
    return progress
