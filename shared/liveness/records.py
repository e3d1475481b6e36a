"""What a run records about its own liveness: one small lease record per subject.

A *subject* is a unit of a run that one chain of messages moves at a time: the plan (and
the batches of shard chains it sends), each shard (its upload → create → poll → collect
chain, attempt after attempt) and the merge.
Its lease record, in the run's storage next to the other records, says what the subject is
waiting for and by when:

- ``running``: a task holds it; ``deadline`` is the lease's expiry, pushed forward by the
  task's heartbeat while it works (see :mod:`shared.liveness.watch`). A lapsed lease means
  the task died (SIGKILL, OOM, lost node).
- ``waiting``: a message is on its way; ``ticket`` names it (:func:`message_ticket`) and
  ``deadline`` is when it is due (now for a chain's next step, now + countdown for a poll).
  A due time long past means the message was lost (held by a dead worker, or dropped
  between kombu's BRPOP and its unacked record).
- ``done``: nothing more to wait for (the shard is final, the merge wrote the summary).

Storage stays the source of truth; the Redis index (:mod:`shared.liveness.index`) only
makes "which subjects are overdue" cheap to ask, and is rebuilt from these records.

The decisions are pure functions of a record and the clock: :func:`admits` (may this
execution run the step, or is another one alive?) and :func:`overdue_at` (when the deadline
check should act).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.run.records import utcnow

LeaseState = Literal["running", "waiting", "done"]
#: ``send``: a batch of shard chains being sent (subject ``plan``, ``attempt`` = its first shard).
Step = Literal["plan", "send", "upload", "create", "poll", "collect", "merge"]

PLAN = "plan"
MERGE = "merge"
#: A restarted subject that is overdue again waits longer each time (grace x 2**n, n <= 4):
#: a backlog of queued work is not answered with ever more duplicates.
MAX_BACKOFF_DOUBLINGS = 4
#: A queued message is presumed lost, backlog or not, this many graces after it was due.
QUEUED_PATIENCE = 16


def message_ticket(task_id: str, retries: int = 0) -> str:
    """How a lease names one message: its Celery task id and retry count. A countdown retry
    keeps the task id and counts one more, so each retry is a message of its own; the same
    message delivered twice has the same ticket (a live lease tells those two apart)."""
    return f"{task_id}:{retries}"


def shard_subject(shard: int) -> str:
    return f"s{shard:05d}"


def subject_shard(subject: str) -> int | None:
    """The shard number of a shard subject; None for the plan and the merge."""
    return int(subject[1:]) if subject.startswith("s") else None


class Lease(BaseModel):
    """``_shardline/leases/<subject>.json``: what the subject waits for, and by when."""

    model_config = ConfigDict(extra="ignore")

    subject: str
    step: Step
    attempt: int = 0
    state: LeaseState
    ticket: str | None = None
    holder: str | None = None
    deadline: datetime
    #: Waiting for a message sent without a countdown: it may sit behind a backlog in the
    #: queue, so it counts as lost only once the queue is empty (or very late).
    queued: bool = False
    restarts: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


def admits(lease: Lease | None, *, ticket: str | None, holder: str, now: datetime,
           grace: timedelta) -> bool:
    """May the execution ``holder`` (carrying message ``ticket``) run the subject's step now?

    No when another execution holds a live lease (a long task delivered a second time after
    the visibility timeout), or when the record waits for another message that is not yet
    overdue (an old copy of a message, superseded by a retry or a restart). Yes otherwise:
    nothing recorded, the expected message, or a holder or message that is evidently gone.
    """
    if lease is None or lease.state == "done":
        return True
    if lease.state == "running":
        return lease.holder == holder or lease.deadline <= now
    if lease.ticket is None or lease.ticket == ticket:
        return True
    return now >= lease.deadline + grace


def overdue_at(lease: Lease, grace: timedelta) -> datetime | None:
    """When the deadline check should restart the subject; None when it never should."""
    if lease.state == "done":
        return None
    if lease.state == "running":
        return lease.deadline
    doublings: int = 2 ** min(lease.restarts, MAX_BACKOFF_DOUBLINGS)
    return lease.deadline + grace * doublings
