"""The app's wiring of the serving layer: the session-gone check and the messages shown."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer.ui import cache

ROOT = Path(__file__).resolve().parent.parent


def test_session_gone_is_false_without_a_served_session():
    assert cache.session_gone()() is False  # plain Python: no script thread, no runtime


def test_session_gone_follows_the_runtime_list_of_active_sessions(monkeypatch):
    from types import SimpleNamespace

    import streamlit.runtime as runtime
    from streamlit.runtime.scriptrunner_utils import script_run_context

    active = {"abc"}
    fake = SimpleNamespace(is_active_session=lambda sid: sid in active)
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: fake)
    monkeypatch.setattr(script_run_context, "get_script_run_ctx",
                        lambda suppress_warning=False: SimpleNamespace(session_id="abc"))
    gone = cache.session_gone()
    assert gone() is False
    active.clear()  # the browser closed its websocket
    assert gone() is True


def _page_with_busy_server():
    """A page that asks for a heavy run while the one slot is taken and nobody may queue."""
    import streamlit as st

    from explorer import ExperimentConfig, serving
    from explorer.serving import Admission, ReportCache, Server
    from explorer.ui.cache import run_or_explain

    serving._server = Server(Admission(1, 1, 0), ReportCache())
    with serving._server.admission.admit(1):
        report = run_or_explain(ExperimentConfig(batch=4096, samples=1, depth=3, seed=5))
    st.write(f"report is None: {report is None}")


def test_a_busy_server_shows_a_warning_not_an_error_box(monkeypatch):
    from explorer import serving

    monkeypatch.setattr(serving, "_server", None)
    at = AppTest.from_function(_page_with_busy_server, default_timeout=60).run()
    assert not at.exception and not at.error
    text = " ".join(w.value.replace("\\", "") for w in at.warning)
    assert "the server is busy: 1 runs are computing and 0 are waiting" in text
    assert "Try a smaller run" in text and "The settings in the sidebar are kept." in text
    assert any("report is None: True" in m.value for m in at.markdown)


def test_light_worst_elements_need_no_place_in_line(monkeypatch):
    # A burst of visitors: every page asks for its worst elements. A light config must not
    # queue for them (nor be told "busy"), exactly as a light run does not.
    from explorer import ExperimentConfig, serving
    from explorer.serving import Admission, Busy, ReportCache, Server

    monkeypatch.setattr(serving, "_server", Server(Admission(1, 1, 0), ReportCache()))
    light = ExperimentConfig(batch=2, samples=2, seed=11)
    with serving._server.admission.admit(1):  # the one slot taken, no queue allowed
        found = cache._cached_worst(light, 1, "pre", 3)
        assert len(found.rows) == 3
        heavy = ExperimentConfig(batch=4096, samples=1, depth=3, seed=12)
        try:
            cache._cached_worst(heavy, 1, "pre", 3)
        except Busy:
            pass
        else:
            raise AssertionError("a heavy worst-elements run took no place in line")


def test_heavy_worst_elements_give_their_memory_back(monkeypatch):
    from explorer import ExperimentConfig, allocator, serving
    from explorer.serving import Admission, ReportCache, Server

    monkeypatch.setattr(serving, "_server", Server(Admission(1, 2**40, 4), ReportCache()))
    calls = []
    monkeypatch.setattr(allocator, "release", lambda: calls.append(1) or True)
    cache._cached_worst(ExperimentConfig(batch=4096, samples=1, depth=3, seed=13), 1, "pre", 3)
    assert calls  # malloc_trim after the heavy rerun, as after a heavy run


def test_the_ui_imports_pandas_whole_before_any_figure_is_built():
    # plotly's validators read sys.modules["pandas"] without importing it; three sessions
    # at once once caught it half-imported by another thread (an exception box). The UI
    # package imports it up front, so no page can be first.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, explorer.ui; "
                          "print('pandas' in sys.modules and hasattr(sys.modules['pandas'], "
                          "'Series'))"], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "True"
