"""Streamlit glue: the only part of the package that imports streamlit.

state (URL <-> view, no streamlit), sidebar (widgets -> view), cache (runs by config),
render (verdict, cards, charts, downloads).
"""
