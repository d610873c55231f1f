"""Streamlit glue: the only part of the package that imports streamlit.

state (URL <-> view, no streamlit), sidebar (widgets -> view), cache (runs by config),
render (verdict, cards, charts, downloads).

Every page script imports this package first, and it imports, in one go, every module a
page uses. On a fresh server the first visitors' page scripts run at the same time, each
on its own thread. When each imported its own modules, two threads could each hold part of
the package half-initialised: Python's import deadlock detection then handed one of them a
partial module ("cannot import name 'ExperimentConfig' from partially initialized module
'explorer.config'", an exception box for both). Here the first thread imports everything
under this package's lock while the others wait.

pandas comes whole for the same reason. plotly's validators look it up in sys.modules
without importing it, and a session that found it half-imported by another session's
thread failed with "partially initialized module 'pandas' has no attribute 'Series'".
"""

import pandas  # noqa: F401

import explorer  # noqa: F401
from explorer import (  # noqa: F401
    charts,
    config,
    effective,
    export,
    machine,
    precision_charts,
    serving,
    sweep,
    sweep_charts,
)
from explorer.ui import cache, navigation, render, sidebar, state, sweep_state  # noqa: F401
