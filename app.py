"""Numerical Error Explorer: `streamlit run app.py`. Pages render; the library computes.

To add a page, put its script in pages/ and add one st.Page line to PAGES. Give it a
url_path that differs from its file name (see explorer/ui/navigation.py for why).
"""

import streamlit as st

from explorer.ui.navigation import mark_app_entry

st.set_page_config(page_title="Numerical Error Explorer", page_icon=":material/functions:",
                   layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("pages/explorer.py", title="Explorer", icon=":material/insights:", default=True),
    st.Page("pages/forum_case.py", title="The forum case", icon=":material/forum:",
            url_path="forum"),
    st.Page("pages/sweep.py", title="Sweeps", icon=":material/grid_on:", url_path="sweeps"),
    st.Page("pages/hidden_precision.py", title="Hidden precision", icon=":material/memory:",
            url_path="hidden-precision"),
    st.Page("pages/how_to_read.py", title="How to read this", icon=":material/menu_book:",
            url_path="how-to-read"),
]

asked_for = mark_app_entry()
# Pages in the top bar: the sidebar's first screen is left for the main settings.
navigation = st.navigation(PAGES, position="top")
if asked_for:
    st.switch_page(asked_for)
navigation.run()
