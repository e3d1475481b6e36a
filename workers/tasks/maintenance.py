"""Housekeeping run by beat: the reconciler."""

from __future__ import annotations

from typing import Any

from celery import Task

from shared import names
from shared.admission import Admission
from shared.pipeline.reconcile import reconcile as reconcile_runs
from workers.app import app
from workers.canvas import merge_step, shard_chain
from workers.launch import send_plan


def _restart_chain(run_id: str, output_uri: str, shard: int, attempt: int) -> None:
    shard_chain(run_id, output_uri, shard, attempt).apply_async()


def _restart_merge(run_id: str, output_uri: str) -> None:
    merge_step(run_id, output_uri).apply_async()


def _restart_plan(run_id: str, output_uri: str) -> None:
    send_plan(run_id, output_uri)


@app.task(bind=True, name=names.TASK_RECONCILE, acks_late=True)
def reconcile(self: Task) -> dict[str, Any]:
    """Re-attach work to runs nobody is moving (lost messages); warn on jobs near expiry;
    free provider files and jobs nothing needs (the orphan sweep)."""
    report = reconcile_runs(
        app.settings,
        restart_chain=_restart_chain,
        restart_merge=_restart_merge,
        restart_plan=_restart_plan,
        admission=Admission(app.coordination, app.settings),
        sweep=True,
    )
    return report.model_dump(mode="json")  # sets become lists: the result is JSON
