"""The shape of a run in Celery: one chain per shard, sent in batches, then the merge.

The plan sends ``shardline.send_shards`` for the first :data:`SHARD_BATCH` shards; each
batch sends its shards' chains one by one and then the next batch, and the last one sends
the merge, which waits (countdown) until storage says every shard is final. No task ever
holds more than one chain's signature, so sending 50,000 shards takes the memory of
sending one (a chord of every chain built them all at once: ~8 kB a shard). No chord: the
merge never trusted the chord's count anyway (storage decides when a run is complete), and
a redelivered batch only sends its own chains again, which the stages absorb.

Signatures are built by task name, so this module needs no task module (and the tasks can
import it): the canvas is data, the app resolves the names when it sends.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import chain
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


#: Shard chains one ``send_shards`` task sends (what a redelivered batch sends again).
SHARD_BATCH = 1000
#: The merge's first look comes this long after the last batch (then every 15 s).
MERGE_FIRST_LOOK_SECONDS = 15.0


def send_shards_step(run_id: str, output_uri: str, first: int) -> Signature:
    return app.signature(names.TASK_SEND_SHARDS, args=(run_id, output_uri),
                         kwargs={"first": first}, immutable=True)


def send_shards(run_id: str, output_uri: str, shards: Sequence[int], *, first: int) -> int:
    """Send attempt 1 of ``shards[first:first + SHARD_BATCH]``, then the next batch or, after
    the last, the merge. Returns how many chains were sent."""
    batch = shards[first:first + SHARD_BATCH]
    for shard in batch:
        shard_chain(run_id, output_uri, shard, 1).apply_async()
    following = first + len(batch)
    if following < len(shards):
        send_shards_step(run_id, output_uri, following).apply_async()
    else:
        merge_step(run_id, output_uri).apply_async(countdown=MERGE_FIRST_LOOK_SECONDS
                                                   if shards else 0)
    return len(batch)
