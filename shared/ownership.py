"""Which run owns an output: checked when a run is registered and by every task after.

An output belongs to exactly one run, from its first object on: ``_shardline/run.json``
(the manifest) names the run. So:

- **A new run needs an empty output.** No object at all under the prefix, not even one a
  person left there (a ``results.jsonl`` of last month would be overwritten), unless the
  manifest already names this very run: the same idempotency key registered again.
- **No output inside another run's output.** A parent of the output that holds a manifest
  belongs to that run; its ``_shardline/`` would be rewritten. Looking up the output's
  parents costs one small read each (a handful; no scan of the registry, and it holds for
  runs of other registries too). The other direction, an output that would *contain* another
  run, needs no look-up: that run's manifest is an object under it, so the output is not
  empty. (The one gap: a run claimed in the registry that died before writing its manifest;
  its own retry then finds its output inside or around the other run, and is refused.)
- **Every task acts only on its own run.** A task carries a run id and an output URI; before
  it touches anything it checks that the output is still allowed (``shared.access``) and that
  the manifest there names that run id. A mismatch (a forged or stale message) fails the task
  with ``AccessError`` and nothing is written.
"""

from __future__ import annotations

import orjson

from shared.access import AccessPolicy, Location
from shared.errors import AccessError, ObjectNotFoundError
from shared.run.layout import MANIFEST
from shared.storage import Storage, open_storage

#: What :func:`manifest_run_id` answers for a manifest it cannot read: no run id is this.
UNREADABLE = "<unreadable>"


def manifest_run_id(storage: Storage) -> str | None:
    """The run id the output's manifest names; None without a manifest, :data:`UNREADABLE`
    when it is not a JSON object with a string ``run_id``.

    Read as plain JSON, not as the full manifest model: an ownership check must not depend on
    every other field being readable.
    """
    try:
        data = storage.read_bytes(MANIFEST)
    except ObjectNotFoundError:
        return None
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        return UNREADABLE
    run_id = record.get("run_id") if isinstance(record, dict) else None
    return run_id if isinstance(run_id, str) and run_id else UNREADABLE


def check_output_free(storage: Storage, output_uri: str, run_id: str | None) -> None:
    """``AccessError`` unless the output is empty or already holds ``run_id`` (None: a run
    with a new id, which can only take an empty output)."""
    owner = manifest_run_id(storage)
    if owner is not None and owner == run_id:
        return
    if owner is not None:
        raise AccessError(f"output_uri {output_uri}: holds another run; choose another output")
    if next(iter(storage.list("")), None) is not None:
        raise AccessError(
            f"output_uri {output_uri}: not empty; a run writes only to an empty output "
            "(nothing is ever overwritten)"
        )


def check_not_inside_a_run(where: Location, output_uri: str) -> None:
    """``AccessError`` when a parent of the output holds a run's manifest."""
    for ancestor in where.ancestors():
        if open_storage(str(ancestor)).exists(MANIFEST):
            raise AccessError(
                f"output_uri {output_uri}: inside another run's output; choose another output"
            )


def verify_run(policy: AccessPolicy, storage: Storage, run_id: str, output_uri: str) -> None:
    """``AccessError`` unless the output is allowed and its manifest names ``run_id``."""
    policy.check_output(output_uri)
    if manifest_run_id(storage) != run_id:
        raise AccessError(
            f"run {run_id}: {output_uri} does not hold this run; refusing to act on it"
        )
