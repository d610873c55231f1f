"""OpenMP's wait policy, chosen before torch loads: idle worker threads sleep, not spin.

torch's CPU kernels run on OpenMP thread teams. With the runtime's default policy a worker
that finishes early spins for a while waiting for the next parallel region. On a quiet
machine that saves a wake-up per region; on a shared one the spinning burns CPU that other
work (another visitor's run, another process) needs. Measured on this project's 2-core
machine, a 4-cell sweep of 16 narrow layers at 4096 rows:

    policy     quiet: wall / CPU     beside one busy process: wall / CPU
    default    4.2 s / 5.8 s         6.1 s / 7.2 s
    PASSIVE    5.0 s / 5.1 s         4.1 s / 4.1 s

The app is a shared server and its sweep budget counts CPU seconds, so PASSIVE is the
default here. Set OMP_WAIT_POLICY yourself (ACTIVE, or empty for the runtime's default)
to choose otherwise; it is read once, when torch loads, so only a value set before the
first ``import explorer`` (or ``import torch``) counts.
"""

from __future__ import annotations

import os
import sys

DEFAULT_WAIT_POLICY = "PASSIVE"
_state: dict[str, str] = {}


def apply_default_wait_policy() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless it is set, when torch has not loaded yet; and
    remember what the OpenMP runtime will read (or that it is unknown)."""
    if _state:
        return
    if "torch" in sys.modules:
        _state["policy"] = "unknown: torch was loaded before explorer"
        return
    os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_WAIT_POLICY)
    _state["policy"] = os.environ["OMP_WAIT_POLICY"] or "runtime default"


def wait_policy() -> str:
    """The wait policy torch's OpenMP runtime read when it loaded, as far as known."""
    return _state.get("policy", "unknown: explorer.openmp was not applied before torch")
