"""Anthropic Message Batches as a :class:`~shared.provider.base.BatchProvider`.

How the provider's shape meets the pipeline's:

- **No files.** The requests travel inline in the create call (up to 100,000 requests or
  256 MB). :meth:`start_upload` and :meth:`send_upload` make no call: the "file" is the
  staged part itself, named ``inline:<display name>``; :meth:`create_job` streams the create
  body from the part's staged input (``source``), translated item by item
  (:func:`~shared.provider.anthropic.lines.batch_item`), in flat memory, after a first pass
  that measures it (the request carries its exact length).
- **No display name.** A batch carries no name or metadata, so :meth:`find_jobs` cannot find
  a batch whose create answer was lost, nor one a worker made just before it was killed:
  the create step then sends the create again once its lease is over, and the first batch
  runs too (it is billed; its results are never read). This is the one guarantee this
  provider weakens (README, "Providers").
- **States.** ``in_progress`` and ``canceling`` → RUNNING; ``ended`` → SUCCEEDED, whatever the
  results hold: each request's own result type (succeeded, errored, canceled, expired) is
  mapped line by line when the results are read.
- **Output.** The job's ``output`` is the batch id; :meth:`open_output` streams
  ``/v1/messages/batches/{id}/results``; :meth:`delete_file` on that name deletes the batch
  (which is what frees its results).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from shared.errors import NotFoundError
from shared.provider.anthropic.client import AnthropicClient
from shared.provider.anthropic.lines import batch_item, translate_result_line
from shared.provider.base import (
    BatchProvider,
    JobCounts,
    ProviderFile,
    ProviderJob,
    ReaderFactory,
    UploadSession,
)
from shared.run.spec import Kind
from shared.run.states import BatchState

INLINE_PREFIX = "inline:"
_READ_BYTES = 1024 * 1024
_STATES = {
    "in_progress": BatchState.RUNNING,
    "canceling": BatchState.RUNNING,
    "ended": BatchState.SUCCEEDED,
}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_of(batch: dict[str, Any]) -> ProviderJob:
    state = _STATES.get(str(batch.get("processing_status")), BatchState.UNSPECIFIED)
    counts = batch.get("request_counts") or {}
    number = {k: int(counts.get(k) or 0) for k in
              ("processing", "succeeded", "errored", "canceled", "expired")}
    failed = number["errored"] + number["canceled"] + number["expired"]
    return ProviderJob(
        name=str(batch["id"]),
        state=state,
        create_time=_time(batch.get("created_at")),
        counts=JobCounts(
            request_count=number["processing"] + number["succeeded"] + failed,
            succeeded_count=number["succeeded"],
            failed_count=failed,
            pending_count=number["processing"],
        ),
        output=str(batch["id"]) if state is BatchState.SUCCEEDED else None,
    )


class AnthropicProvider(BatchProvider):
    """Message Batches of one key, through one :class:`AnthropicClient`; ``model`` is the
    run's (put into a request body that names none)."""

    name = "anthropic"

    def __init__(self, client: AnthropicClient, *, model: str | None = None) -> None:
        self.client = client
        self.model = model

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.client!r})"

    # ---- "files": the staged part is the request ------------------------------------

    def start_upload(self, size: int, *, display_name: str) -> UploadSession:
        return UploadSession(url=INLINE_PREFIX + display_name)

    def send_upload(
        self,
        session: UploadSession,
        source: ReaderFactory,
        size: int,
        *,
        chunk_size: int,
        start_offset: int | None,
    ) -> str:
        return session.url

    def delete_file(self, name: str) -> None:
        if name.startswith(INLINE_PREFIX):
            raise NotFoundError(f"{name} is our own staged part: nothing is held", code=404)
        self.client.delete_batch(name)

    def list_files(self) -> Iterator[ProviderFile]:
        return iter(())

    # ---- jobs --------------------------------------------------------------------------

    def _body(self, source: ReaderFactory) -> Iterator[bytes]:
        yield b'{"requests":['
        first = True
        with source(0) as reader:
            rest = b""
            while True:
                chunk = reader.read(_READ_BYTES)
                data = rest + chunk
                end = len(data) if not chunk else data.rfind(b"\n") + 1
                rest = data[end:]
                items = [batch_item(line, model=self.model)
                         for line in data[:end].splitlines() if line.strip()]
                if items:
                    yield (b"" if first else b",") + b",".join(items)
                    first = False
                if not chunk:
                    break
        yield b"]}"

    def create_job(
        self,
        *,
        model: str,
        kind: Kind,
        display_name: str,
        file_name: str,
        source: ReaderFactory | None = None,
    ) -> ProviderJob:
        if kind != "generate":
            raise ValueError("Message Batches answer messages only: no embeddings")
        if source is None:
            raise ValueError("Message Batches take their requests inline: source is needed")
        size = sum(len(piece) for piece in self._body(source))
        return job_of(self.client.create_batch(lambda: self._body(source), size))

    def get_job(self, name: str) -> ProviderJob:
        return job_of(self.client.get_batch(name))

    def list_jobs(self) -> Iterator[ProviderJob]:
        return (job_of(batch) for batch in self.client.list_batches())

    def find_jobs(self, display_name: str) -> list[ProviderJob]:
        """Always empty: a batch carries no name to find it by (module docstring)."""
        return []

    def cancel_job(self, name: str) -> None:
        self.client.cancel_batch(name)

    def delete_job(self, name: str) -> None:
        self.client.delete_batch(name)

    def open_output(self, job: ProviderJob | str) -> AbstractContextManager[Iterator[bytes]]:
        name = job if isinstance(job, str) else job.output
        if name is None:
            raise ValueError(f"job {job.name if not isinstance(job, str) else job} has no output")
        return self._results(name)

    @contextmanager
    def _results(self, batch_id: str) -> Iterator[Iterator[bytes]]:
        with self.client.results(batch_id) as chunks:
            yield self._translated(chunks)

    @staticmethod
    def _translated(chunks: Iterator[bytes]) -> Iterator[bytes]:
        rest = b""
        for chunk in chunks:
            data = rest + chunk
            end = data.rfind(b"\n") + 1
            rest = data[end:]
            lines = [translate_result_line(x) for x in data[:end].splitlines() if x.strip()]
            if lines:
                yield b"".join(lines)
        if rest.strip():
            yield translate_result_line(rest)

    def close(self) -> None:
        self.client.close()
