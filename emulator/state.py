"""One emulator instance's state: config, clock, store, faults, jobs and counters.

HTTP handlers receive this object; nothing here knows about HTTP. Created by
:func:`emulator.app.create_app`, one per app, so several emulators can run in one process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import orjson

from emulator.clock import EmulatedClock
from emulator.config import EmulatorConfig
from emulator.faults import FaultEngine
from emulator.jobs import JobManager
from emulator.records import FileRecord, JobRecord, UploadRecord
from emulator.store import Store, write_atomic

_TEMP_PREFIX = "gemini-emulator-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temp_dirs() -> None:
    """Remove temp data dirs left by emulators that were killed (SIGKILL skips cleanup)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*-*"):
        pid = path.name.removeprefix(_TEMP_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible name for a key: what records and the admin API show."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def owner_of(api_key: str, config: EmulatorConfig) -> str:
    """Who owns what a key makes: its project (``project:<name>``), else the key itself.

    Files and batch jobs belong to a Google Cloud project, not to the key that made them:
    every key of the project sees them, and the project's limits count them.
    """
    project = config.project_of(api_key)
    return f"project:{project}" if project is not None else fingerprint(api_key)


class Emulator:
    """Everything one running emulator holds."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._temp_root: Path | None = None
        if config.data_dir is None:
            _remove_stale_temp_dirs()
            prefix = f"{_TEMP_PREFIX}{os.getpid()}-"
            self._temp_root = Path(tempfile.mkdtemp(prefix=prefix))
            root = self._temp_root
        else:
            root = Path(config.data_dir)
            root.mkdir(parents=True, exist_ok=True)
        self.store = Store(root)
        start = None
        if self.store.clock_path.exists():
            start = float(orjson.loads(self.store.clock_path.read_bytes())["now"])
        self.clock = EmulatedClock(config.time_scale, start)
        self.faults = FaultEngine(config.faults)
        self.jobs = JobManager(self.store, self.clock, config, self.faults)
        self.requests: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        #: Running sha256/line count per upload session (lost on restart, rebuilt from disk).
        self.upload_progress: dict[str, object] = {}
        self.closed = False

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Resume the work of jobs that were live when the last process stopped."""
        self.jobs.resume()

    def save_clock(self) -> None:
        write_atomic(self.store.clock_path, orjson.dumps({"now": self.clock.now()}))

    def close(self) -> None:
        """Stop workers; remove the temp data dir (a given ``data_dir`` is kept)."""
        if self.closed:
            return
        self.closed = True
        self.jobs.shutdown()
        if self._temp_root is not None:
            shutil.rmtree(self._temp_root, ignore_errors=True)
        else:
            self.save_clock()

    def reset(self) -> None:
        """Forget every file, upload and job; faults back to the start-up settings."""
        for job_id in list(self.store.jobs):
            self.jobs.stop_work(job_id)
        self.store.wipe()
        self.faults.replace(self.config.faults)
        self.requests.clear()
        self.responses.clear()

    # ---- accounting ------------------------------------------------------------------
    def sweep(self) -> None:
        """Advance every live job and drop expired files (run periodically and on demand)."""
        for job in list(self.store.jobs.values()):
            self.jobs.refresh(job)
        now = self.clock.now()
        for record in list(self.store.files.values()):
            if record.expiration_time <= now:
                self.store.delete_file(record.id)
        for session in list(self.store.uploads.values()):
            if session.create_time + self.config.file_ttl_seconds <= now:
                self.store.delete_upload(session.id)  # abandoned or long finished

    def visible(self, record: FileRecord) -> bool:
        """Whether the Files API shows the file: a batch's output appears with the job's
        results (SUCCEEDED and attached), not while its work runs ahead of the job's state.
        The output of a deleted job stays visible (deleting a job keeps its output)."""
        if record.source != "GENERATED":
            return True
        job = self.store.jobs.get(record.id.removeprefix("batch-"))
        if job is None:
            return True
        self.jobs.refresh(job)
        return self.jobs.output_visible(job)

    def live_file(self, file_id: str, owner: str) -> FileRecord | None:
        """The file if it exists, belongs to ``owner``, is visible and has not expired."""
        record = self.store.files.get(file_id)
        if record is None or record.owner != owner or not self.visible(record):
            return None
        if record.expiration_time <= self.clock.now():
            self.store.delete_file(file_id)
            return None
        return record

    def held_bytes(self, owner: str) -> int:
        """Bytes counted against the project's storage cap: uploaded files plus open uploads."""
        now = self.clock.now()
        held = sum(
            f.size_bytes
            for f in list(self.store.files.values())
            if f.owner == owner and f.source == "UPLOADED" and f.expiration_time > now
        )
        return held + sum(
            u.received
            for u in list(self.store.uploads.values())
            if u.owner == owner and u.state == "active"
        )

    def owned_job(self, job_id: str, owner: str) -> JobRecord | None:
        job = self.store.jobs.get(job_id)
        if job is None or job.owner != owner:
            return None
        self.jobs.refresh(job)
        return job

    def owned_upload(self, upload_id: str) -> UploadRecord | None:
        return self.store.uploads.get(upload_id)
