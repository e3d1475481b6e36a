"""What a stage needs to act on one run: settings, the run's storage and records, clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import redis

from shared.admission import Admission
from shared.coordination import coordination_redis
from shared.keys import KeyPool
from shared.provider import GeminiClient, build_client
from shared.records import RunManifest
from shared.runstore import RunRecords
from shared.settings import Settings
from shared.storage import Storage, open_storage


@dataclass
class RunContext:
    """One run, as seen by one stage call. Cheap to build; build one per task call."""

    settings: Settings
    run_id: str
    output_uri: str
    redis: redis.Redis | None = field(default=None, repr=False)
    _clients: dict[str, GeminiClient] = field(default_factory=dict, repr=False)

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.output_uri)

    @cached_property
    def records(self) -> RunRecords:
        return RunRecords(self.storage)

    @cached_property
    def manifest(self) -> RunManifest:
        return self.records.manifest()

    @cached_property
    def keys(self) -> KeyPool:
        return KeyPool(self.settings.key_pool())

    @cached_property
    def admission(self) -> Admission:
        """Live jobs, enqueued tokens and file bytes per key, shared by every worker."""
        if self.redis is None:
            self.redis = coordination_redis(self.settings)
        return Admission(self.redis, self.settings)

    def client(self, key_fingerprint: str) -> GeminiClient:
        """A client that authenticates with the key of that fingerprint (key affinity)."""
        if key_fingerprint not in self._clients:
            key = self.keys.get(key_fingerprint)
            self._clients[key_fingerprint] = build_client(self.settings, key)
        return self._clients[key_fingerprint]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


@contextmanager
def run_context(
    settings: Settings, run_id: str, output_uri: str, *, redis: redis.Redis | None = None
) -> Iterator[RunContext]:
    ctx = RunContext(settings=settings, run_id=run_id, output_uri=output_uri, redis=redis)
    try:
        yield ctx
    finally:
        ctx.close()
