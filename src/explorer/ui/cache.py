"""Runs cached by what decides their numbers: the config and the thread count in effect.

Changing a chart option reruns the page but not the networks; changing a setting computes
one new report and keeps the last few, so flipping back is instant.
"""

from __future__ import annotations

import streamlit as st

from explorer import tapstats
from explorer.compare import run
from explorer.config import ExperimentConfig
from explorer.elements import DEFAULT_ELEMENTS, WorstElements, worst_elements
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


@st.cache_data(max_entries=MAX_CACHED_RUNS, show_spinner="Finding the worst elements...")
def _cached_worst(config: ExperimentConfig, threads: int, layer: int, stage: str,
                  k: int) -> WorstElements:
    return worst_elements(config, layer, stage, k=k, per_row=True)


def worst_rows_or_explain(config: ExperimentConfig, layer: int, stage: str,
                          k: int = DEFAULT_ELEMENTS) -> WorstElements | None:
    """The k input rows whose worst element at this tap differs most, or None after saying
    why they could not be computed."""
    from explorer.ui.state import safe_text

    try:
        return _cached_worst(config, threads_in_effect(config.threads), layer, stage, k)
    except (ValueError, RuntimeError, MemoryError) as err:
        st.error(f"The worst elements could not be computed: {safe_text(err, limit=600)}")
        return None
