"""Gemini's implementation of :class:`~shared.provider.base.BatchProvider`.

A thin adapter over :class:`~shared.provider.gemini.client.GeminiClient` (the wire client):
it turns the Batch API's Operation into a neutral :class:`ProviderJob` and names the
File API's calls the way the stages ask for them.

**Inline mode.** A part small enough goes inline in the create call instead of through the
File API: under ``inline_max_bytes`` staged bytes (``SHARDLINE_GEMINI_INLINE_MAX_BYTES``, 10 MB,
"well under" the 20 MB a create body may hold), or always / never when the run says so
(RunSpec ``options.inline``; forced inline still needs the part under
:data:`INLINE_HARD_LIMIT`). Such a part makes no upload call: its "file" is
``inline:<display name>``, and :meth:`GeminiProvider.create_job` streams the create body
from the staged part (``{"request": ..., "metadata": {"key": "N"}}`` items, measured first).
Retry attempts decide again by their own size, so a big run's small retries go inline.

**Inlined responses.** A job whose output comes back as ``inlinedResponses`` (inline jobs,
and file jobs too: the live API has been seen to answer small ones so) gets the output name
``inline:<job name>``; :meth:`GeminiProvider.open_output` reads them from the job (at most
what a 20 MB job makes, in memory) as output lines whose key is in ``metadata``, which the
classifier reads like a file's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import orjson

from shared.errors import NotFoundError, RunError
from shared.jsonl.records import STAGED_PREFIX
from shared.provider.base import (
    BatchProvider,
    JobCounts,
    ProviderFile,
    ProviderJob,
    ReaderFactory,
    UploadSession,
)
from shared.provider.gemini.client import GeminiClient
from shared.provider.gemini.models import BatchJob, File
from shared.run.spec import Kind

INLINE_PREFIX = "inline:"
#: Staged bytes of the largest part sent inline: the 20 MB create limit less the items'
#: own text (about 40 bytes a line) and a margin.
INLINE_HARD_LIMIT = 19_000_000
_READ_BYTES = 1024 * 1024
_REQUEST_FIELD = b'","request":'
_LINES_PER_CHUNK = 256


def job_of(batch: BatchJob) -> ProviderJob:
    """The neutral view of a Batch API job."""
    stats = batch.batch_stats
    output = batch.responses_file
    if output is None and batch.inlined_responses is not None:
        output = INLINE_PREFIX + batch.name
    return ProviderJob(
        name=batch.name,
        display_name=batch.display_name,
        state=batch.state,
        create_time=batch.create_time,
        counts=JobCounts(
            request_count=stats.request_count,
            succeeded_count=stats.successful_request_count,
            failed_count=stats.failed_request_count,
            pending_count=stats.pending_request_count,
        ),
        output=output,
        error=batch.error.model_dump(exclude_none=True) if batch.error is not None else None,
    )


def file_of(file: File) -> ProviderFile:
    return ProviderFile(
        name=file.name,
        display_name=file.display_name,
        size_bytes=file.size_bytes,
        create_time=file.create_time,
        generated=file.source == "GENERATED",
    )


class GeminiProvider(BatchProvider):
    """The Gemini Developer API's File + Batch API, through one :class:`GeminiClient`."""

    name = "gemini"

    def __init__(
        self,
        client: GeminiClient,
        *,
        inline_max_bytes: int = 0,
        inline: bool | None = None,
    ) -> None:
        self.client = client
        self.inline_max_bytes = inline_max_bytes
        self.inline = inline

    def __repr__(self) -> str:
        return f"GeminiProvider({self.client!r})"

    def goes_inline(self, size: int) -> bool:
        """Whether a part of ``size`` staged bytes is sent inline (module docstring)."""
        if self.inline is False or size > INLINE_HARD_LIMIT:
            return False
        return self.inline is True or size <= self.inline_max_bytes

    def start_upload(self, size: int, *, display_name: str) -> UploadSession:
        if self.goes_inline(size):
            return UploadSession(url=INLINE_PREFIX + display_name)
        return self.client.start_upload(size, display_name=display_name)

    def send_upload(
        self,
        session: UploadSession,
        source: ReaderFactory,
        size: int,
        *,
        chunk_size: int,
        start_offset: int | None,
    ) -> str:
        if session.url.startswith(INLINE_PREFIX):
            return session.url  # nothing to send: the create call carries the requests
        granularity = session.chunk_granularity
        uploaded = self.client.upload_from(
            session.url,
            source,
            size,
            chunk_size=max(granularity, chunk_size // granularity * granularity),
            granularity=granularity,
            start_offset=start_offset,
        )
        return uploaded.name

    def delete_file(self, name: str) -> None:
        if name.startswith(INLINE_PREFIX):
            raise NotFoundError(f"{name}: inline, no file is held", code=404)
        self.client.delete_file(name)

    def list_files(self) -> Iterator[ProviderFile]:
        return (file_of(file) for file in self.client.list_files())

    def create_job(
        self,
        *,
        model: str,
        kind: Kind,
        display_name: str,
        file_name: str,
        source: ReaderFactory | None = None,
    ) -> ProviderJob:
        if file_name.startswith(INLINE_PREFIX):
            if source is None:
                raise ValueError(f"{file_name}: an inline part needs its staged input")
            size = sum(len(piece) for piece in _inline_body(display_name, source))
            batch = self.client.create_batch_streamed(
                model, kind=kind, body=lambda: _inline_body(display_name, source), size=size
            )
            return job_of(batch)
        batch = self.client.create_batch(
            model, display_name=display_name, file_name=file_name, kind=kind
        )
        return job_of(batch)

    def get_job(self, name: str) -> ProviderJob:
        return job_of(self.client.get_batch(name))

    def list_jobs(self) -> Iterator[ProviderJob]:
        return (job_of(batch) for batch in self.client.list_batches())

    def cancel_job(self, name: str) -> None:
        self.client.cancel_batch(name)

    def delete_job(self, name: str) -> None:
        self.client.delete_batch(name)

    def open_output(self, job: ProviderJob | str) -> AbstractContextManager[Iterator[bytes]]:
        name = job if isinstance(job, str) else job.output
        if name is None:
            raise ValueError(f"job {job.name if not isinstance(job, str) else job} has no output")
        if name.startswith(INLINE_PREFIX):
            return self._inlined(name.removeprefix(INLINE_PREFIX))
        return self.client.download(name)

    @contextmanager
    def _inlined(self, job_name: str) -> Iterator[Iterator[bytes]]:
        answers = self.client.get_batch(job_name).inlined_responses
        if answers is None:
            raise NotFoundError(f"{job_name} holds no inlined responses", code=404)
        yield _as_lines(answers)

    def close(self) -> None:
        self.client.close()


def _inline_item(staged: bytes) -> bytes:
    """``{"request":…,"metadata":{"key":"N"}}`` for one staged line, by slicing."""
    cut = staged.find(_REQUEST_FIELD)
    end = staged.rfind(b"}")
    if not staged.startswith(STAGED_PREFIX) or cut < 0 or end < cut:
        raise RunError(f"malformed staged line: {staged[:80]!r}")
    key = staged[len(STAGED_PREFIX) : cut]
    return b'{"request":%b,"metadata":{"key":"%b"}}' % (
        staged[cut + len(_REQUEST_FIELD) : end],
        key,
    )


def _inline_body(display_name: str, source: ReaderFactory) -> Iterator[bytes]:
    """The create body of an inline batch, streamed from the staged part."""
    head = {"batch": {"displayName": display_name, "inputConfig": {"requests": {}}}}
    text = orjson.dumps(head)
    yield text[: -len(b"}}}}")] + b'"requests":['
    first = True
    with source(0) as reader:
        rest = b""
        while True:
            chunk = reader.read(_READ_BYTES)
            data = rest + chunk
            end = len(data) if not chunk else data.rfind(b"\n") + 1
            rest = data[end:]
            items = [_inline_item(line) for line in data[:end].splitlines() if line.strip()]
            if items:
                yield (b"" if first else b",") + b",".join(items)
                first = False
            if not chunk:
                break
    yield b"]}}}}"


def _as_lines(answers: list[object]) -> Iterator[bytes]:
    for start in range(0, len(answers), _LINES_PER_CHUNK):
        yield b"".join(orjson.dumps(a) + b"\n" for a in answers[start : start + _LINES_PER_CHUNK])
