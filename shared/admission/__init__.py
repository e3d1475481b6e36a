"""Admission control: how many batch jobs, enqueued tokens and file bytes each API key holds.

See :mod:`shared.admission.ledger` for the Redis side and :mod:`shared.admission.rules` for
the decisions.
"""

from shared.admission.ledger import (
    FILE_TTL_SECONDS,
    JOB_TTL_SECONDS,
    Admission,
    Admit,
    Holding,
    KeySnapshot,
    Reconciled,
)
from shared.admission.rules import KeyLoad, Limits, fits, job_verdict, pick_key

__all__ = [
    "FILE_TTL_SECONDS",
    "JOB_TTL_SECONDS",
    "Admission",
    "Admit",
    "Holding",
    "KeyLoad",
    "KeySnapshot",
    "Limits",
    "Reconciled",
    "fits",
    "job_verdict",
    "pick_key",
]
