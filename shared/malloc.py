"""Keep glibc from holding on to freed large buffers: pin its mmap threshold.

glibc serves an allocation of 128 KiB or more with its own ``mmap`` and gives it back to the
system when freed, but every such free also *raises* the threshold to that size (up to
32 MiB), so from then on 1-8 MiB buffers (upload chunks, 1 MiB read and write buffers,
httpx bodies) come from the heap, where freed space stays counted in the process's RSS
and fragments. A worker that streams many files then creeps up: an embedded 1 GB run at one
thread went from ~86 MiB after the plan to 108 MiB, and a 4 GB run to 128 MiB
(benchmarks/RESULTS.md, "End to end after the in-order collect"). Pinning the threshold
(``mallopt(M_MMAP_THRESHOLD, 128 KiB)``, which also turns the adjustment off) keeps large
buffers in ``mmap``: the same 1 GB run stays at ~96 MiB after the plan.

Only on glibc, and only when the operator has not chosen a threshold already
(``MALLOC_MMAP_THRESHOLD_``); anywhere else it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

#: ``M_MMAP_THRESHOLD`` of glibc's ``<malloc.h>``.
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024


def pin_mmap_threshold(threshold: int = THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold for this process; True when it was set."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
