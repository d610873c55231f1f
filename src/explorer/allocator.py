"""Keep freed tensor memory in the process for reuse (glibc): half the time of a big run.

A comparison allocates and frees tens of float64 temporaries the size of one layer's
activations per tap. glibc serves every block above its mmap threshold (at most 32 MB,
adjusted as the program runs) with a fresh mmap and returns it with munmap on free, so each
temporary costs page faults and zeroing of its pages: at 4096 rows x 1024 wide that was
about half the run (profile in README, "Performance"). Raising the mmap and trim thresholds
makes freed blocks stay in the heap and be reused by the next temporary.

Nothing numerical changes. The cost is that the process keeps up to its peak memory after a
run instead of returning it to the system at once; the peak itself is unchanged. Set
EXPLORER_KEEP_MALLOC=1 to leave glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

# mallopt parameter numbers from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30  # blocks up to 1 GB come from (and go back to) the heap

_lock = threading.Lock()
_state: dict[str, bool | None] = {"tuned": None}


def tune() -> bool:
    """Apply the thresholds once per process; True when glibc accepted them."""
    with _lock:
        if _state["tuned"] is not None:
            return bool(_state["tuned"])
        _state["tuned"] = False
        if os.environ.get("EXPLORER_KEEP_MALLOC", "").strip() in ("1", "true", "yes"):
            return False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        except OSError:
            mallopt = None
        if mallopt is None:  # not glibc (macOS, Windows, musl without mallopt): no-op
            return False
        ok = bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(
            mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES))
        _state["tuned"] = ok
        return ok
