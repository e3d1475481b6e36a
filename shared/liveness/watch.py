"""One execution of one step, as the liveness records see it: take, renew, hand on, finish.

A task builds a :class:`StepWatch` for the subject it moves and calls :meth:`begin` first:
``False`` means another execution is alive (a live lease, or a newer message expected) and
the task steps aside without doing anything. While the step runs, a small daemon thread
renews the lease every third of ``lease_seconds`` (a 2 GB upload, a long collect, the plan).
When the step ends it says what comes next: :meth:`wait` (a countdown retry, due at its
ETA), :meth:`hand_on` (the chain's next step, due now) or :meth:`finish` (nothing).

Leases are advisory: two executions that read the record at the same instant can both
proceed. That race needs two deliveries within milliseconds, and every stage is idempotent
under concurrent duplicates anyway (``tests/chaos/test_duplicate_delivery.py``); the lease
is what keeps a long task's second delivery, or a stale copy of a message, from doing the
work again or forking a second poll loop.

Index writes are best effort: storage is written first and is the truth; a Redis that is
down costs a warning here, and a Redis that lost its data is rebuilt by the next check.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

import redis
from pydantic import ValidationError

from shared.errors import ObjectNotFoundError, RunError
from shared.liveness.index import DeadlineIndex
from shared.liveness.records import (
    MERGE,
    Lease,
    LeaseState,
    Step,
    admits,
    overdue_at,
    subject_shard,
)
from shared.run import layout
from shared.run.layout import lease as lease_key
from shared.run.records import utcnow
from shared.settings import Settings
from shared.storage import Storage

log = logging.getLogger("shardline.liveness")


def new_holder() -> str:
    """A name for one execution: host, process and a random part (two deliveries of one
    message on one worker are two executions)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def new_task_id() -> str:
    """The id of a message the deadline check is about to send (recorded before sending)."""
    return str(uuid.uuid4())


def read_lease(storage: Storage, subject: str) -> Lease | None:
    """The subject's lease record; None if there is none; a ``RunError`` naming the object
    if it cannot be read as one."""
    return read_lease_at(storage, lease_key(subject))


def read_lease_at(storage: Storage, key: str) -> Lease | None:
    try:
        return Lease.model_validate_json(storage.read_bytes(key))
    except ObjectNotFoundError:
        return None
    except ValidationError as exc:
        problem = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"]) or "record"
        raise RunError(f"{storage.uri}/{key}: not a lease record: {where}: "
                       f"{problem['msg']}") from None


def write_lease(storage: Storage, lease: Lease) -> None:
    storage.write_bytes(lease_key(lease.subject), lease.model_dump_json().encode())


def index_lease(index: DeadlineIndex | None, settings: Settings, run_id: str,
                output_uri: str, lease: Lease) -> None:
    """Put the lease's overdue moment in the index (remove it when there is none)."""
    if index is None:
        return
    try:
        index.put(run_id, output_uri, lease.subject,
                  overdue_at(lease, timedelta(seconds=settings.liveness_grace_seconds)),
                  shard=subject_shard(lease.subject) is not None, queued=lease.queued)
    except redis.RedisError as exc:
        log.warning("run %s %s: deadline index not updated: %s", run_id, lease.subject, exc)


def expect(storage: Storage, index: DeadlineIndex | None, settings: Settings, *,
           run_id: str, output_uri: str, subject: str, step: Step, attempt: int,
           ticket: str | None, due: datetime, restarts: int = 0) -> Lease:
    """Record (and index) that ``subject`` waits for the message ``ticket``, sent now
    without a countdown (so it may wait behind a backlog in the queue)."""
    lease = Lease(subject=subject, step=step, attempt=attempt, state="waiting",
                  ticket=ticket, deadline=due, queued=True, restarts=restarts)
    write_lease(storage, lease)
    index_lease(index, settings, run_id, output_uri, lease)
    return lease


def close_subject(storage: Storage, index: DeadlineIndex | None, settings: Settings, *,
                  run_id: str, output_uri: str, subject: str, now: datetime,
                  write: bool = True) -> None:
    """The subject is finished: record it ``done`` and drop it from the index.

    A shard that was its run's last open one expects the merge if nothing does yet (the last
    batch of chains sends the merge and records it): if no merge takes that lease within the
    grace, the deadline check sends one.
    """
    if write:
        write_lease(storage, Lease(subject=subject, step="merge" if subject == MERGE else
                                   "collect", state="done", deadline=now))
    if index is None:
        return
    try:
        if subject_shard(subject) is None:
            index.put(run_id, output_uri, subject, None, shard=False)
            if storage.exists(layout.SUMMARY):  # the merge, or a plan that failed the run
                index.forget_run(run_id)
            return
        last = index.close_shard(run_id, subject)
    except redis.RedisError as exc:
        log.warning("run %s %s: deadline index not updated: %s", run_id, subject, exc)
        return
    if last:
        merge = read_lease(storage, MERGE)
        if merge is None:  # normally the last batch of shard chains expects it already
            expect(storage, index, settings, run_id=run_id, output_uri=output_uri,
                   subject=MERGE, step="merge", attempt=0, ticket=None, due=now)


