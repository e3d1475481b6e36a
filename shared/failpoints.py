"""Deterministic crash points for tests (etcd's gofail, in miniature).

``failpoint(name)`` does nothing unless the environment variable ``SHARDLINE_FAILPOINTS``
arms that name; then it acts, e.g. kills its own process with SIGKILL, the crash no
``finally`` block survives. The chaos tests (``tests/chaos/``) arm one point in a real worker
process, let it die there, start a clean worker and check that the run still accounts for
every line exactly once and creates exactly one batch job per part.

Syntax: ``SHARDLINE_FAILPOINTS="create.after_call=kill"``, several separated by ``;`` or
``,``: ``"plan.mid_pass=kill@150;collect.mid_download=kill"``. ``kill@N`` acts on the N-th
hit of that point in this process (default: the first); hits are counted across threads.
Actions: ``kill`` (``os.kill(os.getpid(), SIGKILL)``) and ``off``.

The variable is read once per process, on the first call (no I/O at import); unset, a call
costs one global lookup and a comparison, cheap enough for per-line loops.

Points, in pipeline order (where each sits, and what is durable when it fires):

``plan.mid_pass``
    In the planning pass, after each accepted line is staged (``kill@N``: after N lines);
    some shard objects are written, no plan record.
``plan.after_shards``
    Every shard staged; no attempt records and no ``plan.json`` yet.
``plan.after_record``
    ``plan.json`` written; no shard chain sent yet.
``upload.after_session``
    Upload session URL recorded; no byte sent.
``upload.after_chunk``
    Before reading each chunk after the first, i.e. after a chunk was accepted
    (``kill@N``: after N chunks); the session holds part of the file.
``upload.after_finalize``
    The upload is finalized at the provider (the file exists); the upload record does not
    name the file yet.
``create.after_intent``
    The create intent (display name) is recorded; the create call not yet sent.
``create.after_call``
    The provider made the job; the job record does not name it yet (the lost answer that
    the look-up by display name exists for).
``poll.after_get``
    A job's state was read; not yet recorded.
``collect.mid_download``
    After each chunk of a responses file written to storage, before the copy is committed.
``collect.after_download``
    The responses file is copied into storage; not yet parsed into results and errors.
``collect.after_parts``
    Every part of the attempt is collected; the next attempt not yet staged.
``collect.after_staging``
    The next attempt's parts and record are written; the chain not yet replaced by the
    next attempt's chain.
``finish.after_results``
    The shard's final results and errors are written; its ``outcome.json`` is not.
``merge.mid_concat``
    After each shard's file is appended to a run-level file (``results.jsonl`` first).
``merge.after_results``
    ``results.jsonl``, ``errors.jsonl`` and ``rejected.jsonl`` written; no summary yet.
``merge.after_summary``
    ``summary.json`` written; the provider's input files not yet deleted.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO, cast

ENV = "SHARDLINE_FAILPOINTS"

#: Every point placed in the code, in pipeline order (the docstring says where each sits).
POINTS = (
    "plan.mid_pass",
    "plan.after_shards",
    "plan.after_record",
    "upload.after_session",
    "upload.after_chunk",
    "upload.after_finalize",
    "create.after_intent",
    "create.after_call",
    "poll.after_get",
    "collect.mid_download",
    "collect.after_download",
    "collect.after_parts",
    "collect.after_staging",
    "finish.after_results",
    "merge.mid_concat",
    "merge.after_results",
    "merge.after_summary",
)
ACTIONS = ("kill", "off")

Armed = dict[str, tuple[str, int]]


class _Registry:
    """What the variable arms in this process, and how often each point was hit."""

    def __init__(self) -> None:
        self.armed: Armed | None = None
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    def load(self) -> Armed:
        with self.lock:
            if self.armed is None:
                self.armed = parse(os.environ.get(ENV, ""))
            return self.armed

    def hit(self, name: str) -> int:
        with self.lock:
            self.hits[name] = count = self.hits.get(name, 0) + 1
            return count


_registry = _Registry()


def parse(spec: str) -> Armed:
    """``"a=kill@3;b=kill"`` → ``{"a": ("kill", 3), "b": ("kill", 1)}``; bad terms raise."""
    armed: Armed = {}
    for raw in spec.replace(",", ";").split(";"):
        term = raw.strip()
        if not term:
            continue
        name, sep, action = term.partition("=")
        action, _, nth = action.strip().partition("@")
        name = name.strip()
        if not sep or name not in POINTS or action not in ACTIONS:
            raise ValueError(
                f"{ENV}: bad term {term!r}; want NAME=ACTION[@N], NAME in {POINTS}, "
                f"ACTION in {ACTIONS}"
            )
        count = int(nth) if nth else 1
        if count < 1:
            raise ValueError(f"{ENV}: {term!r}: N counts hits from 1")
        if action != "off":
            armed[name] = (action, count)
    return armed


def reset() -> None:
    """Forget the parsed variable and the hit counts (for tests that change the variable)."""
    with _registry.lock:
        _registry.armed = None
        _registry.hits.clear()


def _armed() -> Armed:
    armed = _registry.armed
    return armed if armed is not None else _registry.load()


def failpoint(name: str) -> None:
    """Act if ``name`` is armed and this is its N-th hit in this process; else nothing."""
    armed = _armed()
    if not armed or name not in armed:
        return
    action, nth = armed[name]
    if _registry.hit(name) == nth and action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)


def on_reads(
    name: str, source: AbstractContextManager[BinaryIO]
) -> AbstractContextManager[BinaryIO]:
    """``source`` with ``failpoint(name)`` before every ``read`` after the first.

    For loops that live in a library (the upload's chunk loop): each read after the first
    follows a chunk the server accepted. ``source`` itself when ``name`` is not armed.
    """
    if name not in _armed():
        return source
    return _guarded(name, source)


@contextmanager
def _guarded(name: str, source: AbstractContextManager[BinaryIO]) -> Iterator[BinaryIO]:
    with source as stream:
        yield cast(BinaryIO, _GuardedReader(name, stream))


class _GuardedReader:
    """Duck-typed reader: only ``read`` is guarded, the rest goes to the stream."""

    def __init__(self, name: str, stream: BinaryIO) -> None:
        self._name = name
        self._stream = stream
        self._reads = 0

    def read(self, size: int = -1) -> bytes:
        if self._reads:
            failpoint(self._name)
        self._reads += 1
        return self._stream.read(size)

    def __getattr__(self, attr: str) -> object:
        return getattr(self._stream, attr)
