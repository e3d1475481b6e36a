"""The one seam between the pipeline and a provider's batch API.

The stages never speak a provider's wire protocol: they call a :class:`BatchProvider`,
the way httpx puts all I/O behind ``BaseTransport.handle_request``. A provider is one
implementation of these few calls (Gemini's is :mod:`shared.provider.gemini`); what it gets
back is in neutral models whose job states are the records' own
(:class:`~shared.run.states.BatchState`).

Errors are the :class:`~shared.errors.ProviderError` tree whatever the provider: an
implementation maps its wire errors there, keeping the provider's code, status and message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from shared.run.spec import Kind
from shared.run.states import BatchState

#: Opens the upload source positioned at a byte offset (e.g. ``storage.open_read(key,
#: offset=n)``); called again at the server's offset after a failure.
ReaderFactory = Callable[[int], AbstractContextManager[BinaryIO]]

class _Neutral(BaseModel):
    model_config = ConfigDict(frozen=True)


class UploadSession(_Neutral):
    """A started resumable upload: where its bytes go, and the unit chunks come in."""

    url: str
    chunk_granularity: int = 8 * 1024 * 1024


class ProviderFile(_Neutral):
    """A file the provider holds (an uploaded input, or an output it generated)."""

    name: str
    display_name: str | None = None
    size_bytes: int | None = None
    create_time: datetime | None = None
    generated: bool = False


class JobCounts(_Neutral):
    request_count: int = 0
    succeeded_count: int = 0
    failed_count: int = 0
    pending_count: int = 0


class ProviderJob(_Neutral):
    """A batch job as the pipeline needs it, whatever the provider said it in."""

    name: str
    display_name: str | None = None
    state: BatchState = BatchState.UNSPECIFIED
    create_time: datetime | None = None
    counts: JobCounts = Field(default_factory=JobCounts)
    #: Where the results are, once there are any (a file name for :meth:`open_output`).
    output: str | None = None
    #: The provider's own error of the whole job (code, message, status), if any.
    error: dict[str, Any] | None = None

    @property
    def is_live(self) -> bool:
        """Still worth polling: not terminal, or SUCCEEDED before its output is attached."""
        if self.state is BatchState.SUCCEEDED:
            return self.output is None
        return not self.state.terminal


class BatchProvider(ABC):
    """What the stages ask of a provider. One instance talks with one credential."""

    #: The provider's name in settings and records (``"gemini"``).
    name: str

    # ---- files -------------------------------------------------------------------------

    @abstractmethod
    def start_upload(self, size: int, *, display_name: str) -> UploadSession:
        """Open a resumable upload of ``size`` bytes; the session is recorded before any
        byte is sent, so another worker can continue it."""

    @abstractmethod
    def send_upload(
        self,
        session: UploadSession,
        source: ReaderFactory,
        size: int,
        *,
        chunk_size: int,
        start_offset: int | None,
    ) -> str:
        """Send the bytes and finish the upload; returns the file's name.

        ``start_offset=None`` asks the server how much it holds (a task resuming a session
        it recorded before a crash). ``UploadStateError``: the session is gone; start anew.
        """

    @abstractmethod
    def delete_file(self, name: str) -> None:
        """Delete a file; ``NotFoundError`` when it is gone already."""

    @abstractmethod
    def list_files(self) -> Iterator[ProviderFile]:
        """Every file this credential holds at the provider."""

    # ---- jobs --------------------------------------------------------------------------

    @abstractmethod
    def create_job(
        self,
        *,
        model: str,
        kind: Kind,
        display_name: str,
        file_name: str,
        source: ReaderFactory | None = None,
    ) -> ProviderJob:
        """Create a batch job over an uploaded file. Never retried after an ambiguous
        failure: the caller looks the job up by ``display_name`` first (:meth:`find_jobs`).

        ``source`` opens the part's staged input: a provider that takes its requests in the
        create call itself (no file) streams them from there; the others ignore it."""

    @abstractmethod
    def get_job(self, name: str) -> ProviderJob:
        """The job's current state; ``NotFoundError`` if the provider no longer knows it."""

    @abstractmethod
    def list_jobs(self) -> Iterator[ProviderJob]:
        """Every batch job this credential can see."""

    def find_jobs(self, display_name: str) -> list[ProviderJob]:
        """Jobs carrying ``display_name``: the look-up before any second create."""
        return [job for job in self.list_jobs() if job.display_name == display_name]

    @abstractmethod
    def cancel_job(self, name: str) -> None:
        """Ask the provider to stop the job; it ends CANCELLED (poll to see it)."""

    @abstractmethod
    def delete_job(self, name: str) -> None:
        """Remove a finished job; ``NotFoundError`` when it is gone already."""

    @abstractmethod
    def open_output(self, job: ProviderJob | str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a finished job's results (JSONL bytes), given the job or its ``output``."""

    # ---- lifetime ----------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> BatchProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
