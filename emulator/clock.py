"""The emulated clock: ``time_scale`` emulated seconds pass per real second, plus jumps.

Every deadline in the emulator (job phases, the 48 h expiry of files and jobs) is read on
this clock, so a test can ``advance`` through two days in one call, and a demo sees a
"few minutes" job finish in a couple of real seconds.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime


class EmulatedClock:
    """Emulated UNIX time; starts at ``start`` (default: the real time now)."""

    def __init__(self, time_scale: float, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._scale = time_scale
        self._anchor_emulated = time.time() if start is None else start
        self._anchor_real = time.monotonic()

    def now(self) -> float:
        with self._lock:
            return self._anchor_emulated + (time.monotonic() - self._anchor_real) * self._scale

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` ahead; returns the new emulated time."""
        with self._lock:
            self._anchor_emulated += seconds
        return self.now()


def rfc3339(timestamp: float) -> str:
    """Google's timestamp form: UTC, nanosecond precision, ``Z`` suffix."""
    whole = math.floor(timestamp)
    nanos = round((timestamp - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, 0
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"
