"""Explorer: the settings in the sidebar, the verdict, the numbers, the charts by layer.

Laid out for a 1280x720 projector: one title line, the verdict in one sentence (its reasons
in an expander), the cards, then the charts, whose first row starts on the first screen.
"""

from dataclasses import replace

import streamlit as st

import explorer.ui  # noqa: F401 - first: every module at once (explorer/ui/__init__.py)
from explorer import charts
from explorer.export import expected_output, reproduce_script
from explorer.ui import render, sidebar
from explorer.ui.cache import cached_figures, run_or_explain, worst_rows_or_explain
from explorer.ui.navigation import require_app_entry
from explorer.ui.state import hist_key, safe_text

require_app_entry("pages/explorer.py")  # legacy pages/ routing must not bypass app.py

result = sidebar.render_sidebar()
view = result.view
shown = view.config or st.session_state.get(sidebar.LAST_RUN_KEY)

render.link_warnings(result.url_warnings)
for error in result.errors:
    st.error(safe_text(error, limit=600))
if view.config is None:
    st.error(safe_text(
        f"These settings cannot run: {view.problem} Every setting stays as you set it."
        + (" The results below are the last settings that ran." if shown is not None else ""),
        limit=900))
if shown is None:
    sidebar.write_url(view)
    st.stop()

st.subheader(render.title(shown))
settings_slot = st.empty()  # the settings now; with what the run found once it is done
render.settings_caption(settings_slot, shown)
report = run_or_explain(shown)
if report is None:
    sidebar.write_url(view)
    st.stop()
if view.config is not None:
    st.session_state[sidebar.LAST_RUN_KEY] = view.config
pinned = run_or_explain(view.pinned) if view.pinned is not None else None

if found := render.variant_text(report):
    render.settings_caption(settings_slot, shown, found)
render.verdict(report)
render.metric_cards(report, pinned)


def _pin() -> None:
    current = st.session_state[sidebar.VIEW_KEY]
    if current.config is not None:
        st.session_state[sidebar.VIEW_KEY] = replace(
            current, pinned=current.config, pinned_preset=current.preset)


def _unpin() -> None:
    current = st.session_state[sidebar.VIEW_KEY]
    st.session_state[sidebar.VIEW_KEY] = replace(current, pinned=None, pinned_preset=None)


# One row: the taps selector, the pin button and what the pin is. A second row here would
# push the first chart below a projector's fold; the pin's every setting is in the help.
with st.container(horizontal=True, wrap=False, vertical_alignment="center", gap="small"):
    taps = sidebar.view_controls()
    if view.pinned is None:
        st.button("Pin this run", on_click=_pin, icon=":material/push_pin:",
                  disabled=view.config is None,
                  help="Keep these results as a baseline: the charts overlay it, dashed, "
                       "while you change settings. The pin is part of the link.")
    else:
        st.button("Unpin", on_click=_unpin, icon=":material/close:",
                  help=safe_text(render.pin_description(pinned) if pinned is not None
                                 else "Remove the dashed baseline from the charts."))
        if pinned is not None:
            st.caption(safe_text(render.pin_caption(pinned.config, shown)))

slots = render.chart_slots(list(charts.CHART_TITLES))
with slots["bits_histogram"]:
    hist = render.hist_selector(report, sidebar.PREFIX + "hist", sidebar.VIEW_KEY,
                                st.session_state[sidebar.VIEW_KEY].hist)
figures = cached_figures(report, taps, hist, pinned)  # shared across sessions
for name, figure in figures.items():
    with slots[name]:
        render.show_figure(figure, key=f"chart-{name}")

worst = worst_rows_or_explain(shown, *hist)
if worst is not None:
    render.worst_elements_table(worst, shown.dtype)

last = report.taps[-1]
view = replace(st.session_state[sidebar.VIEW_KEY], taps=taps,
               hist="" if hist == (last.layer, last.stage) else hist_key(*hist))
st.session_state[sidebar.VIEW_KEY] = view

st.subheader("Export")
render.downloads(report, figures)
with st.expander("Reproduce in Python: the script, and what it prints on this machine"):
    st.code(reproduce_script(report.config), language="python")
    st.caption("Its output here, taken from the same run as the charts above:")
    st.code(expected_output(report), language="text")

render.environment(report)
sidebar.write_url(view)
