"""The rerunnable load test at a small N: concurrent browser sessions, one server."""

import os
import shutil

import benchmark_scripts
import pytest

pytestmark = pytest.mark.browser


def _require_browser():
    reason = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "playwright is not installed"
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        reason = "chromium is not installed (apt-get install chromium)"
    if reason:
        if os.environ.get("EXPLORER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {reason}")
        pytest.skip(reason)


def test_three_concurrent_sessions_with_different_settings_all_render(tmp_path):
    _require_browser()
    load_test = benchmark_scripts.load("load_test")
    summary = load_test.run_load_test(3, timeout_s=120, log_dir=tmp_path)
    failures = [r for r in summary["results"] if r["error"] or not r["charts"]]
    assert not failures, failures
    assert summary["rendered_ok"] == 3
    assert len({r["url"] for r in summary["results"]}) == 3  # different settings each
    assert summary["server_rss_after_mb"] > 0
    assert summary["first_chart_p50_s"] <= summary["first_chart_p95_s"]


def test_session_count_is_bounded():
    load_test = benchmark_scripts.load("load_test")
    with pytest.raises(ValueError, match="sessions=500: use 1 to 50"):
        load_test.run_load_test(500)
