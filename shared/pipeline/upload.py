"""Stage 3: upload each part of an attempt with the resumable protocol, from storage.

The session URL is recorded before the first byte is sent, so a redelivered task (on any
worker) asks the server how much it holds and continues from there instead of starting over.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, suppress
from typing import BinaryIO

from shared import names
from shared.errors import ProviderError, ProviderServerError, UploadStateError
from shared.failpoints import failpoint, on_reads
from shared.pipeline.context import RunContext
from shared.provider import UploadSession
from shared.run import layout
from shared.run.records import PartPlan, UploadRecord, utcnow


def upload_attempt(ctx: RunContext, shard: int, attempt: int) -> None:
    if ctx.store.cancel_requested():
        return
    record = ctx.store.require_attempt(shard, attempt)
    for part in record.parts:
        upload_part(ctx, shard, attempt, part)


def upload_part(ctx: RunContext, shard: int, attempt: int, part: PartPlan) -> UploadRecord:
    record = ctx.store.upload(shard, attempt, part.part)
    if record is not None and record.file_name is not None:
        return record
    holder = names.redis_holder(ctx.run_id, shard, attempt, part.part)
    fresh = record is None
    if record is None:
        ctx.keys.primary()  # a clear error when no key is configured at all
        size = ctx.storage.size(part.input_key)
        fingerprint = ctx.admission.choose_key(
            ctx.keys.fingerprints, model=ctx.manifest.model, tokens=part.estimated_tokens,
            size=size, holder=holder,
        )
        record = UploadRecord(key_fingerprint=fingerprint, size=size)
    # The provider holds at most 20 GB per key: wait (countdown) for room, never overfill.
    ctx.admission.acquire_file_bytes(record.key_fingerprint, holder, record.size)
    provider = ctx.provider(record.key_fingerprint)

    def reader(offset: int) -> AbstractContextManager[BinaryIO]:
        return on_reads("upload.after_chunk", ctx.storage.open_read(part.input_key, offset=offset))

    chunk_size = ctx.settings.upload_chunk_bytes
    if record.session_url is not None:
        recorded = UploadSession(url=record.session_url, chunk_granularity=record.granularity)
        try:
            file_name = provider.send_upload(
                recorded,
                reader,
                record.size,
                chunk_size=chunk_size,
                start_offset=None,  # ask the server how much it already holds
            )
            return _finished(ctx, shard, attempt, part.part, record, file_name)
        except UploadStateError:
            pass  # the session is gone (expired, finalized without a file): start anew
    session = provider.start_upload(
        record.size, display_name=layout.display_name(ctx.run_id, shard, attempt, part.part)
    )
    record.session_url = session.url
    record.granularity = session.chunk_granularity
    record.started_at = utcnow()
    if not fresh:
        ctx.store.write_upload(shard, attempt, part.part, record)
    elif not ctx.store.create_upload(shard, attempt, part.part, record):
        # A duplicate of this task opened the part's session first: join it (ours, never
        # finalized, makes no file).
        return upload_part(ctx, shard, attempt, part)
    failpoint("upload.after_session")
    try:
        file_name = provider.send_upload(
            session, reader, record.size, chunk_size=chunk_size, start_offset=0
        )
    except UploadStateError as exc:
        # The server ended the new session (a chunk past the storage quota, say): retryable;
        # the next try finds it dead and opens another.
        raise ProviderServerError(
            f"upload session ended: {exc.message}", code=exc.code, status=exc.status
        ) from exc
    return _finished(ctx, shard, attempt, part.part, record, file_name)


def _finished(
    ctx: RunContext, shard: int, attempt: int, part: int, record: UploadRecord, file_name: str
) -> UploadRecord:
    failpoint("upload.after_finalize")
    stored = ctx.store.upload(shard, attempt, part)
    if stored is not None and stored.file_name not in (None, file_name):
        # A duplicate delivery of this task finished the part first: keep its file, delete
        # ours (nothing refers to it; it would hold provider quota for 48 h).
        with suppress(ProviderError):
            ctx.provider(record.key_fingerprint).delete_file(file_name)
        return stored
    record.file_name = file_name
    record.finished_at = utcnow()
    record.session_url = None
    ctx.store.write_upload(shard, attempt, part, record)
    return record
