"""The hosted configuration: what a visitor can reach besides the pages."""

import re
from pathlib import Path

import tomllib

from explorer import ExperimentConfig

ROOT = Path(__file__).resolve().parent.parent


def test_server_config_is_locked_down():
    config = tomllib.loads((ROOT / ".streamlit/config.toml").read_text())
    server = config["server"]
    assert server["headless"] is True and server["enableXsrfProtection"] is True
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False
    # The metrics endpoint stays cheap and anonymous-safe.
    assert server["enableExpensiveMemoryStats"] is False
    assert server["unsafeMetricsUserAttributes"] == []
    assert config["client"]["showErrorDetails"] == "none"
    assert config["browser"]["gatherUsageStats"] is False
    # No full gc.collect after each page run: it holds the GIL ~0.2 s per visit here.
    assert config["runner"]["postScriptGC"] is False


def test_the_shared_results_do_not_live_in_caches_a_visitor_can_clear():
    """Any client may send a clear_cache message; Streamlit then clears st.cache_data and
    st.cache_resource for everyone. The reports live in explorer.serving instead."""
    sources = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"),
               *(ROOT / "src/explorer/ui").glob("*.py")]
    users = [p.name for p in sources
             if re.search(r"cache_data|cache_resource", p.read_text().split('"""', 2)[-1])]
    assert users == []

    from streamlit.runtime import caching

    from explorer.serving import server

    config = ExperimentConfig(batch=2, samples=1, seed=99)
    report = server().report(config)
    caching.cache_data.clear()  # what AppSession does on a clear_cache BackMsg
    caching.cache_resource.clear()
    assert server().cache.get(config) is report
