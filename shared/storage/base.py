"""The storage interface every stage uses; backends differ only behind it.

A :class:`Storage` is rooted at a URI (a local directory, ``s3://bucket/prefix``,
``gs://bucket/prefix``, ``memory://name``); keys are ``/``-separated paths relative to it.
Everything streams: readers and writers are file objects that never hold an object whole.

Keys are checked before any I/O (see ``shared.storage._object_keys``): no empty, ``.`` or ``..``
segment, no leading or trailing ``/``. A bad key is a programming error and raises
``ValueError``; everything the storage itself does wrong raises a ``StorageError``.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel

from shared.errors import ObjectNotFoundError


class ObjectInfo(BaseModel):
    """What a listing tells about one object."""

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None


class Storage(ABC):
    """A bucket-like namespace rooted at ``uri``."""

    uri: str

    @abstractmethod
    def open_read(self, key: str, *, offset: int = 0) -> AbstractContextManager[BinaryIO]:
        """A buffered binary reader from byte ``offset`` (supports ``read(n)``, ``readline``,
        line iteration). Raises ``ObjectNotFoundError`` if the object is missing."""

    @abstractmethod
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A binary writer; the object appears (or is replaced) only when the block exits
        cleanly. An exception inside the block leaves no new object behind."""

    @abstractmethod
    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically create a small object; False if it already existed (nothing written)."""

    @abstractmethod
    def info(self, key: str) -> ObjectInfo:
        """Size and etag of one object; ``ObjectNotFoundError`` if missing."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; a missing object is not an error."""

    @abstractmethod
    def child(self, prefix: str) -> Storage:
        """A storage rooted at ``prefix`` inside this one."""

    # Conveniences built on the primitives; backends may override for speed.

    def local_path(self, key: str) -> Path | None:
        """The object's path on the local filesystem, or None when it has none.

        A fast path for callers that can use a plain file (``os.sendfile``, ``mmap``); they
        must fall back to ``open_read``/``open_write`` when this is None. Only read the path,
        or write it through ``open_write``: writing it directly loses atomicity.
        """
        return None

    def read_bytes(self, key: str) -> bytes:
        """Whole content of a *small* object (records, manifests), never of data files."""
        with self.open_read(key) as reader:
            return reader.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomically create or replace a small object."""
        with self.open_write(key) as writer:
            writer.write(data)

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except ObjectNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return self.info(key).size

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        keys: builtins.list[str] = [item.key for item in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
