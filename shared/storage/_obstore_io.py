"""File objects over obstore, and the one place obstore errors become ours.

Reading is one streaming GET per object, wrapped as a raw stream under ``io.BufferedReader``
(so ``readline``, iteration and ``read(n)`` behave as on a local file). obstore already
resumes a broken body with range requests, but at most ``max_retries`` (10) times per GET;
a slow consumer of a multi-GB object (the client's overall request timeout is 30 s) uses
those up. So when the stream fails after delivering bytes, the reader opens a new GET from
its position, pinned to the first response's etag with ``If-Match``: a replaced object
fails loudly instead of splicing two versions. A failure with no progress since the last
(re)open is final.

Writing uses obstore's multipart writer (one part per ``buffer_bytes``); on an exception
the upload is aborted (verified against S3: no object, no pending upload) instead of
completed. Every buffer handed to obstore is an immutable ``bytes`` copy, because the
writer may keep a part in flight after ``write`` returns while ``io.BufferedWriter``
reuses its buffer.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import suppress
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import PreconditionError

from shared.errors import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer
    from obstore import GetOptions, WritableFile
    from obstore.store import ObjectStore

#: Everything obstore raises for I/O: its own tree, plus built-in OSErrors
#: (``FileNotFoundError`` for a missing object).
OBSTORE_ERRORS = (ObstoreError, OSError)
_MESSAGE_LIMIT = 300
#: With no credentials in the environment obstore asks the cloud's metadata endpoint; off
#: the cloud that fails (refused, 403, timeout) with a message about the endpoint, which
#: tells the user nothing. These mark that case.
_NO_CREDENTIALS = (
    "169.254.169.254",  # AWS instance metadata (IMDS)
    "169.254.170.2",  # ECS task credentials
    "fd00:ec2::254",
    "metadata.google.internal",
    "computeMetadata/v1",
)
_CREDENTIALS_HINT = (
    "none in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web "
    "identity; GOOGLE_APPLICATION_CREDENTIALS for gs://) and no cloud metadata endpoint "
    "answered"
)
logger = logging.getLogger(__name__)


def storage_error(exc: BaseException, action: str, uri: str) -> StorageError:
    """Our error for an obstore failure: not-found kept apart, the message cut to one line.

    obstore messages carry the request URL and the server's reply, never credentials
    (requests are signed in headers); only the first line is kept, the rest stays on the
    ``__cause__``.
    """
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFoundError(f"{uri} does not exist")
    text = str(exc).strip()
    if any(sign in text for sign in _NO_CREDENTIALS):
        return StorageError(f"cannot {action} {uri}: no credentials: {_CREDENTIALS_HINT}")
    first = text.splitlines()[0] if text else ""
    if len(first) > _MESSAGE_LIMIT:
        first = first[:_MESSAGE_LIMIT] + "..."
    return StorageError(f"cannot {action} {uri}: {type(exc).__name__}: {first}")


class ObjectReader(io.RawIOBase):
    """A raw, forward-only stream of one object from ``offset``, resuming broken GETs.

    ``resumes`` counts the GETs reopened after a failure (for logs and tests).
    """

    def __init__(
        self, store: ObjectStore, path: str, *, uri: str, offset: int, chunk_bytes: int
    ) -> None:
        super().__init__()
        self._store = store
        self._path = path
        self._uri = uri
        self._chunk_bytes = chunk_bytes
        self._pos = offset
        self._etag: str | None = None
        self._size: int | None = None
        self._chunks: Iterator[bytes] | None = None
        self._view = memoryview(b"")
        self._progress = False
        self.resumes = 0
        self._open()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        out = memoryview(buffer).cast("B")
        while not self._view:
            if self._chunks is None:
                return 0
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._chunks = None
                return 0
            except OBSTORE_ERRORS as exc:
                if not self._progress or isinstance(exc, FileNotFoundError):
                    raise storage_error(exc, "read", self._uri) from exc
                self.resumes += 1
                logger.info(
                    "resuming read of %s at byte %d after: %s",
                    self._uri,
                    self._pos,
                    storage_error(exc, "read", self._uri),
                )
                self._open()
                continue
            self._view = memoryview(chunk)
            self._progress = True
        count = min(len(out), len(self._view))
        out[:count] = self._view[:count]
        self._view = self._view[count:]
        self._pos += count
        return count

    def close(self) -> None:
        self._chunks = None
        self._view = memoryview(b"")
        super().close()

    def _open(self) -> None:
        """(Re)start the GET at the current position."""
        self._progress = False
        if self._size is not None and self._pos >= self._size:
            self._chunks = None
            return
        options: GetOptions = {}
        if self._pos:
            options["range"] = {"offset": self._pos}
        if self._etag is not None:
            options["if_match"] = self._etag
        try:
            result = obstore.get(self._store, self._path, options=options)
        except PreconditionError as exc:
            raise StorageError(f"{self._uri} was replaced while being read") from exc
        except OBSTORE_ERRORS as exc:
            # An offset at or past the end is refused (416): that is an empty read.
            first_open_at_offset = self._etag is None and self._pos > 0
            if first_open_at_offset and not isinstance(exc, FileNotFoundError) and self._past_end():
                self._chunks = None
                return
            raise storage_error(exc, "read", self._uri) from exc
        meta = result.meta
        self._etag = meta["e_tag"]
        self._size = meta["size"]
        self._chunks = iter(result.stream(min_chunk_size=self._chunk_bytes))

    def _past_end(self) -> bool:
        try:
            size = obstore.head(self._store, self._path)["size"]
        except OBSTORE_ERRORS:
            return False
        return self._pos >= size


class ObjectWriter(io.RawIOBase):
    """A raw sink into an obstore multipart writer that commits only when told to."""

    def __init__(
        self, store: ObjectStore, path: str, *, uri: str, buffer_bytes: int, concurrency: int
    ) -> None:
        super().__init__()
        self._uri = uri
        self._finished = False
        try:
            self._file: WritableFile = obstore.open_writer(
                store, path, buffer_size=buffer_bytes, max_concurrency=concurrency
            )
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "write", uri) from exc

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        size = memoryview(data).nbytes
        if self._finished:
            return size  # an aborted upload swallows what the buffer still flushes
        try:
            self._file.write(bytes(data))
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "write", self._uri) from exc
        return size

    def commit(self) -> None:
        """Complete the upload: the object appears now."""
        if self._finished:
            return
        self._finished = True
        try:
            self._file.close()
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "write", self._uri) from exc

    def abort(self, exc: BaseException) -> None:
        """Abandon the upload (obstore aborts it when its context exits with an error)."""
        if self._finished:
            return
        self._finished = True
        with suppress(*OBSTORE_ERRORS):  # the caller's own exception is the one that matters
            self._file.__exit__(type(exc), exc, exc.__traceback__)
