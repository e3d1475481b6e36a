"""The shape of a run in Celery: a chord of one chain per shard, the merge as callback.

Signatures are built by task name, so this module needs no task module (and the tasks can
import it): the canvas is data, the app resolves the names when it sends.
"""

from __future__ import annotations

from celery import chain, chord
from celery.canvas import Signature

from shared import names
from workers.app import app


def _step(task_name: str, *args: object) -> Signature:
    """An immutable signature: steps share state through storage, not return values."""
    return app.signature(task_name, args=args, immutable=True)


def shard_chain(run_id: str, output_uri: str, shard: int, attempt: int) -> Signature:
    """upload → create → poll → collect for one attempt of one shard.

    Immutable signatures: the steps share state through the run's records in storage, not
    through return values, so any step can be re-run alone.
    """
    args = (run_id, output_uri, shard, attempt)
    return chain(
        _step(names.TASK_UPLOAD, *args),
        _step(names.TASK_CREATE, *args),
        _step(names.TASK_POLL, *args),
        _step(names.TASK_COLLECT, *args),
    )


def merge_step(run_id: str, output_uri: str) -> Signature:
    return _step(names.TASK_MERGE, run_id, output_uri)


def plan_step(run_id: str, output_uri: str) -> Signature:
    return _step(names.TASK_PLAN, run_id, output_uri)


def run_canvas(run_id: str, output_uri: str, shards: list[int]) -> Signature:
    merge = merge_step(run_id, output_uri)
    if not shards:
        return merge
    return chord([shard_chain(run_id, output_uri, s, 1) for s in shards], merge)
