"""Where runs are found by id, and where idempotency keys are claimed exactly once.

The registry lives under ``Settings.state_uri`` (a local directory on one machine, an
``s3://``/``gs://`` prefix for a fleet). Claims use create-if-absent, so two callers with the
same idempotency key, on any machines, get the same run.

Keys are namespaced by ``RunSpec.client``: the run id comes from (client, key), so two
clients never meet on one key, and a key reused by one client for another spec is refused
with a message that names no value (not the key, not the run, not its output: another
caller's locations stay private). The ``default`` client keeps the ids keys had before
clients existed, so runs keyed then are still found by the same key.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError

from shared.errors import ObjectNotFoundError, RunError, RunNotFoundError, SpecError
from shared.run import layout
from shared.run.spec import DEFAULT_CLIENT, RunSpec
from shared.run.store import dump
from shared.storage import Storage

log = logging.getLogger("shardline.registry")
#: A registry entry's key: ``runs/<run id>.json``, nothing deeper.
_ENTRY_KEY = re.compile(r"^runs/[A-Za-z0-9._-]+\.json$")


class RunEntry(BaseModel):
    run_id: str
    output_uri: str
    input_uri: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    client: str = DEFAULT_CLIENT
    idempotency_key: str | None = None
    spec_sha256: str = ""


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by start time, unique without coordination: ``20261126-032500-1a2b3c4d``."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def run_id_for_key(idempotency_key: str, client: str = DEFAULT_CLIENT) -> str:
    """The run id a client's idempotency key maps to: stable, so a retried claim names the
    same run. Keys hold no NUL, so ``client NUL key`` never equals another pair."""
    name = idempotency_key if client == DEFAULT_CLIENT else f"{client}\0{idempotency_key}"
    return "k-" + hashlib.sha256(name.encode()).hexdigest()[:20]


def run_id_for(spec: RunSpec) -> str | None:
    """The run id ``spec`` claims, when it has an idempotency key; None: a new id each time."""
    if spec.idempotency_key is None:
        return None
    return run_id_for_key(spec.idempotency_key, spec.client)


def spec_fingerprint(spec: RunSpec) -> str:
    """What makes two specs "the same run" for an idempotency key (labels do not count, nor
    does the client: it is part of the run id already)."""
    return hashlib.sha256(
        spec.model_dump_json(exclude={"labels", "client"}).encode()
    ).hexdigest()


class RunRegistry:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def claim(self, spec: RunSpec) -> tuple[RunEntry, bool]:
        """Register a run for ``spec``; returns the entry and whether this call created it.

        With an idempotency key the run id is derived from the key, so the create-if-absent of
        its entry is the claim: a second claim with the same key returns the first run, and a
        different spec under the same key is refused.
        """
        run_id = run_id_for(spec) or new_run_id()
        entry = RunEntry(
            run_id=run_id,
            output_uri=spec.output_uri,
            input_uri=spec.input_uri,
            client=spec.client,
            idempotency_key=spec.idempotency_key,
            spec_sha256=spec_fingerprint(spec),
        )
        if self.storage.create_if_absent(layout.registry_run(run_id), dump(entry)):
            return entry, True
        existing = self.lookup(run_id)
        if existing.spec_sha256 != entry.spec_sha256:
            raise SpecError(
                "idempotency_key: already used by this client for a different run spec; "
                "use another key (or the same spec)"
            )
        return existing, False

    def release(self, run_id: str) -> None:
        """Take back a claim whose start was refused (see ``register_run``)."""
        self.storage.delete(layout.registry_run(run_id))

    def _has(self, run_id: str) -> bool:
        return self.storage.exists(layout.registry_run(run_id))

    def lookup(self, run_id: str) -> RunEntry:
        try:
            data = self.storage.read_bytes(layout.registry_run(run_id))
        except ObjectNotFoundError:
            raise RunNotFoundError(
                f"no run {run_id!r} in the registry at {self.storage.uri}"
            ) from None
        try:
            return RunEntry.model_validate_json(data)
        except ValidationError:
            raise RunError(f"the registry entry of run {run_id!r} is unreadable") from None

    def entries(
        self, *, unreadable: Callable[[str, str], None] | None = None
    ) -> Iterator[RunEntry]:
        """Every run entry. One that cannot be read (a stray or damaged object under
        ``runs/``) is logged and skipped, and handed to ``unreadable(key, reason)``: one bad
        object must not stop ``shardline list`` or the reconciler for every other run."""
        for info in self.storage.list("runs/"):
            if not info.key.endswith(".json"):
                continue
            reason = "not a run entry (runs/<id>.json)"
            if _ENTRY_KEY.match(info.key):
                try:
                    yield RunEntry.model_validate_json(self.storage.read_bytes(info.key))
                    continue
                except ObjectNotFoundError:
                    continue  # deleted since the listing
                except ValidationError as exc:
                    reason = f"unreadable: {exc.error_count()} problem(s) in the entry"
            log.warning("registry %s: skipping %s: %s", self.storage.uri, info.key, reason)
            if unreadable is not None:
                unreadable(info.key, reason)

