"""Entry through app.py, whatever URL a visitor lands on.

The page scripts live in `pages/`. Streamlit still treats a `pages/` folder as a legacy
multipage app until app.py has called st.navigation once in the process, so the first
visitor after a restart who opens a link named after a page *file* (`/forum_case`) would
run that script bare: no layout, no navigation, no shared sidebar. The pages' own URLs
(`/forum`, `/sweeps`, `/how-to-read`) differ from the file names, so they always go
through app.py; a file-name URL is caught here, sent through app.py, and app.py then
opens the page that was asked for.
"""

import streamlit as st

_ENTERED_VIA_APP = "_explorer_entered_via_app"
_REDIRECT_TO = "_explorer_redirect_to"


def mark_app_entry() -> str | None:
    """Called by app.py on every run, before the page runs.

    Returns the page file a bare legacy run asked for, once, so app.py can open it.
    """
    st.session_state[_ENTERED_VIA_APP] = True
    return st.session_state.pop(_REDIRECT_TO, None)


def require_app_entry(page_file: str) -> None:
    """Called first by every page (with its own path, e.g. "pages/forum_case.py")."""
    if not st.session_state.get(_ENTERED_VIA_APP):
        st.session_state[_REDIRECT_TO] = page_file
        st.switch_page("app.py")
