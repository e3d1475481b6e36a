"""The shape of a run in Celery: a chord of one chain per shard, the merge as callback."""

from __future__ import annotations

from celery import chain, chord
from celery.canvas import Signature

from workers.tasks import run as run_tasks
from workers.tasks import shard as shard_tasks


def shard_chain(run_id: str, output_uri: str, shard: int, attempt: int) -> Signature:
    """upload → create → poll → collect for one attempt of one shard.

    Immutable signatures: the steps share state through the run's records in storage, not
    through return values, so any step can be re-run alone.
    """
    args = (run_id, output_uri, shard, attempt)
    return chain(
        shard_tasks.upload.si(*args),
        shard_tasks.create.si(*args),
        shard_tasks.poll.si(*args),
        shard_tasks.collect.si(*args),
    )


def run_canvas(run_id: str, output_uri: str, shards: list[int]) -> Signature:
    merge = run_tasks.merge.si(run_id, output_uri)
    if not shards:
        return merge
    return chord([shard_chain(run_id, output_uri, s, 1) for s in shards], merge)
