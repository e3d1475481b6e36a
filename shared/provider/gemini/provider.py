"""Gemini's implementation of :class:`~shared.provider.base.BatchProvider`.

A thin adapter over :class:`~shared.provider.gemini.client.GeminiClient` (the wire client):
it turns the Batch API's Operation into a neutral :class:`ProviderJob` and names the
File API's calls the way the stages ask for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

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


def job_of(batch: BatchJob) -> ProviderJob:
    """The neutral view of a Batch API job."""
    stats = batch.batch_stats
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
        output=batch.responses_file,
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

    def __init__(self, client: GeminiClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"GeminiProvider({self.client!r})"

    def start_upload(self, size: int, *, display_name: str) -> UploadSession:
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
        return self.client.download(name)

    def close(self) -> None:
        self.client.close()
