"""Keeps large, short-lived buffers out of the reconciler's resident memory.

glibc serves an allocation above its mmap threshold (128 KiB) with mmap and unmaps it on
free, but when such a block is freed it raises the threshold to that block's size (up to
32 MiB). From then on, buffers of that size (a large API response, a checkpoint read)
come from the heap of whichever thread uses them and stay resident, per worker thread,
for the life of the process. Setting the threshold explicitly turns that adjustment off.
"""

from __future__ import annotations

import ctypes
from typing import Final

M_MMAP_THRESHOLD: Final = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES: Final = 128 * 1024  # glibc's default, kept fixed


def pin_mmap_threshold() -> bool:
    """True if glibc took the fixed threshold; False where there is no glibc `mallopt`
    (another C library), which is harmless: only the memory figure differs."""
    try:
        # The process's own symbols, which include its C library's.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
