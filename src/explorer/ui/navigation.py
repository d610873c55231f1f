"""Entry through app.py, whatever URL a visitor lands on.

The page scripts live in `pages/`. Until app.py has called st.navigation once in the
process, Streamlit treats a `pages/` folder as a legacy multipage app: the first visitor
after a restart is routed by the *file* names in `pages/`. Two consequences shape this:

- Each page's URL is its file name (`pages/sweeps.py` is `/sweeps`), so that first visitor's
  link names a page the legacy routing knows. A URL that differs from every file name
  would get Streamlit's "Page not found" dialog before app.py could open it.
- The legacy routing runs that page's script bare: no layout, no shared sidebar, no
  navigation. Every page therefore calls `require_app_entry` first; a bare run goes to
  app.py, carrying the page and the link's query string, and app.py opens the page with
  them. From then on st.navigation has been called and every visit goes through app.py.
"""

import streamlit as st

_ENTERED_VIA_APP = "_explorer_entered_via_app"
_REDIRECT_TO = "_explorer_redirect_to"


def _query_params() -> dict[str, list[str]]:
    """The link's query string, repeated keys kept."""
    return {key: st.query_params.get_all(key) for key in st.query_params}


def mark_app_entry() -> tuple[str, dict[str, list[str]]] | None:
    """Called by app.py on every run, before the page runs.

    Returns the page file and query parameters a bare legacy run asked for, once, so app.py
    can open that page with the link's settings.
    """
    st.session_state[_ENTERED_VIA_APP] = True
    return st.session_state.pop(_REDIRECT_TO, None)


def require_app_entry(page_file: str) -> None:
    """Called first by every page (with its own path, e.g. "pages/forum.py")."""
    if not st.session_state.get(_ENTERED_VIA_APP):
        params = _query_params()
        st.session_state[_REDIRECT_TO] = (page_file, params)
        st.switch_page("app.py", query_params=params)
