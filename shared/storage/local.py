"""Storage in a local directory: the default for one machine, and a shared mount for many.

Writes go to a hidden temp file in the object's own directory and are renamed into place
(``os.replace``) only when the ``with`` block exits cleanly, after ``fsync`` of the file and
then of the directory, so a crash or an exception never leaves a partial object, and a
reader sees the old content or the new, never a mix. ``create_if_absent`` writes a temp file
and hard-links it to the key: ``link`` fails if the name exists, which makes it atomic
across processes (and across machines on NFS, where ``link`` is atomic too).

Temp files are named ``.shardline-tmp-*``; listings skip them, and a key whose segment
starts so is refused. A process killed mid-write leaves its temp file behind: it is
invisible to every operation here, and safe to delete once older than any running write.
Deleting an object removes the directories it leaves empty, as an object store would.
Unlike an object store, a key cannot be both an object and the "directory" of others
(``a`` and ``a/b``): the second write raises ``StorageError``. Shardline's layout never
does that.
"""

from __future__ import annotations

import builtins
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from shared.errors import ObjectNotFoundError, StorageError
from shared.storage._object_keys import (
    check_key,
    check_list_prefix,
    check_prefix,
    join_key,
    split_list_prefix,
    walk_order,
)
from shared.storage.base import ObjectInfo, Storage

TEMP_PREFIX = ".shardline-tmp-"
#: Reads and writes go through a buffer this big: large enough that a line-by-line reader
#: or writer makes few system calls, small enough to stay out of any memory budget.
BUFFER_BYTES = 1024 * 1024
_NOT_AN_OBJECT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class LocalStorage(Storage):
    """Objects are files under ``root``; keys are their relative paths."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)
        self._fsync = fsync

    # ---- reading ---------------------------------------------------------------------

    @contextmanager
    def open_read(self, key: str, *, offset: int = 0) -> Iterator[BinaryIO]:
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        path = self._path(key)
        try:
            reader = open(path, "rb", buffering=BUFFER_BYTES)  # noqa: SIM115 - closed below
        except _NOT_AN_OBJECT as exc:
            raise ObjectNotFoundError(f"{self._describe(key)} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot open {self._describe(key)}: {exc}") from exc
        with reader:
            if offset:
                reader.seek(offset)
            yield reader

    def info(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except _NOT_AN_OBJECT as exc:
            raise ObjectNotFoundError(f"{self._describe(key)} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot stat {self._describe(key)}: {exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFoundError(f"{self._describe(key)} is not an object")
        return _info(key, st)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        directory, partial = split_list_prefix(check_list_prefix(prefix))
        return self._walk(directory, partial)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    # ---- writing ---------------------------------------------------------------------

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        temp, writer = self._open_temp(path)
        try:
            yield writer
        except BaseException:
            with suppress(OSError):
                writer.close()
            temp.unlink(missing_ok=True)
            raise
        try:
            writer.close()
            self._sync(temp)
            os.replace(temp, path)
            self._sync(path.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {self._describe(key)}: {exc}") from exc

    def create_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        temp, writer = self._open_temp(path)
        try:
            with writer:
                writer.write(data)
            self._sync(temp)
            os.link(temp, path)
            self._sync(path.parent)
        except FileExistsError:
            if path.is_dir():
                raise StorageError(
                    f"cannot create {self._describe(key)}: a directory has that name"
                ) from None
            return False
        except OSError as exc:
            raise StorageError(f"cannot create {self._describe(key)}: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
        return True

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except _NOT_AN_OBJECT:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {self._describe(key)}: {exc}") from exc
        self._prune(path.parent)

    def child(self, prefix: str) -> LocalStorage:
        return LocalStorage(self.root / check_prefix(prefix), fsync=self._fsync)

    # ---- internals -------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        if any(segment.startswith(TEMP_PREFIX) for segment in key.split("/")):
            raise ValueError(f"invalid storage key {key!r}: {TEMP_PREFIX}* names are reserved")
        return self.root / key

    def _describe(self, key: str) -> str:
        return str(self.root / key)

    def _open_temp(self, path: Path) -> tuple[Path, BinaryIO]:
        """A new hidden file beside ``path``, creating its directory when needed.

        Retried when the directory vanishes in between: a concurrent ``delete`` prunes the
        directories it leaves empty.
        """
        retries = 3
        while True:
            temp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            except FileNotFoundError:
                retries -= 1
                if retries:
                    continue
                raise StorageError(f"cannot write under {path.parent}: it vanished") from None
            except OSError as exc:
                raise StorageError(f"cannot write under {path.parent}: {exc}") from exc
            return temp, os.fdopen(fd, "wb", buffering=BUFFER_BYTES)

    def _sync(self, path: Path) -> None:
        """``fsync`` a file or directory by path (the writer may already be closed)."""
        if not self._fsync:
            return
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        except OSError as exc:
            # Some filesystems refuse fsync on directories; the rename is still atomic.
            if exc.errno not in {errno.EINVAL, errno.EBADF, errno.ENOTSUP}:
                raise
        finally:
            os.close(fd)

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents while empty, stopping at the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _walk(self, directory: str, partial: str) -> Iterator[ObjectInfo]:
        """Yield objects under ``directory`` whose next name starts with ``partial``."""
        base = self.root / directory if directory else self.root
        try:
            with os.scandir(base) as scan:
                entries = [
                    entry
                    for entry in scan
                    if entry.name.startswith(partial) and not entry.name.startswith(TEMP_PREFIX)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot list {base}: {exc}") from exc
        ordered: builtins.list[tuple[str, bool, os.DirEntry[str]]] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                continue
            ordered.append((walk_order(entry.name, is_dir), is_dir, entry))
        ordered.sort(key=lambda item: item[0])
        for _, is_dir, entry in ordered:
            key = join_key(directory, entry.name)
            if is_dir:
                yield from self._walk(key, "")
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # deleted while we listed
            if stat.S_ISREG(st.st_mode):
                yield _info(key, st)


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
    )
