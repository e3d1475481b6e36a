"""The states a run's records speak of: a part's batch job, and how a part ended without one.

Every provider maps its own job states onto :class:`BatchState` (the values are the Gemini
Batch API's wire names, which the records have always stored), so the stages and the records
share one vocabulary whatever the provider.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class BatchState(StrEnum):
    """What Shardline knows of one batch job."""

    UNSPECIFIED = "BATCH_STATE_UNSPECIFIED"
    PENDING = "BATCH_STATE_PENDING"
    RUNNING = "BATCH_STATE_RUNNING"
    SUCCEEDED = "BATCH_STATE_SUCCEEDED"
    FAILED = "BATCH_STATE_FAILED"
    CANCELLED = "BATCH_STATE_CANCELLED"
    EXPIRED = "BATCH_STATE_EXPIRED"
    #: The provider no longer knows the job (404): treated like a failed job.
    VANISHED = "VANISHED"

    @property
    def terminal(self) -> bool:
        """The job will not change any more (a SUCCEEDED job may still lack its output)."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        BatchState.SUCCEEDED,
        BatchState.FAILED,
        BatchState.CANCELLED,
        BatchState.EXPIRED,
        BatchState.VANISHED,
    }
)


class PartFate(StrEnum):
    """How a part ended when no job of it produced an outcome."""

    #: The run was cancelled before the part's job was created.
    NOT_SUBMITTED = "NOT_SUBMITTED"
    #: A step of the part kept failing; its lines were given up as errors.
    ABANDONED = "ABANDONED"


#: The state of a shard once final, and of a run once merged.
ShardState = Literal["succeeded", "partial", "failed", "cancelled"]
RunState = Literal["succeeded", "partial", "failed", "cancelled"]
