"""OpenMP's wait policy: idle worker threads sleep instead of spinning, where that helps.

torch's CPU kernels run on OpenMP thread teams. With the runtime's default policy a worker
that finishes early spins for a while waiting for the next parallel region. On a quiet
machine that saves a wake-up per region; on a shared one the spinning burns CPU that other
work (another visitor's run, another process) needs. Measured on this project's 2-core
machine, a 4-cell sweep of 16 narrow layers at 4096 rows:

    policy     quiet: wall / CPU     beside one busy process: wall / CPU
    default    4.2 s / 5.8 s         6.1 s / 7.2 s
    PASSIVE    5.0 s / 5.1 s         4.1 s / 4.1 s

and on a quiet machine PASSIVE made the forum-size run 47 -> 54 ms and a 10 x 10 sweep
4.7 -> 6.2 s (two runs of explorer.bench); on a machine at load 3.5 an audit's 10 x 10 CLI
sweep took 149-167 s with the default and 18-21 s with PASSIVE. So:

- the app, a shared server whose sweep budget counts CPU seconds, always waits passively;
- the CLI and the library wait passively when the machine is already busy as they start
  (1-minute load average at least half the usable CPUs), and keep the runtime's faster
  default on a quiet machine.

A value of OMP_WAIT_POLICY that is already set always wins. It is read once, when torch
loads: only a value in force before the first ``import explorer`` (or ``import torch``)
counts. The policy changes timing only, never a number; the report records it.
"""

from __future__ import annotations

import os
import sys

SERVER_WAIT_POLICY = "PASSIVE"
_state: dict[str, str] = {}


def _in_streamlit_server() -> bool:
    runtime = sys.modules.get("streamlit.runtime")
    return runtime is not None and bool(runtime.exists())


# A machine is busy when its 1-minute load is at least this share of the usable CPUs (on
# this project's 2 cores: one other busy process).
BUSY_LOAD_PER_CPU = 0.5


def _busy_load() -> tuple[float, int] | None:
    """(load average, usable CPUs) when the machine is busy, else None."""
    try:
        load = os.getloadavg()[0]
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    except OSError:  # no load average on this platform
        return None
    return (load, cpus) if load >= BUSY_LOAD_PER_CPU * cpus else None


def apply_default_wait_policy() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE, unless it is set, in a Streamlit server or on a busy
    machine, when torch has not loaded yet; and remember what the OpenMP runtime will read
    (or that it is unknown). Called by ``explorer/__init__`` before it imports torch."""
    if _state:
        return
    if "torch" in sys.modules:
        _state["policy"] = "unknown: torch was loaded before explorer"
        return
    chosen = os.environ.get("OMP_WAIT_POLICY", "").strip()
    if chosen:
        _state["policy"] = chosen
    elif _in_streamlit_server():
        os.environ["OMP_WAIT_POLICY"] = SERVER_WAIT_POLICY
        _state["policy"] = SERVER_WAIT_POLICY
    elif (busy := _busy_load()) is not None:
        os.environ["OMP_WAIT_POLICY"] = SERVER_WAIT_POLICY
        _state["policy"] = (f"{SERVER_WAIT_POLICY} (machine busy at start: load "
                            f"{busy[0]:.2f} on {busy[1]} CPUs)")
    else:
        _state["policy"] = "runtime default"


def wait_policy() -> str:
    """The wait policy torch's OpenMP runtime read when it loaded, as far as known."""
    return _state.get("policy", "unknown: explorer.openmp was not applied before torch")
