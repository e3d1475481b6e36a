"""Liveness without the visibility timeout: lease records, the deadline index, the check.

See :mod:`shared.liveness.records` for the model, :mod:`shared.liveness.watch` for what a
task does, :mod:`shared.liveness.check` for what finds and restarts the dead.
"""

from shared.liveness.check import CheckReport, Restarter, check_deadlines, rebuild_index
from shared.liveness.index import DeadlineIndex
from shared.liveness.records import (
    MERGE,
    PLAN,
    Lease,
    admits,
    message_ticket,
    overdue_at,
    shard_subject,
)
from shared.liveness.watch import StepWatch, close_subject, expect, new_task_id, read_lease

__all__ = [
    "MERGE",
    "PLAN",
    "CheckReport",
    "DeadlineIndex",
    "Lease",
    "Restarter",
    "StepWatch",
    "admits",
    "check_deadlines",
    "close_subject",
    "expect",
    "message_ticket",
    "new_task_id",
    "overdue_at",
    "read_lease",
    "rebuild_index",
    "shard_subject",
]
