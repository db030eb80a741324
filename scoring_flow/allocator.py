"""Tuning of the C allocator for a process that allocates and frees megabytes per micro-batch.

glibc's malloc hands freed memory at the top of its heaps back to the OS (trim) once more than
`M_TRIM_THRESHOLD` is free, and serves blocks above `M_MMAP_THRESHOLD` with their own mmap. A
flow frees a whole batch's records, bodies and encoded output every few milliseconds, so by
default the next batch pays the page faults (and the kernel's zeroing) for the same memory
again: a quarter to a third of the flow's CPU (see docs/scoring-flow.md). Raising both
thresholds keeps the memory for reuse; the peak RSS, bounded by batchSize x concurrency, does
not change.

Best effort: on a C library without glibc's `mallopt` (musl, macOS) nothing happens.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MAX_MMAP_THRESHOLD = 32 << 20
"""glibc's upper bound for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2)."""


def keep_freed_memory(trim_threshold: int) -> bool:
    """Keep up to `trim_threshold` bytes of freed memory and mmap only blocks above 32 MiB.
    True when the C library took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    took_trim = mallopt(M_TRIM_THRESHOLD, trim_threshold)
    took_mmap = mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)
    return bool(took_trim and took_mmap)
