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

It also notices links that Streamlit drops whole (see `DroppedLinks`), so that every page
can say so.
"""

import logging
import sys
import threading
from collections import OrderedDict

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

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


# Streamlit ignores a whole query string with more than 1000 parameters or over 512 KiB, a
# safety limit in streamlit.runtime.state.query_params. The page then opens on its defaults,
# as if there were no link, and only the server log says why. That log record is the one
# trace of it; this filter catches it and notes which session it was for.
QUERY_PARAMS_LOGGER = "streamlit.runtime.state.query_params"
_DROPPED_PREFIX = "Ignoring query string with"


class DroppedLinks(logging.Filter):
    """Remembers, per session, why its link was dropped, until the next page run asks."""

    def __init__(self, max_sessions: int = 256) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._why: OrderedDict[str, str] = OrderedDict()
        self._max_sessions = max_sessions  # bounded: sessions that never ask do not pile up

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_DROPPED_PREFIX):
            try:
                size, limit = record.args  # type: ignore[misc]
                unit = "parameters" if "parameters" in record.msg else "characters"
                why = f"it has {size:,} {unit}, and Streamlit accepts at most {limit:,}"
            except (TypeError, ValueError):
                why = "it is longer than Streamlit accepts"
            session_id = _calling_session_id()
            if session_id is not None:
                with self._lock:
                    self._why[session_id] = why
                    while len(self._why) > self._max_sessions:
                        self._why.popitem(last=False)
        return True  # the server log keeps its line

    def take(self, session_id: str) -> str | None:
        with self._lock:
            return self._why.pop(session_id, None)


def _calling_session_id() -> str | None:
    """The id of the Streamlit AppSession up the stack: the record is logged while that
    session handles the browser's rerun request, before any script of it runs."""
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if type(owner).__name__ == "AppSession" and isinstance(getattr(owner, "id", None),
                                                               str):
            return owner.id
        frame = frame.f_back
    return None


def _install_dropped_links() -> DroppedLinks:
    logger = logging.getLogger(QUERY_PARAMS_LOGGER)
    for existing in logger.filters:  # a re-imported module must not stack filters
        if type(existing).__name__ == "DroppedLinks":
            return existing  # type: ignore[return-value]
    dropped = DroppedLinks()
    logger.addFilter(dropped)
    return dropped


# Installed when the package is first imported, i.e. by the first page run after a restart:
# a link dropped on the very first visit is not seen (the record came before).
DROPPED_LINKS = _install_dropped_links()


def warn_if_link_dropped() -> None:
    """On every page: say so when this page's link was ignored as a whole."""
    ctx = get_script_run_ctx()
    why = DROPPED_LINKS.take(ctx.session_id) if ctx is not None else None
    if why:
        st.warning(f"This link was not applied: {why}, so it ignores the whole link and "
                   f"the page shows its defaults. A link needs only the settings that differ "
                   f"from its preset: set them here and copy the address bar.")
