"""The batch job lifecycle on the emulated clock, and the worker threads that do the work.

A job is PENDING for ``pending_seconds``, then RUNNING for ``running_seconds`` (emulated);
it SUCCEEDS at the end of that window or when its work is done, whichever is later. Faults
may make it FAIL at the end of the window, or stay PENDING until the 48 h expiry. Any job
still live at ``create_time + job_expiry_seconds`` ends EXPIRED with no results.

State is derived lazily (:meth:`JobManager.refresh`), on every read and by a periodic sweep,
so ``clock.advance`` takes effect on the next call.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

from emulator.clock import EmulatedClock
from emulator.config import EmulatorConfig
from emulator.faults import FaultEngine
from emulator.processing import JobWork
from emulator.records import JobRecord
from emulator.store import Store

_EXPIRED = {"code": 4, "message": "The batch expired: it was pending or running for over 48 h."}
_CANCELLED = {"code": 1, "message": "The batch was cancelled."}


class JobManager:
    """Starts, stops and advances jobs; owns the worker thread pool."""

    def __init__(
        self, store: Store, clock: EmulatedClock, config: EmulatorConfig, faults: FaultEngine
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.faults = faults
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(config.worker_threads, thread_name_prefix="emu-job")
        self._work: dict[str, JobWork] = {}

    # ---- work ------------------------------------------------------------------------
    def start(self, job: JobRecord) -> None:
        """Queue the job's work on the worker pool."""
        work = JobWork(
            job,
            self.store,
            seed=self.faults.config.seed,
            keep_order=self.config.keep_order,
            buckets=self.config.scramble_buckets,
            embedding_dimensions=self.config.embedding_dimensions,
            now=self.clock.now,
            file_ttl_seconds=self.config.file_ttl_seconds,
        )
        with self._lock:
            self._work[job.id] = work
        self._executor.submit(self._run, work)

    def _run(self, work: JobWork) -> None:
        try:
            if not work.cancel.is_set():
                work.run()
        finally:
            with self._lock:
                if self._work.get(work.job.id) is work:
                    del self._work[work.job.id]

    def stop_work(self, job_id: str) -> None:
        with self._lock:
            work = self._work.get(job_id)
        if work is not None:
            work.cancel.set()

    def resume(self) -> None:
        """After a restart: queue again the work of every live job that had not finished."""
        for job in list(self.store.jobs.values()):
            if job.live and not job.work_done:
                self.start(job)

    def shutdown(self) -> None:
        with self._lock:
            for work in self._work.values():
                work.cancel.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ---- lifecycle -------------------------------------------------------------------
    def _finish_time(self, job: JobRecord) -> float:
        if job.effects.expire:
            return math.inf
        if job.effects.fail is not None:
            return job.running_end
        if job.work_done and job.work_done_at is not None:
            return max(job.running_end, job.work_done_at)
        return math.inf

    def refresh(self, job: JobRecord) -> None:
        """Move a live job to the state its times and progress call for."""
        if not job.live:
            return
        now = self.clock.now()
        deadline = job.create_time + self.config.job_expiry_seconds
        finish = self._finish_time(job)
        if finish > deadline and now >= deadline:
            self._end(job, "EXPIRED", deadline, dict(_EXPIRED))
        elif now >= finish:
            if job.effects.fail is not None:
                self._end(job, "FAILED", finish, job.effects.fail.model_dump())
            elif job.error is not None:
                self._end(job, "FAILED", finish, job.error)
            else:
                self._end(job, "SUCCEEDED", finish, None)
        elif now >= job.running_start and not job.effects.expire and job.state == "PENDING":
            job.state = "RUNNING"
            job.update_time = job.running_start
            self.store.save_job(job)

    def _end(self, job: JobRecord, state: str, at: float, error: dict[str, object] | None) -> None:
        job.state = state  # type: ignore[assignment]
        job.end_time = at
        job.update_time = at
        job.error = error
        if state != "SUCCEEDED":
            self.stop_work(job.id)
            if job.output_file is not None:
                # No results for a job that did not succeed: its work may have written the
                # output file already (the work runs ahead of the visible state).
                self.store.delete_file(job.output_file)
                job.output_file = None
        self.store.save_job(job)

    def cancel(self, job: JobRecord) -> None:
        """Stop a live job: CANCELLED, no results. A finished job is left as it is."""
        self.refresh(job)
        if job.live:
            self._end(job, "CANCELLED", self.clock.now(), dict(_CANCELLED))

    def output_visible(self, job: JobRecord) -> bool:
        """False while a SUCCEEDED job still hides its output (seen live, section 10.1)."""
        if job.state != "SUCCEEDED" or job.end_time is None:
            return False
        return self.clock.now() >= job.end_time + job.effects.late_output_seconds

    def visible_counts(self, job: JobRecord) -> tuple[int, int, int]:
        """(successful, failed, pending) as ``batchStats`` shows them now."""
        total = job.request_count
        if job.state == "PENDING":
            return 0, 0, total
        if job.state == "SUCCEEDED":
            return job.processed - job.failed, job.failed, max(0, total - job.processed)
        at = min(self.clock.now(), job.end_time if job.end_time is not None else math.inf)
        if job.running_seconds > 0:
            fraction = min(1.0, max(0.0, (at - job.running_start) / job.running_seconds))
        else:
            fraction = 1.0
        shown = min(job.processed, math.floor(fraction * total))
        failed = job.failed * shown // job.processed if job.processed else 0
        return shown - failed, failed, total - shown

    def live_jobs(self, owner: str) -> list[JobRecord]:
        jobs = [j for j in list(self.store.jobs.values()) if j.owner == owner]
        for job in jobs:
            self.refresh(job)
        return [j for j in jobs if j.live]
