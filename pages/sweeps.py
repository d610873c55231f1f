"""Sweeps: one metric as a map over two settings. Widgets -> pending SweepView -> Run.

Nothing runs on an axis change: the sidebar edits a pending sweep, and Run computes it (a
first visit or a pasted link runs the sweep it shows). Cancel stops a running sweep and
keeps the cells finished so far; Run then finishes the rest from the cache. Changing only
the metric needs no run: every cell keeps every metric.
"""

from dataclasses import replace

import streamlit as st

import explorer.ui  # noqa: F401 - first: every module at once (explorer/ui/__init__.py)
from explorer import sweep as sw
from explorer import sweep_charts
from explorer.config import PRESETS, preset
from explorer.serving import Busy
from explorer.ui.cache import sweep_runner
from explorer.ui.navigation import require_app_entry
from explorer.ui.render import PLOTLY_CONFIG, link_warnings
from explorer.ui.sidebar import explorer_config
from explorer.ui.state import safe_text
from explorer.ui.sweep_state import (
    DEFAULT_VALUES,
    FROM_EXPLORER,
    FROM_LINK,
    NO_AXIS,
    SweepView,
    base_choices,
    parse_sweep_url,
    same_sweep,
    split_spec,
    sweep_to_url,
)

require_app_entry("pages/sweeps.py")  # legacy pages/ routing must not bypass app.py

PREFIX = "sw."
VIEW_KEY = "sw:view"  # the sweep on screen and in the URL (the last one Run or a link set)
RESULT_KEY = "sw:result"  # (SweepView, SweepResult): what was computed for it
URL_KEY = "sw:url"  # the query parameters this page last wrote
WARNINGS_KEY = "sw:url_warnings"
BASE_LABELS = {FROM_EXPLORER: "The Explorer's current settings",
               FROM_LINK: "The link's settings",
               **{name: f"Preset: {p.title}" for name, p in PRESETS.items()}}


def _default_view() -> SweepView:
    config, preset_name, _ = explorer_config()
    return SweepView(preset_name, config)


def _seed_widgets(view: SweepView, force: bool) -> None:
    x_name, x_values = split_spec(view.x)
    y_name, y_values = split_spec(view.y)
    values = {"base": view.base, "x_name": x_name, "x_values": x_values,
              "y_name": y_name, "y_values": y_values, "metric": view.metric}
    for name, value in values.items():
        if force or PREFIX + name not in st.session_state:
            st.session_state[PREFIX + name] = value


def _on_axis(which: str) -> None:
    name = st.session_state[f"{PREFIX}{which}_name"]
    st.session_state[f"{PREFIX}{which}_values"] = DEFAULT_VALUES.get(name, "")


params = st.query_params.to_dict()
if params and params != st.session_state.get(URL_KEY):  # a pasted link: it wins
    url_view, url_warnings = parse_sweep_url(params)
    st.session_state[VIEW_KEY] = url_view
    st.session_state[WARNINGS_KEY] = (url_warnings, url_view)
    _seed_widgets(url_view, force=True)
elif VIEW_KEY not in st.session_state:
    st.session_state[VIEW_KEY] = _default_view()
    _seed_widgets(st.session_state[VIEW_KEY], force=True)
else:
    _seed_widgets(st.session_state[VIEW_KEY], force=False)
shown: SweepView = st.session_state[VIEW_KEY]

axis_names = tuple(sw.AXES)
with st.sidebar:
    # Run and Cancel first: on a 1280x720 projector they stay on the first screen.
    run_col, cancel_col = st.columns(2)
    choices = base_choices() + ((FROM_LINK,) if shown.base == FROM_LINK else ())
    if st.session_state.get(PREFIX + "base") not in choices:
        st.session_state[PREFIX + "base"] = FROM_EXPLORER
    base_choice = st.selectbox(
        "Base settings", choices, key=PREFIX + "base", format_func=BASE_LABELS.__getitem__,
        help="Every cell starts from these settings and changes only the two axes: the "
             "Explorer's current settings, a preset, or (after opening a link) the link's.")
    x_name = st.selectbox("X axis", axis_names, key=PREFIX + "x_name", on_change=_on_axis,
                          args=("x",), help=sw.axis_help())
    x_values = st.text_input("X values", key=PREFIX + "x_values", max_chars=300,
                             help=safe_text(sw.AXES[x_name][1]))
    y_name = st.selectbox("Y axis", (NO_AXIS, *axis_names), key=PREFIX + "y_name",
                          on_change=_on_axis, args=("y",),
                          help="A second setting, one row per value; none for one row.")
    y_values = st.text_input("Y values", key=PREFIX + "y_values", max_chars=300,
                             disabled=y_name == NO_AXIS,
                             help=safe_text(sw.AXES[y_name][1]) if y_name in sw.AXES else None)
    metric = st.selectbox("Metric", tuple(sw.METRICS), key=PREFIX + "metric",
                          help="What each cell shows. Changing it needs no new run.")
    st.caption(f"Ranges: init-constant=START:STOP:COUNT (log-spaced), depth=START:STOP, "
               f"rows-per-call-b=1:64:x2,whole (doubling, then the whole batch); lists: "
               f"comma-separated. At most {sw.MAX_CELLS} cells.")

# Widgets -> the pending sweep; a bad entry says why and cannot be run.
problems: list[str] = []
base_note = None
if base_choice == FROM_EXPLORER:
    base_config, base_preset, base_note = explorer_config()
elif base_choice == FROM_LINK:
    base_config, base_preset = shown.config, shown.preset
