"""What a stage needs to act on one run: settings, the run's storage and records, providers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import redis

from shared.access import AccessPolicy
from shared.admission import Admission
from shared.apikeys import ApiKeyPool
from shared.coordination import coordination_redis
from shared.jsonl.sniff import check_jsonl
from shared.ownership import verify_run
from shared.provider import BatchProvider, build_provider
from shared.run.records import RunManifest
from shared.run.store import RunStore
from shared.settings import Settings
from shared.storage import Storage, open_storage, split_uri


@dataclass
class RunContext:
    """One run, as seen by one stage call. Cheap to build; build one per task call."""

    settings: Settings
    run_id: str
    output_uri: str
    redis: redis.Redis | None = field(default=None, repr=False)
    _providers: dict[str, BatchProvider] = field(default_factory=dict, repr=False)

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.output_uri)

    @cached_property
    def store(self) -> RunStore:
        return RunStore(self.storage)

    @cached_property
    def manifest(self) -> RunManifest:
        return self.store.manifest()

    @cached_property
    def policy(self) -> AccessPolicy:
        """Where this worker lets callers read and write (``shared.access``)."""
        return AccessPolicy.from_settings(self.settings)

    def verify(self) -> None:
        """``AccessError`` unless the output is allowed and its manifest names this run.

        Every task calls this before acting: a message names a run id and an output, and
        nothing else ties the two together (see ``shared.ownership``).
        """
        verify_run(self.policy, self.storage, self.run_id, self.output_uri)

    def check_input(self) -> None:
        """Before the plan reads the input: ``AccessError`` unless this worker's policy allows
        it, ``InputFileError`` when it is not JSONL at all (``shared.jsonl.sniff``), so that
        nothing of such a file is copied into the output."""
        uri = self.manifest.spec.input_uri
        self.policy.check_input(uri)
        store, key = split_uri(uri)
        with store.open_read(key) as reader:
            check_jsonl(reader, uri)

    @cached_property
    def keys(self) -> ApiKeyPool:
        return ApiKeyPool(self.settings.key_pool(self.manifest.provider))

    @cached_property
    def admission(self) -> Admission:
        """Live jobs, enqueued tokens and file bytes per key, shared by every worker."""
        if self.redis is None:
            self.redis = coordination_redis(self.settings)
        return Admission(self.redis, self.settings.for_provider(self.manifest.provider))

    def provider(self, key_fingerprint: str) -> BatchProvider:
        """The provider, talking with the key of that fingerprint (key affinity)."""
        if key_fingerprint not in self._providers:
            key = self.keys.get(key_fingerprint)
            self._providers[key_fingerprint] = build_provider(
                self.settings,
                key,
                provider=self.manifest.provider,
                model=self.manifest.model,
                kind=self.manifest.kind,
                inline=self.manifest.spec.options.inline,
            )
        return self._providers[key_fingerprint]

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        self._providers.clear()


@contextmanager
def run_context(
    settings: Settings, run_id: str, output_uri: str, *, redis: redis.Redis | None = None
) -> Iterator[RunContext]:
    ctx = RunContext(settings=settings, run_id=run_id, output_uri=output_uri, redis=redis)
    try:
        yield ctx
    finally:
        ctx.close()
