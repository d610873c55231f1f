"""Runs for the pages: the shared report cache, admission, and abandoning runs nobody awaits.

Reports are cached by what decides their numbers (config and thread count, see
explorer.serving.ReportCache), in the library rather than st.cache_data: a run that must
wait for its turn shows its place in the queue, and a computation whose browser tab has
closed stops at the next layer. Changing a chart option reruns the page but not the
networks; flipping back to an earlier setting is instant.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from explorer import allocator, tapstats
from explorer.compare import Cancelled
from explorer.config import ExperimentConfig
from explorer.elements import DEFAULT_ELEMENTS, WorstElements, worst_elements
from explorer.limits import estimate
from explorer.report import Report
from explorer.serving import Busy, ReportCache, StopCheck, WaitReport, is_light, server


def session_gone() -> StopCheck:
    """A check, for the script thread, that is True once this browser session has gone.

    Streamlit keeps running a script after its websocket closes; the runtime then no longer
    lists the session as active (Runtime.is_active_session, safe from any thread). Outside a
    served app (AppTest, bare mode) there is no runtime and the check is always False.
    """
    from streamlit import runtime
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not runtime.exists():
        return lambda: False
    instance, session_id = runtime.get_instance(), ctx.session_id
    return lambda: not instance.is_active_session(session_id)


def queue_notice() -> tuple[WaitReport, object]:
    """(on_wait callback that shows the queue position, the placeholder to clear after)."""
    slot = st.empty()

    def on_wait(ahead: int) -> None:
        slot.info(f"Waiting for a turn: {ahead} run{'s' if ahead != 1 else ''} ahead of "
                  "yours on this shared server. Your settings are kept; the page fills in "
                  "when it is your turn.", icon=":material/hourglass_top:")

    return on_wait, slot


# Seconds the server waits after its first run before loading the numba kernels in the
# background (the first page renders meanwhile; until they load, runs use the torch
# engine, which gives the same numbers).
KERNEL_LOAD_DELAY = 3.0


def cached_run(config: ExperimentConfig) -> Report:
    tapstats.start_background_load(delay=KERNEL_LOAD_DELAY)  # once per process
    on_wait, slot = queue_notice()
    try:
        with st.spinner("Running both networks..."):
            return server().report(config, on_wait=on_wait, should_stop=session_gone())
    finally:
        slot.empty()


def sweep_runner():
    """compare.run for the Sweeps page's cells: through admission, abandoned if the tab
    closes (Cancelled ends the sweep like its Cancel button)."""
    on_wait, slot = queue_notice()
    should_stop = session_gone()

    def run_cell(config: ExperimentConfig) -> Report:
        try:
            return server().run(config, on_wait=on_wait, should_stop=should_stop)
        finally:
            slot.empty()

    return run_cell


_FIGURES: OrderedDict[tuple, dict] = OrderedDict()
_FIGURES_LOCK = threading.Lock()
MAX_CACHED_FIGURE_SETS = 64


def cached_figures(report: Report, taps: str, hist: tuple[int, str] | None,
                   pinned: Report | None) -> dict:
    """charts.all_figures, shared between sessions: building six plotly figures costs
    ~0.4 s of CPU, most of a cached page's render, and a burst of visitors to one link asks
    for the same six. Keyed like the reports (config and threads in effect) plus the chart
    options; the figures are only read afterwards (st.plotly_chart and the HTML export
    serialise them)."""
    from explorer import charts

    key = (ReportCache.key(report.config), taps, hist,
           ReportCache.key(pinned.config) if pinned is not None else None)
    with _FIGURES_LOCK:
        figures = _FIGURES.get(key)
        if figures is not None:
            _FIGURES.move_to_end(key)
            return figures
    figures = charts.all_figures(report, taps, hist, pinned)
    with _FIGURES_LOCK:
        _FIGURES[key] = figures
        while len(_FIGURES) > MAX_CACHED_FIGURE_SETS:
            _FIGURES.popitem(last=False)
    return figures


def run_or_explain(config: ExperimentConfig) -> Report | None:
    """The report, or None after showing why the run could not be made (never a traceback)."""
    from explorer.ui.state import safe_text

    try:
        return cached_run(config)
    except Busy as err:
        st.warning(f"{safe_text(err, limit=600)} The settings in the sidebar are kept.")
    except Cancelled:
        st.stop()  # nobody is there to see a result
    except (ValueError, RuntimeError, MemoryError) as err:
        st.error(f"This run could not be made: {safe_text(err, limit=600)} The settings in "
                 "the sidebar are unchanged; adjust them and the page recomputes.")
    return None


_WORST: OrderedDict[tuple, WorstElements] = OrderedDict()
_WORST_LOCK = threading.Lock()


def _cached_worst(config: ExperimentConfig, layer: int, stage: str, k: int) -> WorstElements:
    """worst_elements, shared between sessions (keyed like the reports) and computed through
    admission like a run: it runs the networks up to the layer again."""
    key = (ReportCache.key(config), layer, stage, k)
    with _WORST_LOCK:
        found = _WORST.get(key)
        if found is not None:
            _WORST.move_to_end(key)
            return found
    cost = estimate(config)
    if is_light(cost):  # as a light run: no place in line, no "busy"
        found = worst_elements(config, layer, stage, k=k, per_row=True)
    else:
        try:
            with server().admission.admit(cost.bytes, should_stop=session_gone()):
                found = worst_elements(config, layer, stage, k=k, per_row=True)
        finally:
            allocator.release()  # as after a heavy run: give the freed memory back
    with _WORST_LOCK:
        _WORST[key] = found
        while len(_WORST) > MAX_CACHED_FIGURE_SETS:
            _WORST.popitem(last=False)
    return found


def worst_rows_or_explain(config: ExperimentConfig, layer: int, stage: str,
                          k: int = DEFAULT_ELEMENTS) -> WorstElements | None:
    """The k input rows whose worst element at this tap differs most, or None after saying
    why they could not be computed."""
    from explorer.ui.state import safe_text

    try:
        with st.spinner("Finding the worst elements..."):
            return _cached_worst(config, layer, stage, k)
    except Busy as err:
        st.warning(f"{safe_text(err, limit=600)}")
    except Cancelled:
        st.stop()
    except (ValueError, RuntimeError, MemoryError) as err:
        st.error(f"The worst elements could not be computed: {safe_text(err, limit=600)}")
    return None


def show_setting_problems() -> None:
    """Unusable EXPLORER_MAX_* environment values: say so (the defaults are in force)."""
    from explorer.limits import setting_problems
    from explorer.ui.state import safe_text

    for problem in setting_problems():
        st.warning(f"Server setting ignored: {safe_text(problem, limit=600)}",
                   icon=":material/settings:")
