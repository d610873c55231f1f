"""Runs cached by what decides their numbers: the config and the thread count in effect.

Changing a chart option reruns the page but not the networks; changing a setting computes
one new report and keeps the last few, so flipping back is instant.
"""

from __future__ import annotations

import streamlit as st

from explorer import tapstats
from explorer.compare import run
from explorer.config import ExperimentConfig
from explorer.precision import threads_in_effect
from explorer.report import Report

MAX_CACHED_RUNS = 64


@st.cache_data(max_entries=MAX_CACHED_RUNS, show_spinner="Running both networks...")
def _cached_run(config: ExperimentConfig, threads: int) -> Report:
    # ``threads`` is part of the key only: threads=0 runs with the process default, so the
    # key says which count the numbers came from (the CPU ISA is fixed per process).
    return run(config)


# Seconds the server waits after its first run before loading the numba kernels in the
# background (the first page renders meanwhile; until they load, runs use the torch
# engine, which gives the same numbers).
KERNEL_LOAD_DELAY = 3.0


def cached_run(config: ExperimentConfig) -> Report:
    tapstats.start_background_load(delay=KERNEL_LOAD_DELAY)  # once per process
    return _cached_run(config, threads_in_effect(config.threads))


def run_or_explain(config: ExperimentConfig) -> Report | None:
    """The report, or None after showing why the run could not be made (never a traceback)."""
    from explorer.ui.state import safe_text

    try:
        return cached_run(config)
    except (ValueError, RuntimeError, MemoryError) as err:
        st.error(f"This run could not be made: {safe_text(err, limit=600)} The settings in "
                 "the sidebar are unchanged; adjust them and the page recomputes.")
        return None
