"""The storage interface every stage uses; backends differ only behind it.

A :class:`Storage` is rooted at a URI (a local directory, ``s3://bucket/prefix``,
``gs://bucket/prefix``, ``memory://name``); keys are ``/``-separated paths relative to it.
Everything streams: readers and writers are file objects that never hold an object whole.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import BinaryIO

from pydantic import BaseModel


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

    def read_bytes(self, key: str) -> bytes:
        """Whole content of a *small* object (records, manifests), never of data files."""
        with self.open_read(key) as reader:
            return reader.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomically create or replace a small object."""
        with self.open_write(key) as writer:
            writer.write(data)

    def exists(self, key: str) -> bool:
        from shared.errors import ObjectNotFoundError

        try:
            self.info(key)
        except ObjectNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return self.info(key).size

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        count = 0
        for item in list(self.list(prefix)):
            self.delete(item.key)
            count += 1
        return count
