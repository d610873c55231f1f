"""Keep freed tensor memory in the process for reuse (glibc): half the time of a big run.

A comparison allocates and frees tens of float64 temporaries the size of one layer's
activations per tap. glibc serves every block above its mmap threshold (at most 32 MB,
adjusted as the program runs) with a fresh mmap and returns it with munmap on free, so each
temporary costs page faults and zeroing of its pages: at 4096 rows x 1024 wide that was
about half the run (profile in README, "Performance"). Raising the mmap and trim thresholds
makes freed blocks stay in the heap and be reused by the next temporary.

Nothing numerical changes. The cost is that freed blocks stay in the process after a run;
``release()`` (glibc's malloc_trim) hands every free page back to the system, and the app
calls it after each heavy run (explorer.serving): measured at 4000 rows x 512 wide, RSS
after the run went from 727 MB to 429 MB (the process's 347 MB of libraries and caches
plus the allocator's bookkeeping) in 60-90 ms. Set EXPLORER_KEEP_MALLOC=1 to leave glibc's
thresholds alone (twice slower for large runs; memory is held the same without a trim).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

# mallopt parameter numbers from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# One heap for every thread: with glibc's default (8 per core) each thread that allocates
# (the OpenMP workers, the app's script threads) keeps its own free blocks, and a run's
# peak resident size varied by +-30% from one run to the next (measured 238-362 MB for the
# same config); with one arena it repeats within 2% and the estimates in limits hold.
ARENAS = 1
THRESHOLD_BYTES = 1 << 30  # blocks up to 1 GB come from (and go back to) the heap
_TRIM_NOW_BYTES = 256 << 10  # release(): keep at most this much free at a heap's top

_lock = threading.Lock()
_state: dict[str, bool | None] = {"tuned": None}


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release() -> bool:
    """Return the free memory of the calling thread's heap, and every arena's free pages,
    to the system; True when glibc gave any back.

    malloc_trim alone is not enough in a server. It frees whole free pages inside every
    arena and the top of the main arena, but not the top chunk of a thread's arena, and a
    run in a script thread frees its temporaries into exactly that top chunk. glibc
    shrinks a thread arena's top only inside free(), and only past M_TRIM_THRESHOLD, which
    tune() raised to 1 GB: eight heavy runs through the app left RSS at 690 MB after a
    peak of 945 MB (start 530). So the threshold goes down for one free in this thread,
    whose arena the run used, then back up.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:  # not glibc: nothing to do
        return False
    released = bool(trim(0))
    with _lock:
        if _state["tuned"]:
            libc.malloc.restype = ctypes.c_void_p
            libc.free.argtypes = [ctypes.c_void_p]
            libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_NOW_BYTES)
            try:
                # Above 64 KB (FASTBIN_CONSOLIDATION_THRESHOLD): its free() merges into the
                # top chunk and makes glibc trim this arena's heap.
                block = libc.malloc(_TRIM_NOW_BYTES)
                libc.free(block)
            finally:
                libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES)
    return released


def tune() -> bool:
    """Apply the thresholds once per process; True when glibc accepted them."""
    with _lock:
        if _state["tuned"] is not None:
            return bool(_state["tuned"])
        _state["tuned"] = False
        if os.environ.get("EXPLORER_KEEP_MALLOC", "").strip() in ("1", "true", "yes"):
            return False
        libc = _libc()
        mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        if mallopt is None:  # not glibc (macOS, Windows, musl without mallopt): no-op
            return False
        ok = bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(
            mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES)) and bool(
            mallopt(_M_ARENA_MAX, ARENAS))
        _state["tuned"] = ok
        return ok
