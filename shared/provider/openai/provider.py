"""An OpenAI-style Batch API as a :class:`~shared.provider.base.BatchProvider`.

How the provider's shape meets the pipeline's:

- **Upload.** There is no resumable upload: a file is one multipart ``POST /files`` (purpose
  ``batch``). :meth:`start_upload` makes no call and its session records only the file name
  to look for; :meth:`send_upload` streams the staged part, translated line by line
  (:func:`~shared.provider.openai.lines.upload_line`), read ``chunk_size`` bytes (at most
  1 MiB) at a time, in flat memory. The exact request
  size is needed first, so the part is read twice (once to count, once to send). A task
  resuming a recorded session (``start_offset=None``) first looks for a file of that name and
  size (an upload whose answer was lost) and adopts it; otherwise it sends from byte 0.
- **Jobs.** The display name travels in the batch's ``metadata`` (``shardline_display_name``)
  and :meth:`find_jobs` looks for it there, so create stays at most once.
- **Output.** A batch has an output file (successes) and an error file (failed requests);
  both are collected: the job's ``output`` is their ids joined by a comma, and
  :meth:`open_output` streams both, translated to our output shape; :meth:`delete_file`
  takes the same joined name. An ``expired`` batch that has files answers like a completed
  one (its finished requests are kept, the rest come back as retryable errors).
- **States.** validating → PENDING; in_progress, finalizing, cancelling → RUNNING;
  completed → SUCCEEDED; failed → FAILED (its ``errors`` list kept as the job error);
  expired → EXPIRED (or SUCCEEDED with files, above); cancelled → CANCELLED.
- **Delete job.** The API keeps batches and has no delete: :meth:`delete_job` does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

from shared.errors import NotFoundError, ProviderServerError
from shared.provider.base import (
    BatchProvider,
    JobCounts,
    ProviderFile,
    ProviderJob,
    ReaderFactory,
    UploadSession,
)
from shared.provider.openai.client import OpenAIClient
from shared.provider.openai.lines import ENDPOINTS, translate_output_line, upload_line
from shared.run.spec import Kind
from shared.run.states import BatchState

DISPLAY_NAME_FIELD = "shardline_display_name"
SESSION_PREFIX = "multipart:"
#: The most read at once: a read is held about four times over while it is translated.
_READ_CAP = 1024 * 1024
FILE_SUFFIX = ".jsonl"
_STATES: dict[str, BatchState] = {
    "validating": BatchState.PENDING,
    "in_progress": BatchState.RUNNING,
    "finalizing": BatchState.RUNNING,
    "cancelling": BatchState.RUNNING,
    "completed": BatchState.SUCCEEDED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelled": BatchState.CANCELLED,
}


def parse_status(status: object) -> BatchState:
    """Our state for the provider's batch ``status`` (an unknown one: UNSPECIFIED)."""
    return _STATES.get(str(status), BatchState.UNSPECIFIED)


