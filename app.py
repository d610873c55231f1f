"""Numerical Error Explorer: `streamlit run app.py`. Pages render; the library computes.

To add a page, put its script in pages/ and add one st.Page line to PAGES. Its URL is its
file name, and its first line is `require_app_entry(<its path>)` (see
explorer/ui/navigation.py for why).
"""

import streamlit as st

import explorer.ui  # noqa: F401 - first: every module at once (explorer/ui/__init__.py)
from explorer.ui.cache import show_setting_problems
from explorer.ui.navigation import mark_app_entry, warn_if_link_dropped

st.set_page_config(page_title="Numerical Error Explorer", page_icon=":material/functions:",
                   layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("pages/explorer.py", title="Explorer", icon=":material/insights:", default=True),
    st.Page("pages/forum.py", title="The forum case", icon=":material/forum:"),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/grid_on:"),
    st.Page("pages/hidden-precision.py", title="Hidden precision", icon=":material/memory:"),
    st.Page("pages/how-to-read.py", title="How to read this", icon=":material/menu_book:"),
]

show_setting_problems()  # unusable EXPLORER_MAX_* values: said on every page
warn_if_link_dropped()  # a link Streamlit ignored whole (too many parameters)
asked_for = mark_app_entry()
# Pages in the top bar: the sidebar's first screen is left for the main settings.
navigation = st.navigation(PAGES, position="top")
if asked_for:  # the first visit after a restart, routed by file name: open what it asked for
    page_file, query_params = asked_for
    st.switch_page(page_file, query_params=query_params)
navigation.run()
