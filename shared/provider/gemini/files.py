"""Files API: resumable upload from storage, get, list, delete, streaming download.

Upload protocol (Google resumable upload, reference §1.1-1.2): ``start`` returns an
absolute upload URL; data goes there in chunks that are whole multiples of the chunk
granularity (8 MiB), each a ``POST`` with ``X-Goog-Upload-Offset``; the last one carries
``upload, finalize`` and is answered with the File. The upload URL itself authorizes the
session, so chunk and query calls carry no API key.

After a failed chunk the client does what the official SDK does not: it asks the server
(``X-Goog-Upload-Command: query``) how many bytes it holds and resumes from there, reopening
the source at that offset. Only one chunk is ever in memory.

Input files are declared with MIME type ``jsonl``, the value the provider's batch guide and
SDK examples pass for batch input files (``X-Goog-Upload-Header-Content-Type`` is taken
verbatim).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import BinaryIO

import httpx

from shared.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    ProviderServerError,
    StorageError,
    UploadStateError,
)
from shared.provider.base import ReaderFactory, UploadSession
from shared.provider.gemini._core import ClientCore, parse_wire, resource_name
from shared.provider.gemini._errors import error_from_exception, malformed
from shared.provider.gemini.models import File, UploadState, UploadStatus
from shared.provider.retry import bounded_wait, is_transient
from shared.settings import PROVIDER_MAX_FILE_BYTES

log = logging.getLogger("shardline.provider")

GRANULARITY = 8 * 1024 * 1024
INPUT_MIME_TYPE = "jsonl"

_STATUS = "x-goog-upload-status"
_SIZE_RECEIVED = "x-goog-upload-size-received"


def _read_chunk(reader: BinaryIO, size: int) -> bytes:
    """Exactly ``size`` bytes unless the source ends first."""
    data = reader.read(size)
    if len(data) >= size or not data:
        return data
    parts = [data]
    missing = size - len(data)
    while missing:
        more = reader.read(missing)
        if not more:
            break
        parts.append(more)
        missing -= len(more)
    return b"".join(parts)


class _ChunkBody:
    """A chunk as a request body: sent in slices, and forgotten once sent.

    Slices, because the transport copies what is left of a buffer after each partial socket
    send (``buffer = buffer[n:]``): one 8 MiB ``bytes`` body would briefly cost two chunks.
    Forgotten, because httpx keeps a sent request alive until the cyclic garbage collector
    runs (a response and its stream refer to each other), so a body kept on the request
    would let several chunks pile up between collections.
    """

    SLICE = 1024 * 1024

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __iter__(self) -> Iterator[bytes]:
        data, self._data = self._data, None
        if not data:
            return
        view = memoryview(data)
        del data
        with view:
            for start in range(0, len(view), self.SLICE):
                yield view[start : start + self.SLICE].tobytes()


def _upload_status(url: str, response: httpx.Response) -> UploadStatus:
    raw = response.headers.get(_STATUS, "").strip().lower()
    try:
        status = UploadState(raw)
    except ValueError as exc:
        raise malformed(response, f"upload status {raw!r}") from exc
    received = response.headers.get(_SIZE_RECEIVED)
    file = None
    if status is UploadState.FINAL and response.content:
        try:
            body = response.json()
        except ValueError as exc:
            raise malformed(response, "final upload answer is not JSON") from exc
        if isinstance(body, dict) and isinstance(body.get("file"), dict):
            file = parse_wire(File, body["file"], "upload finalize")
    return UploadStatus(
        url=url,
        status=status,
        size_received=int(received) if received and received.isdigit() else None,
        file=file,
    )


class FilesAPI(ClientCore):
    """The Files API calls of :class:`~shared.provider.gemini.client.GeminiClient`."""

    #: Download paths tried in order (``{version}``, ``{name}`` = ``files/<id>``); the next
    #: is tried only on a 404. The ``/download/`` form is the documented REST one, seen live;
    #: the SDK uses the plain form.
    download_paths: tuple[str, ...] = (
        "/download/{version}/{name}:download",
        "/{version}/{name}:download",
    )

    # ---- upload ----------------------------------------------------------------------

    def start_upload(
        self, size: int, *, display_name: str | None = None, mime_type: str = INPUT_MIME_TYPE
    ) -> UploadSession:
        """Open a resumable upload session for ``size`` bytes.

        Retried like a read: a session started twice only leaves an unused one behind.
        """
        if not 0 <= size <= PROVIDER_MAX_FILE_BYTES:
            raise ValueError(f"file size {size} outside 0..{PROVIDER_MAX_FILE_BYTES}")
        file: dict[str, str] = {"mimeType": mime_type}
        if display_name:
            file["displayName"] = display_name
        headers = {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": mime_type,
        }
        response = self._call(
            lambda: self._request(
                "POST",
                f"/upload/{self.api_version}/files",
                json={"file": file},
                headers=headers,
            )
        )
        url = response.headers.get("x-goog-upload-url")
        if not url:
            raise malformed(response, "no X-Goog-Upload-URL")
        granularity = response.headers.get("x-goog-upload-chunk-granularity", "")
        return UploadSession(
            url=url,
            chunk_granularity=int(granularity) if granularity.isdigit() else GRANULARITY,
        )

    def query_upload(self, url: str) -> UploadStatus:
        """Ask the server how far an upload got (``active`` + bytes held, or ``final``)."""
        try:
            response = self._call(
                lambda: self._request(
                    "POST",
                    url,
                    headers={"X-Goog-Upload-Command": "query"},
                    authorized=False,
                )
            )
        except NotFoundError as exc:
            raise UploadStateError(
                "upload session not found", code=exc.code, status=exc.status
            ) from exc
        return _upload_status(url, response)

    def upload_from(
        self,
        url: str,
        reader_factory: ReaderFactory,
        size: int,
        *,
        chunk_size: int = GRANULARITY,
        start_offset: int | None = 0,
        granularity: int = GRANULARITY,
        max_resumes: int = 5,
    ) -> File:
        """Send ``size`` bytes to the session at ``url`` and finalize it; returns the File.

        ``start_offset=None`` asks the server where to start (a task resuming a session it
        recorded before a crash). On a dropped connection, a 5xx/429, or a chunk answer
        that is neither ``active`` nor ``final``, the server's offset is queried and the
        source reopened there, at most ``max_resumes`` times. ``UploadStateError`` means the
        session is gone or finalized without a file: start a new one.
        """
        if chunk_size <= 0 or chunk_size % granularity:
            raise ValueError(f"chunk_size must be a positive multiple of {granularity}")
        position = self._resume_point(url, size) if start_offset is None else start_offset
        resumes = 0
        while not isinstance(position, File):
            # The failure is judged inside ``except`` so that neither it nor its traceback
            # (which holds the chunk just sent) outlives the block: one chunk in memory.
            try:
                with reader_factory(position) as reader:
                    reached = self._send_chunks(url, reader, position, size, chunk_size)
                if isinstance(reached, File):
                    return reached
                raise ProviderServerError(
                    f"upload chunk at byte {reached} answered neither active nor final"
                )
            except ProviderError as exc:
                resumes += 1
                wait = self._resume_wait(exc, resumes, max_resumes, size)
            log.warning(
                "upload interrupted (resume %d/%d); asking the server's offset",
                resumes,
                max_resumes,
            )
            self._sleep(wait)
            position = self._resume_point(url, size)
        return position

    def _send_chunks(
        self, url: str, reader: BinaryIO, offset: int, size: int, chunk_size: int
    ) -> File | int:
        """Send chunks from ``offset``; the File when finalized, else the offset of the
        chunk whose answer was neither ``active`` nor ``final``."""
        while True:
            length = min(chunk_size, size - offset)
            chunk = _read_chunk(reader, length)
            if len(chunk) < length:
                raise StorageError(f"upload source ended at byte {offset + len(chunk)} of {size}")
            last = offset + length >= size
            status = self._post_chunk(url, chunk, offset, last=last)
            del chunk
            if last and status is not None and status.file is not None:
                return status.file
            if last or status is None or status.status is not UploadState.ACTIVE:
                return offset
            offset += length

    def _post_chunk(
        self, url: str, chunk: bytes, offset: int, *, last: bool
    ) -> UploadStatus | None:
        """One chunk, one attempt; the answer's upload status (None when it has none)."""
        try:
            response = self._send(
                self._request(
                    "POST",
                    url,
                    content=_ChunkBody(chunk),
                    headers={
                        "X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                        "X-Goog-Upload-Offset": str(offset),
                        "Content-Length": str(len(chunk)),
                        "Content-Type": "application/octet-stream",
                    },
                    authorized=False,
                )
            )
        except (AuthError, NotFoundError) as exc:
            raise UploadStateError(
                f"upload session rejected: {exc.message}", code=exc.code, status=exc.status
            ) from exc
        return _upload_status(url, response) if response.headers.get(_STATUS) else None

    def _resume_wait(
        self, failure: ProviderError, resumes: int, max_resumes: int, size: int
    ) -> float:
        """How long to wait before asking for the server's offset, or raise: the session is
        dead, resumes are used up, or the server asks for a longer wait than we sleep."""
        if isinstance(failure, UploadStateError):
            raise failure
        if resumes > max_resumes:
            raise UploadStateError(
                f"upload of {size} bytes still failing after {max_resumes} resumes: {failure}"
            ) from failure
        if not is_transient(failure):
            return 0.0  # a refused chunk (e.g. wrong offset): resynchronise at once
        wait = bounded_wait(failure, step=resumes - 1, policy=self.retry, rng=self._rng)
        if wait is None:
            raise failure
        return wait

    def _resume_point(self, url: str, size: int) -> int | File:
        """The server's committed offset, or the File if the upload is already final."""
        status = self.query_upload(url)
        if status.status is UploadState.FINAL:
            if status.file is None:
                raise UploadStateError("upload already finalized; its file was not returned")
            return status.file
        if status.status is UploadState.CANCELLED:
            raise UploadStateError("upload session was cancelled")
        if status.size_received is None or not 0 <= status.size_received <= size:
            raise UploadStateError(
                f"server holds {status.size_received} bytes of an upload of {size}"
            )
        return status.size_received

    def upload(
        self,
        reader_factory: ReaderFactory,
        size: int,
        *,
        display_name: str | None = None,
        mime_type: str = INPUT_MIME_TYPE,
        chunk_size: int = GRANULARITY,
    ) -> File:
        """Start a session and upload through it (for callers that need not record the URL).

        ``chunk_size`` is rounded down to whole granules of the session (at least one).
        """
        session = self.start_upload(size, display_name=display_name, mime_type=mime_type)
        granularity = session.chunk_granularity
        return self.upload_from(
            session.url,
            reader_factory,
            size,
            chunk_size=max(granularity, chunk_size // granularity * granularity),
            granularity=granularity,
        )

    # ---- the rest ----------------------------------------------------------------------

    def get_file(self, name: str) -> File:
        """One file's metadata; ``NotFoundError`` if missing, expired or another key's."""
        path = resource_name("files", name)
        return parse_wire(File, self._json("GET", path), f"GET {path}")

    def list_files(self, *, page_size: int = 100) -> Iterator[File]:
        """Every file of this key, page by page (``pageSize`` at most 100)."""
        for item in self._paged("files", "files", page_size=page_size):
            yield parse_wire(File, item, "GET files")

    def delete_file(self, name: str) -> None:
        """Delete a file. ``NotFoundError`` when it is already gone (also when a retried
        delete had in fact succeeded): the caller decides whether that matters."""
        self._json("DELETE", resource_name("files", name))

    @contextmanager
    def download(self, name: str, *, chunk_size: int = 1024 * 1024) -> Iterator[Iterator[bytes]]:
        """Stream a (generated) file's bytes: ``with client.download(n) as chunks: ...``.

        The request is retried until the answer's headers arrive; a failure while reading
        the body raises ``ProviderConnectionError`` and the caller downloads again.
        """
        path = resource_name("files", name)
        response = None
        for index, template in enumerate(self.download_paths):
            url = template.format(version=self.api_version, name=path)
            build = partial(self._request, "GET", url, params={"alt": "media"})
            try:
                response = self._call(build, stream=True)
                break
            except NotFoundError:
                if index == len(self.download_paths) - 1:
                    raise
        if response is None:
            raise ValueError("no download path configured")
        try:
            yield self._body(response, chunk_size)
        finally:
            response.close()

    @staticmethod
    def _body(response: httpx.Response, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(chunk_size)
        except httpx.HTTPError as exc:
            raise error_from_exception(exc) from exc
