"""Sweeps: one metric as a map over two settings. Widgets -> SweepView -> sweep -> figures."""

import streamlit as st

from explorer import sweep as sw
from explorer import sweep_charts
from explorer.config import PRESETS, preset
from explorer.ui.navigation import require_app_entry
from explorer.ui.render import PLOTLY_CONFIG
from explorer.ui.state import safe_text
from explorer.ui.sweep_state import (
    DEFAULT_VALUES,
    NO_AXIS,
    SweepView,
    parse_sweep_url,
    split_spec,
    sweep_to_url,
)

require_app_entry("pages/sweep.py")  # legacy pages/ routing must not bypass app.py

PREFIX = "sw."
VIEW_KEY = "sw:view"  # the last good SweepView
URL_KEY = "sw:url"  # the query parameters this page last wrote
WARNINGS_KEY = "sw:url_warnings"


def _seed_widgets(view: SweepView, force: bool) -> None:
    x_name, x_values = split_spec(view.x)
    y_name, y_values = split_spec(view.y)
    values = {"preset": view.preset, "x_name": x_name, "x_values": x_values,
              "y_name": y_name, "y_values": y_values, "metric": view.metric}
    for name, value in values.items():
        if force or PREFIX + name not in st.session_state:
            st.session_state[PREFIX + name] = value


def _on_axis(which: str) -> None:
    name = st.session_state[f"{PREFIX}{which}_name"]
    st.session_state[f"{PREFIX}{which}_values"] = DEFAULT_VALUES.get(name, "")


def _on_preset() -> None:
    stored: SweepView = st.session_state.get(VIEW_KEY, SweepView())
    name = st.session_state[PREFIX + "preset"]
    st.session_state[VIEW_KEY] = SweepView(name, preset(name), stored.x, stored.y,
                                           stored.metric)


params = st.query_params.to_dict()
if params and params != st.session_state.get(URL_KEY):  # a pasted link: it wins
    url_view, url_warnings = parse_sweep_url(params)
    st.session_state[VIEW_KEY] = url_view
    st.session_state[WARNINGS_KEY] = (url_warnings, url_view)
    _seed_widgets(url_view, force=True)
else:
    _seed_widgets(st.session_state.get(VIEW_KEY, SweepView()), force=False)
stored: SweepView = st.session_state.get(VIEW_KEY, SweepView())

axis_names = tuple(sw.AXES)
with st.sidebar:
    st.header("Sweep")
    preset_name = st.selectbox(
        "Base preset", tuple(PRESETS), key=PREFIX + "preset", on_change=_on_preset,
        format_func=lambda n: PRESETS[n].title,
        help="Every cell starts from this configuration and changes only the two axes.")
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
                          help="What each cell shows; see the line under the title.")
    st.caption(f"Ranges: init-constant=START:STOP:COUNT (log-spaced), depth=START:STOP, "
               f"rows-per-call-b=1:64:x2,whole (doubling, then the whole batch); lists: "
               f"comma-separated. At most {sw.MAX_CELLS} cells.")

st.title("Sweeps: for which settings does it matter?")
st.caption(safe_text(f"{metric}: {sw.METRICS[metric]}.", limit=400))

# Widgets -> axes; a bad entry keeps the last good sweep on screen and says why.
problems: list[str] = []
try:
    x_axis = sw.parse_axis(f"{x_name}={x_values}")
except ValueError as err:
    problems.append(f"X values: {err}")
    x_axis = sw.parse_axis(stored.x)
y_axis = None
if y_name != NO_AXIS:
    try:
        y_axis = sw.parse_axis(f"{y_name}={y_values}")
    except ValueError as err:
        problems.append(f"Y values: {err}")
        y_axis = sw.parse_axis(stored.y) if stored.y else None
try:
    sw.check_axes(x_axis, y_axis)
except ValueError as err:
    problems.append(str(err))
    x_axis = sw.parse_axis(stored.x)
    y_axis = sw.parse_axis(stored.y) if stored.y else None
for problem in problems:
    st.error(f"{safe_text(problem, limit=600)} Showing the last valid sweep.")

base = stored.config if preset_name == stored.preset else preset(preset_name)
view = SweepView(preset_name, base, x_axis.spec, y_axis.spec if y_axis else "", metric)
st.session_state[VIEW_KEY] = view
# Warnings about a pasted link stay up until the sweep is changed by hand.
url_warnings, url_view = st.session_state.get(WARNINGS_KEY) or ([], None)
if url_warnings and url_view == view:
    for warning in url_warnings:
        st.warning(f"Link setting ignored: {safe_text(warning, limit=600)}")
url = sweep_to_url(view)
if st.query_params.to_dict() != url:
    st.query_params.from_dict(url)
st.session_state[URL_KEY] = url

bar = st.progress(0.0, text="Starting the sweep...")


def _progress(p: sw.Progress) -> None:
    bar.progress(p.fraction, text=f"{p.done}/{p.total} cells, {p.elapsed:.1f} s elapsed, "
                                  f"about {p.remaining:.0f} s left")


try:
    result = sw.sweep(view.config, x_axis, y_axis, view.metric, progress=_progress)
except ValueError as err:  # e.g. the sweep budget
    bar.empty()
    st.error(f"This sweep could not be run: {safe_text(err, limit=600)}")
    st.stop()
bar.progress(1.0, text=safe_text(result.message))

st.plotly_chart(sweep_charts.heatmap_figure(result), width="stretch", config=PLOTLY_CONFIG,
                key="sweep_heatmap")
st.plotly_chart(sweep_charts.lines_figure(result), width="stretch", config=PLOTLY_CONFIG,
                key="sweep_lines")

left, right = st.columns([1, 3], vertical_alignment="center")
left.download_button("Download CSV (one row per cell)", data=result.frame.to_csv(index=False),
                     file_name="sweep.csv", mime="text/csv", icon=":material/download:")
right.caption(safe_text(
    f"Base: {sw.describe_base(view.config)}. Each cell is one full comparison; cells are "
    "cached, so changing only the metric recomputes nothing."))

odd = result.frame[result.frame.message != ""]
if len(odd):
    with st.expander(f"{len(odd)} cell(s) without a value, and why"):
        st.dataframe(odd[["x", "y", "verdict", "message"]], hide_index=True, width="stretch")
with st.expander("The numbers"):
    st.dataframe(result.grid(), width="stretch")