def _time(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def job_of(batch: dict[str, Any]) -> ProviderJob:
    """The neutral view of a batch object."""
    state = parse_status(batch.get("status"))
    files = [batch.get(k) for k in ("output_file_id", "error_file_id")]
    present = [f for f in files if isinstance(f, str) and f]
    output = ",".join(present) or None
    if state is BatchState.EXPIRED and output is not None:
        state = BatchState.SUCCEEDED
    counts = batch.get("request_counts") or {}
    total, done, failed = (int(counts.get(k) or 0) for k in ("total", "completed", "failed"))
    error: dict[str, Any] | None = None
    listed = batch.get("errors")
    errors = listed.get("data") if isinstance(listed, dict) else None
    if state is BatchState.FAILED and errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        line = f" at line {first['line']}" if first.get("line") is not None else ""
        error = {
            "code": None,
            "status": str(first.get("code") or "FAILED"),
            "message": f"{first.get('message', '')}{line}{more}",
        }
    metadata = batch.get("metadata") or {}
    return ProviderJob(
        name=str(batch["id"]),
        display_name=metadata.get(DISPLAY_NAME_FIELD) if isinstance(metadata, dict) else None,
        state=state,
        create_time=_time(batch.get("created_at")),
        counts=JobCounts(
            request_count=total,
            succeeded_count=done,
            failed_count=failed,
            pending_count=max(0, total - done - failed),
        ),
        output=output if state is BatchState.SUCCEEDED else None,
        error=error,
    )


def file_of(file: dict[str, Any]) -> ProviderFile:
    filename = file.get("filename")
    return ProviderFile(
        name=str(file["id"]),
        display_name=filename.removesuffix(FILE_SUFFIX) if isinstance(filename, str) else None,
        size_bytes=file.get("bytes") if isinstance(file.get("bytes"), int) else None,
        create_time=_time(file.get("created_at")),
        generated=file.get("purpose") == "batch_output",
    )


class OpenAIProvider(BatchProvider):
    """Files + Batches of one OpenAI-style service, through one :class:`OpenAIClient`.

    ``model`` and ``kind`` are the run's: uploads need them to write each line's ``url``
    and, for a body without one, its ``model``. A provider built without a run (cleanup,
    reconcile) can do everything but upload.
    """

    name = "openai"

    def __init__(
        self,
        client: OpenAIClient,
        *,
        completion_window: str = "24h",
        model: str | None = None,
        kind: Kind | None = None,
    ) -> None:
        self.client = client
        self.completion_window = completion_window
        self.model = model
        self.kind = kind

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.client!r})"

    # ---- files -------------------------------------------------------------------------

    def start_upload(self, size: int, *, display_name: str) -> UploadSession:
        return UploadSession(url=SESSION_PREFIX + display_name)

    def _lines(self, source: ReaderFactory, read_bytes: int) -> Iterator[bytes]:
        """The translated part, in batches of the whole lines of each ``read_bytes`` read."""
        if self.kind is None:
            raise ValueError("this OpenAIProvider was built without a run: it cannot upload")
        url = ENDPOINTS[self.kind]
        with source(0) as reader:
            rest = b""
            while True:
                chunk = reader.read(read_bytes)
                if not chunk:
                    break
                data = rest + chunk
                end = data.rfind(b"\n") + 1
                rest = data[end:]
                yield b"".join(
                    upload_line(line, url=url, model=self.model)
                    for line in data[:end].splitlines()
                    if line.strip()
                )
            if rest.strip():
                yield upload_line(rest, url=url, model=self.model)

    def send_upload(
        self,
        session: UploadSession,
        source: ReaderFactory,
        size: int,
        *,
        chunk_size: int,
        start_offset: int | None,
    ) -> str:
        filename = session.url.removeprefix(SESSION_PREFIX) + FILE_SUFFIX
        read_bytes = min(chunk_size, _READ_CAP)
        wire_size = sum(len(batch) for batch in self._lines(source, read_bytes))
        if start_offset is None:
            for file in self.client.list_files(purpose="batch"):
                if file.get("filename") == filename and file.get("bytes") == wire_size:
                    return str(file["id"])
        uploaded = self.client.upload_file(
            filename, lambda: self._lines(source, read_bytes), wire_size
        )
        if uploaded.get("bytes") not in (None, wire_size):
            raise ProviderServerError(
                f"upload of {filename}: the provider holds {uploaded.get('bytes')} bytes, "
                f"{wire_size} were sent"
            )
        return str(uploaded["id"])

    def delete_file(self, name: str) -> None:
        ids = [part for part in name.split(",") if part]
        missing = 0
        for file_id in ids:
            try:
                self.client.delete_file(file_id)
            except NotFoundError:
                missing += 1
        if ids and missing == len(ids):
            raise NotFoundError(f"no file {name}", code=404)

    def list_files(self) -> Iterator[ProviderFile]:
        return (file_of(file) for file in self.client.list_files())

    # ---- jobs --------------------------------------------------------------------------

    def create_job(
        self,
        *,
        model: str,
        kind: Kind,
        display_name: str,
        file_name: str,
        source: ReaderFactory | None = None,
    ) -> ProviderJob:
        batch = self.client.create_batch(
            input_file_id=file_name,
            endpoint=ENDPOINTS[kind],
            completion_window=self.completion_window,
            metadata={DISPLAY_NAME_FIELD: display_name},
        )
        return job_of(batch)

    def get_job(self, name: str) -> ProviderJob:
        return job_of(self.client.get_batch(name))

    def list_jobs(self) -> Iterator[ProviderJob]:
        return (job_of(batch) for batch in self.client.list_batches())

    def cancel_job(self, name: str) -> None:
        self.client.cancel_batch(name)

    def delete_job(self, name: str) -> None:
        """Nothing to do: the API keeps batches (and has no call to delete one)."""

    def open_output(self, job: ProviderJob | str) -> AbstractContextManager[Iterator[bytes]]:
        name = job if isinstance(job, str) else job.output
        if name is None:
            raise ValueError(f"job {job.name if not isinstance(job, str) else job} has no output")
        return self._output(name.split(","))

    @contextmanager
    def _output(self, file_ids: list[str]) -> Iterator[Iterator[bytes]]:
        with ExitStack() as stack:
            yield self._translated(stack, file_ids)

    def _translated(self, stack: ExitStack, file_ids: list[str]) -> Iterator[bytes]:
        for file_id in file_ids:
            chunks = stack.enter_context(self.client.download(file_id))
            rest = b""
            for chunk in chunks:
                data = rest + chunk
                end = data.rfind(b"\n") + 1
                rest = data[end:]
                translated = [
                    translate_output_line(line) for line in data[:end].splitlines() if line.strip()
                ]
                if translated:
                    yield b"".join(translated)
            if rest.strip():
                yield translate_output_line(rest)

    # ---- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        self.client.close()