else:
    base_config, base_preset = preset(base_choice), base_choice
x_axis = y_axis = None
try:
    x_axis = sw.parse_axis(f"{x_name}={x_values}")
except ValueError as err:
    problems.append(f"X values: {err}")
if y_name != NO_AXIS:
    try:
        y_axis = sw.parse_axis(f"{y_name}={y_values}")
    except ValueError as err:
        problems.append(f"Y values: {err}")
if x_axis is not None and not problems:
    try:
        sw.check_axes(x_axis, y_axis)
    except ValueError as err:
        problems.append(str(err))
pending = None if problems else SweepView(base_preset, base_config, x_axis.spec,
                                          y_axis.spec if y_axis else "", metric, base_choice)

# The metric alone changes nothing to compute: it applies at once.
if pending is not None and same_sweep(replace(pending, metric=shown.metric), shown) \
        and pending.metric != shown.metric:
    shown = replace(shown, metric=pending.metric)
    st.session_state[VIEW_KEY] = shown

run_clicked = run_col.button("Run", key=PREFIX + "run", type="primary",
                             icon=":material/play_arrow:", disabled=pending is None,
                             help="Compute the sweep set above (cells already computed come "
                                  "from the cache).")
cancel_clicked = bool(st.session_state.get(PREFIX + "cancel"))
if run_clicked and pending is not None:
    shown = pending
    st.session_state[VIEW_KEY] = shown
    st.session_state.pop(RESULT_KEY, None)  # Run runs (finished cells come from the cache)
stored = st.session_state.get(RESULT_KEY)
have_result = stored is not None and same_sweep(stored[0], shown) \
    and stored[0].metric == shown.metric
metric_only = stored is not None and same_sweep(replace(stored[0], metric=shown.metric), shown)
will_run = not have_result and not cancel_clicked and not metric_only
cancel_col.button("Cancel", key=PREFIX + "cancel", icon=":material/stop:",
                  disabled=not will_run,
                  help="Stop the running sweep; the cells finished so far stay on screen.")

st.title("Sweeps: where does it matter?")
st.caption(safe_text(f"{shown.metric}: {sw.METRICS[shown.metric]}.", limit=400))
url_warnings, url_view = st.session_state.get(WARNINGS_KEY) or ([], None)
if url_warnings and url_view is not None and same_sweep(url_view, shown):
    link_warnings(url_warnings)
for problem in problems:
    st.error(f"{safe_text(problem, limit=600)} Fix it to run; the sweep below is the last "
             "one run.")
if base_note:
    st.caption(safe_text(base_note, limit=600))
if pending is not None and not same_sweep(pending, shown):
    cells = len(x_axis.points) * (len(y_axis.points) if y_axis else 1)
    st.info(f"The sidebar now describes another sweep ({cells} cells): press Run to compute "
            "it. Below is the sweep last run.", icon=":material/play_arrow:")

url = sweep_to_url(shown)
if st.query_params.to_dict() != url:
    st.query_params.from_dict(url)
st.session_state[URL_KEY] = url

if (cancel_clicked or metric_only) and not have_result:
    # Stopped mid-way (the click interrupted the run), or only the metric changed: show
    # what the cache holds, computing nothing.
    result = sw.sweep(shown.config, shown.x, shown.y or None, shown.metric, cached_only=True)
    st.session_state[RESULT_KEY] = (shown, result)
elif will_run:
    bar = st.progress(0.0, text="Starting the sweep... (Cancel in the sidebar stops it)")

    def _progress(p: sw.Progress) -> None:
        bar.progress(p.fraction, text=f"{p.done}/{p.total} cells, {p.elapsed:.1f} s elapsed, "
                                      f"about {p.remaining:.0f} s left")

    try:
        result = sw.sweep(shown.config, shown.x, shown.y or None, shown.metric,
                          progress=_progress, run=sweep_runner())
    except (ValueError, Busy) as err:  # e.g. the sweep budget, or a full queue
        bar.empty()
        st.error(f"This sweep could not be run: {safe_text(err, limit=600)}")
        st.stop()
    bar.empty()
    st.session_state[RESULT_KEY] = (shown, result)
else:
    result = stored[1]

if result.cancelled:
    st.warning(safe_text(f"Sweep {result.message}. The cells finished so far are shown; Run "
                         "computes the rest (finished cells come from the cache).",
                         limit=600))
st.plotly_chart(sweep_charts.heatmap_figure(result), width="stretch", config=PLOTLY_CONFIG,
                key="sweep_heatmap")
st.plotly_chart(sweep_charts.lines_figure(result), width="stretch", config=PLOTLY_CONFIG,
                key="sweep_lines")

row = st.container(horizontal=True, vertical_alignment="center")
row.download_button("Download CSV (one row per cell)", data=result.frame.to_csv(index=False),
                    file_name="sweep.csv", mime="text/csv", icon=":material/download:")
row.caption(safe_text(
    f"{result.message}. Base ({BASE_LABELS.get(shown.base, shown.base)}): "
    f"{sw.describe_base(shown.config)}. Each cell is one full comparison; cells are cached, "
    "so changing only the metric recomputes nothing.", limit=900))

odd = result.frame[result.frame.message != ""]
if len(odd):
    with st.expander(f"{len(odd)} cell(s) without a value, and why"):
        st.dataframe(odd[["x", "y", "verdict", "message"]], hide_index=True, width="stretch")
with st.expander("The numbers"):
    st.dataframe(result.grid(), width="stretch")
