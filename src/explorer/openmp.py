"""OpenMP's wait policy in the app server: idle worker threads sleep instead of spinning.

torch's CPU kernels run on OpenMP thread teams. With the runtime's default policy a worker
that finishes early spins for a while waiting for the next parallel region. On a quiet
machine that saves a wake-up per region; on a shared one the spinning burns CPU that other
work (another visitor's run, another process) needs. Measured on this project's 2-core
machine, a 4-cell sweep of 16 narrow layers at 4096 rows:

    policy     quiet: wall / CPU     beside one busy process: wall / CPU
    default    4.2 s / 5.8 s         6.1 s / 7.2 s
    PASSIVE    5.0 s / 5.1 s         4.1 s / 4.1 s

and on a quiet machine PASSIVE made the forum-size run 47 -> 54 ms and a 10 x 10 sweep
4.7 -> 6.2 s (two runs of explorer.bench). So the app, a shared server whose sweep budget
counts CPU seconds, waits passively; the CLI and the library keep the runtime's default
(one user, usually a quiet machine; set OMP_WAIT_POLICY=PASSIVE for a CLI sweep on a busy
one). A value of OMP_WAIT_POLICY that is already set always wins. It is read once, when
torch loads: only a value in force before the first ``import explorer`` (or ``import
torch``) counts.
"""

from __future__ import annotations

import os
import sys

SERVER_WAIT_POLICY = "PASSIVE"
_state: dict[str, str] = {}


def _in_streamlit_server() -> bool:
    runtime = sys.modules.get("streamlit.runtime")
    return runtime is not None and bool(runtime.exists())


def apply_default_wait_policy() -> None:
    """In a Streamlit server, set OMP_WAIT_POLICY=PASSIVE unless it is set, when torch has
    not loaded yet; and remember what the OpenMP runtime will read (or that it is unknown).
    Called by ``explorer/__init__`` before it imports torch."""
    if _state:
        return
    if "torch" in sys.modules:
        _state["policy"] = "unknown: torch was loaded before explorer"
        return
    if _in_streamlit_server():
        os.environ.setdefault("OMP_WAIT_POLICY", SERVER_WAIT_POLICY)
    _state["policy"] = os.environ.get("OMP_WAIT_POLICY", "").strip() or "runtime default"


def wait_policy() -> str:
    """The wait policy torch's OpenMP runtime read when it loaded, as far as known."""
    return _state.get("policy", "unknown: explorer.openmp was not applied before torch")
