"""Provider client fixtures: a real GeminiClient on the real emulator (127.0.0.1), sleeps recorded.

``make_client(**kwargs)`` builds a client on the ``emulator`` fixture; keyword arguments go to
``GeminiClient`` (``api_key`` may be a plain string). Sleeps are recorded in ``sleeps``, never
slept, so retry waits are asserted without wall-clock time.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from pydantic import SecretStr

from shared.provider.gemini import GeminiClient
from shared.provider.retry import RetryPolicy
from tests.fixtures.emulator import EmulatorHandle

FAST_RETRY = RetryPolicy(
    max_attempts=4, base=0.5, factor=2.0, cap=4.0, jitter=0.0, max_sleep_seconds=30.0
)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(
    emulator: EmulatorHandle, sleeps: list[float]
) -> Iterator[Callable[..., GeminiClient]]:
    clients: list[GeminiClient] = []

    def make(**kwargs: Any) -> GeminiClient:
        key = kwargs.pop("api_key", emulator.api_key)
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("sleep", sleeps.append)
        http = httpx.Client(base_url=emulator.base_url, timeout=30.0)
        client = GeminiClient(http, api_key=SecretStr(key), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., GeminiClient]) -> GeminiClient:
    return make_client()


@dataclass
class LocalSource:
    """A temp file standing in for staged storage; counts every byte the client reads."""

    path: Path
    size: int
    sha256: str
    opened_at: list[int] = field(default_factory=list)
    bytes_read: int = 0

    @contextlib.contextmanager
    def open_at(self, offset: int) -> Iterator[BinaryIO]:
        self.opened_at.append(offset)
        with self.path.open("rb") as raw:
            raw.seek(offset)
            yield _Counting(raw, self)  # type: ignore[misc]


class _Counting:
    def __init__(self, raw: BinaryIO, source: LocalSource) -> None:
        self._raw = raw
        self._source = source

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._source.bytes_read += len(data)
        return data


def write_jsonl(path: Path, target_bytes: int) -> LocalSource:
    """A JSONL file of about ``target_bytes`` (batch-shaped lines), written in blocks."""
    digest = hashlib.sha256()
    size = 0
    index = 0
    with path.open("wb") as out:
        while size < target_bytes:
            block = b"".join(
                b'{"key":"k%08d","request":{"contents":[{"parts":[{"text":"line %d %s"}]}]}}\n'
                % (i, i, b"x" * (i % 50))
                for i in range(index, index + 2000)
            )
            index += 2000
            out.write(block)
            digest.update(block)
            size += len(block)
    return LocalSource(path, size, digest.hexdigest())


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 20 MB of JSONL, written once per module: three 8 MiB chunks."""
    path = tmp_path_factory.mktemp("upload") / "big.jsonl"
    source = write_jsonl(path, 20_000_000)
    (path.parent / "sha256").write_text(source.sha256)
    return path


@pytest.fixture
def big_source(big_file: Path) -> LocalSource:
    """A fresh byte counter on the module's 20 MB file."""
    sha = (big_file.parent / "sha256").read_text()
    return LocalSource(big_file, big_file.stat().st_size, sha)


@pytest.fixture
def small_source(tmp_path: Path) -> LocalSource:
    """A few KB of JSONL (one chunk)."""
    return write_jsonl(tmp_path / "small.jsonl", 4000)
