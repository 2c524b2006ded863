"""Giving memory the collecting process freed back to the system.

glibc's malloc keeps freed memory of its heap mapped (it only returns the top of the
heap, and a live block above pins everything below it). The pods step of a snapshot
at 10k Services holds every container's runtime env, ~26k variables each, until the
Service-link variables are taken out: 52 MB of env tuples (208 KiB each, in the heap),
freed at once, which stayed in the process's RSS for the rest of the snapshot (71 MB
of free heap under the nft table, the peak of `podpath snapshot` in nftables mode).
`malloc_trim` hands the free pages back wherever they lie in the heap.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


def release_freed_heap() -> None:
    """Return the heap's free pages to the system (a no-op without glibc's malloc_trim)."""
    trim = _malloc_trim()
    if trim is not None:
        # Its argument is the free space to keep at the top of the heap: none.
        trim(0)
