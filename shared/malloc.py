"""glibc malloc settings for the two long-running daemons.

Why: glibc raises its mmap threshold after each large free (up to 32 MB), so later large
buffers (a batch, a hash read buffer) come from the heap and stay resident after they are
freed; and every thread that allocates gets an arena of its own. A fixed threshold and two
arenas keep a daemon's resident memory at what it really uses.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_malloc() -> None:
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)  # fixing it also stops the dynamic raise
    libc.mallopt(M_ARENA_MAX, 2)
