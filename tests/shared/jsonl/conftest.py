"""Fixtures for the JSONL core: a real local storage in a temp dir and small line builders."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from shared.jsonl import SplitResult, split_input
from shared.run import layout
from shared.storage.local import LocalStorage


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "out", fsync=False)


@pytest.fixture
def work_dir(tmp_path: Path) -> str:
    path = tmp_path / "work"
    path.mkdir()
    return str(path)


def gen(text: str = "hi") -> dict[str, object]:
    """A minimal generate request."""
    return {"contents": [{"parts": [{"text": text}]}]}


def keyed(key: str | None, text: str = "hi", **extra: object) -> bytes:
    line: dict[str, object] = {} if key is None else {"key": key}
    line["request"] = gen(text)
    line.update(extra)
    return orjson.dumps(line)


def jsonl(data: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in data.splitlines()]


Planner = Callable[..., SplitResult]


@pytest.fixture
def plan(store: LocalStorage, work_dir: str) -> Planner:
    """Plan ``data`` (bytes) into ``store`` with small default limits."""

    def run(
        data: bytes,
        *,
        kind: str = "generate",
        shard_max_bytes: int = 10_000,
        shard_max_requests: int = 1_000,
        **options: object,
    ) -> SplitResult:
        return split_input(
            io.BytesIO(data),
            store,
            kind=kind,  # type: ignore[arg-type]
            shard_max_bytes=shard_max_bytes,
            shard_max_requests=shard_max_requests,
            source="input.jsonl",
            tmp_dir=work_dir,
            bloom_bytes=1024,
            **options,
        )

    return run


def shard_files(store: LocalStorage, result: SplitResult) -> list[tuple[bytes, bytes]]:
    return [
        (
            store.read_bytes(layout.shard_input(s.index)),
            store.read_bytes(layout.shard_sidecar(s.index)),
        )
        for s in result.shards
    ]


def rejected(store: LocalStorage) -> list[dict[str, object]]:
    return jsonl(store.read_bytes(layout.PLAN_REJECTED))
