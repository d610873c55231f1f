"""Numerical Error Explorer: `streamlit run app.py`. Pages render; the library computes.

To add a page, put it in app_pages/ and add one st.Page line to PAGES. The folder must not
be called `pages/`: Streamlit runs a `pages/` folder as an old-style multipage app for the
first visitor after a restart who opens a sub-page link, bypassing this navigation.
"""

import streamlit as st

st.set_page_config(page_title="Numerical Error Explorer", page_icon=":material/functions:",
                   layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("app_pages/explorer.py", title="Explorer", icon=":material/insights:", default=True),
    st.Page("app_pages/forum_case.py", title="The forum case", icon=":material/forum:"),
    st.Page("app_pages/sweep.py", title="Sweeps", icon=":material/grid_on:", url_path="sweep"),
    st.Page("app_pages/how_to_read.py", title="How to read this", icon=":material/menu_book:"),
]

st.navigation(PAGES).run()