class StepWatch:
    """The lease of one subject, held by one execution of one step."""

    def __init__(self, storage: Storage, index: DeadlineIndex | None, settings: Settings, *,
                 run_id: str, output_uri: str, subject: str, step: Step, attempt: int,
                 ticket: str | None, holder: str | None = None) -> None:
        self.storage = storage
        self.index = index
        self.settings = settings
        self.run_id = run_id
        self.output_uri = output_uri
        self.subject = subject
        self.step: Step = step
        self.attempt = attempt
        self.ticket = ticket
        self.holder = holder or new_holder()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    @property
    def lease_seconds(self) -> float:
        return self.settings.lease_seconds

    def begin(self, now: datetime | None = None) -> bool:
        """Take the lease; False (and nothing written) when another execution is alive."""
        moment = now or utcnow()
        current = read_lease(self.storage, self.subject)
        grace = timedelta(seconds=self.settings.liveness_grace_seconds)
        if not admits(current, ticket=self.ticket, holder=self.holder, now=moment, grace=grace):
            log.info("run %s %s: %s steps aside: %s", self.run_id, self.subject, self.step,
                     _describe(current))
            return False
        self._write("running", self.step, self.attempt, self.ticket,
                    moment + timedelta(seconds=self.lease_seconds))
        self._held = True
        return True

    def renew(self, now: datetime | None = None) -> bool:
        """One heartbeat: push the lease's expiry on; False if another execution took it."""
        with self._lock:
            if not self._held:
                return False
            current = read_lease(self.storage, self.subject)
            if current is not None and current.holder != self.holder:
                log.warning("run %s %s: lease taken over by %s; this %s no longer renews it",
                            self.run_id, self.subject, current.holder, self.step)
                self._held = False
                return False
            moment = now or utcnow()
            self._write_unlocked("running", self.step, self.attempt, self.ticket,
                                 moment + timedelta(seconds=self.lease_seconds))
            return True

    def start_heartbeat(self) -> None:
        """Renew every third of the lease in a daemon thread until :meth:`stop_heartbeat`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"shardline-lease-{self.subject}")
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(10.0, self.lease_seconds))
            self._thread = None

    def _beat(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    return
            except Exception:  # a storage blip must not kill the heartbeat for good
                log.exception("run %s %s: lease renewal failed", self.run_id, self.subject)

    def wait(self, ticket: str, countdown: float, now: datetime | None = None) -> None:
        """The step scheduled itself again (countdown retry carrying ``ticket``)."""
        moment = now or utcnow()
        self._release("waiting", self.step, self.attempt, ticket,
                      moment + timedelta(seconds=countdown), queued=False)

    def hand_on(self, step: Step, attempt: int, ticket: str | None,
                now: datetime | None = None) -> None:
        """The next step's message (``ticket``, None if unknown) is sent now."""
        self._release("waiting", step, attempt, ticket, now or utcnow(), queued=True)

    def finish(self, now: datetime | None = None) -> None:
        """Nothing more to wait for (see :func:`close_subject`)."""
        moment = now or utcnow()
        if self._release("done", self.step, self.attempt, None, moment):
            close_subject(self.storage, self.index, self.settings, run_id=self.run_id,
                          output_uri=self.output_uri, subject=self.subject, now=moment,
                          write=False)

    def abandon(self) -> None:
        """Stop renewing without a verdict (the task failed): the lease lapses on its own,
        and the deadline check restarts the subject."""
        self.stop_heartbeat()
        with self._lock:
            self._held = False

    def _release(self, state: LeaseState, step: Step, attempt: int, ticket: str | None,
                 deadline: datetime, *, queued: bool = False) -> bool:
        self.stop_heartbeat()
        with self._lock:
            if not self._held:
                return False  # taken over meanwhile: the new holder's word stands
            self._write_unlocked(state, step, attempt, ticket, deadline, queued=queued)
            self._held = False
            return True

    def _write(self, state: LeaseState, step: Step, attempt: int, ticket: str | None,
               deadline: datetime) -> None:
        with self._lock:
            self._write_unlocked(state, step, attempt, ticket, deadline)

    def _write_unlocked(self, state: LeaseState, step: Step, attempt: int,
                        ticket: str | None, deadline: datetime, *, queued: bool = False) -> None:
        lease = Lease(subject=self.subject, step=step, attempt=attempt, state=state,
                      ticket=ticket, holder=self.holder if state == "running" else None,
                      deadline=deadline, queued=queued)
        write_lease(self.storage, lease)
        index_lease(self.index, self.settings, self.run_id, self.output_uri, lease)


def _describe(lease: Lease | None) -> str:
    if lease is None:
        return "no lease"
    if lease.state == "running":
        return f"{lease.step} held by {lease.holder} until {lease.deadline.isoformat()}"
    return f"waiting for {lease.step} message {lease.ticket} due {lease.deadline.isoformat()}"
