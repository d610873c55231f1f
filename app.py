"""Numerical Error Explorer: `streamlit run app.py`. Pages render; the library computes.

To add a page, add one st.Page line to PAGES.
"""

import streamlit as st

st.set_page_config(page_title="Numerical Error Explorer", page_icon=":material/functions:",
                   layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page("pages/explorer.py", title="Explorer", icon=":material/insights:", default=True),
    st.Page("pages/forum_case.py", title="The forum case", icon=":material/forum:"),
    st.Page("pages/how_to_read.py", title="How to read this", icon=":material/menu_book:"),
]

st.navigation(PAGES).run()
