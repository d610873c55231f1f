"""Streamlit glue: the only part of the package that imports streamlit.

state (URL <-> view, no streamlit), sidebar (widgets -> view), cache (runs by config),
render (verdict, cards, charts, downloads).
"""

# pandas, whole, before any page can build a figure. plotly's validators look pandas up in
# sys.modules without importing it, and a session that finds it half-imported by another
# session's thread (the worst-elements table and st.dataframe import it on first use)
# fails with "partially initialized module 'pandas' has no attribute 'Series'". Importing
# it here, under Python's import lock, means every page sees it complete.
import pandas  # noqa: F401
