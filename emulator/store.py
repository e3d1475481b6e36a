"""Where records and bytes live: metadata as JSON files (atomic writes), bytes as files.

Layout under the data directory::

    meta/files/<id>.json      meta/uploads/<upload id>.json    meta/jobs/<id>.json
    meta/clock.json           the emulated time at the last save (restart resumes from it)
    blobs/<file id>           a file's bytes (uploads grow here until finalized)
    work/<job id>/            a job's inline input/output and its scratch files

Records are held in memory too (they are small); bytes never are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from emulator.records import FileRecord, JobRecord, UploadRecord

_M = TypeVar("_M", bound=BaseModel)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path`` and rename it over: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Store:
    """Records in memory, mirrored to ``root/meta``; byte paths under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        self.files: dict[str, FileRecord] = {}
        self.uploads: dict[str, UploadRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        for sub in ("meta/files", "meta/uploads", "meta/jobs", "blobs", "work"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._load()

    # ---- paths -----------------------------------------------------------------------
    def blob(self, file_id: str) -> Path:
        return self.root / "blobs" / file_id

    def upload_blob(self, upload_id: str) -> Path:
        return self.root / "blobs" / f"upload-{upload_id}"

    def work_dir(self, job_id: str) -> Path:
        return self.root / "work" / job_id

    @property
    def clock_path(self) -> Path:
        return self.root / "meta" / "clock.json"

    # ---- load / save -----------------------------------------------------------------
    def _read(self, sub: str, model: type[_M]) -> list[_M]:
        folder = self.root / "meta" / sub
        return [model.model_validate_json(p.read_bytes()) for p in sorted(folder.glob("*.json"))]

    def _load(self) -> None:
        self.files = {r.id: r for r in self._read("files", FileRecord)}
        self.uploads = {r.id: r for r in self._read("uploads", UploadRecord)}
        self.jobs = {r.id: r for r in self._read("jobs", JobRecord)}

    def _save(self, sub: str, record: BaseModel, record_id: str) -> None:
        with self._lock:
            path = self.root / "meta" / sub / f"{record_id}.json"
            write_atomic(path, record.model_dump_json().encode())

    def save_file(self, record: FileRecord) -> None:
        with self._lock:
            self.files[record.id] = record
            self._save("files", record, record.id)

    def save_upload(self, record: UploadRecord) -> None:
        with self._lock:
            self.uploads[record.id] = record
            self._save("uploads", record, record.id)

    def save_job(self, record: JobRecord, *, create: bool = False) -> None:
        """Persist a job; an update to a job deleted meanwhile is dropped, not resurrected."""
        with self._lock:
            if not create and self.jobs.get(record.id) is not record:
                return
            self.jobs[record.id] = record
            self._save("jobs", record, record.id)

    def delete_file(self, file_id: str) -> None:
        with self._lock:
            self.files.pop(file_id, None)
            (self.root / "meta" / "files" / f"{file_id}.json").unlink(missing_ok=True)
            self.blob(file_id).unlink(missing_ok=True)

    def delete_upload(self, upload_id: str, *, keep_bytes: bool = False) -> None:
        with self._lock:
            self.uploads.pop(upload_id, None)
            (self.root / "meta" / "uploads" / f"{upload_id}.json").unlink(missing_ok=True)
            if not keep_bytes:
                self.upload_blob(upload_id).unlink(missing_ok=True)

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            self.jobs.pop(job_id, None)
            (self.root / "meta" / "jobs" / f"{job_id}.json").unlink(missing_ok=True)

    def remove_work(self, job_id: str) -> None:
        shutil.rmtree(self.work_dir(job_id), ignore_errors=True)

    def wipe(self) -> None:
        """Forget every record and byte (the admin reset)."""
        with self._lock:
            self.files.clear()
            self.uploads.clear()
            self.jobs.clear()
            for sub in ("meta/files", "meta/uploads", "meta/jobs", "blobs", "work"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
                (self.root / sub).mkdir(parents=True, exist_ok=True)
