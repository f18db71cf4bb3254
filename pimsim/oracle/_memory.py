"""Keep freed memory in the process, so that large oracle tensors are not page-faulted afresh.

glibc's ``malloc`` serves blocks above ``M_MMAP_THRESHOLD`` (128 KiB to 32 MiB, adjusted as the
process runs) with a fresh ``mmap`` and returns them to the kernel on ``free``; the next forward
pass then touches new pages and pays one page fault per 4 KiB. A PIM forward pass allocates
partial-sum tensors of tens or hundreds of MiB per layer, so on CPU a large share of its time can
go to page faults (on a 2-core VM, bit-serial 8-bit on a 512x512 layer at batch 256 took 210 ms
per call, with about 180 ms of kernel CPU time). Raising the mmap and trim thresholds makes such
blocks come from the heap and stay there for reuse. The price: the process keeps its peak memory
until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3


def tune_cpu_allocator(limit_bytes: int = 1 << 30) -> bool:
    """Make glibc keep freed blocks of up to ``limit_bytes`` for reuse (``mallopt`` of the mmap
    and trim thresholds) instead of unmapping them. Returns True when applied; False where the C
    library is not glibc (macOS, Windows, musl), leaving everything as it was.

    It changes the whole process: call it from programs that run the oracle (the ``pimsim
    accuracy`` and ``pimsim train`` commands and the experiments do), not from libraries."""
    if not sys.platform.startswith("linux") or not 0 < limit_bytes < 2**31:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit_bytes)) and bool(
        mallopt(M_TRIM_THRESHOLD, limit_bytes)
    )
