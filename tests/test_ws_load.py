"""The websocket-level load benchmark at a small N, so it cannot rot (no timing asserted)."""


import benchmark_scripts
import pytest


@pytest.mark.slow
def test_three_simultaneous_websocket_sessions_each_get_charts(tmp_path):
    ws_load = benchmark_scripts.load("ws_load")
    result = ws_load.run_scenario("burst 3", ws_load.views("varied", 3), deadline_s=120,
                                  log_dir=tmp_path)
    assert result.errors == [] and result.ok == 3
    assert all(r.charts >= 1 and r.finished_s >= r.first_chart_s > 0 for r in result.results)
    assert len({r.query for r in result.results}) == 3  # three different views
    assert result.server_peak_rss_mb > 0 and result.server_cpu_s >= 0
    assert result.first_chart_p50_s <= result.first_chart_p95_s <= result.first_chart_max_s


@pytest.mark.slow
def test_a_full_queue_answers_busy_rather_than_an_error_box(tmp_path):
    """Heavy views with one run at a time and no queue: some visitors are told 'busy'."""
    ws_load = benchmark_scripts.load("ws_load")
    heavy = "batch=4096&samples=1&depth=3&seed={}"
    result = ws_load.run_scenario(
        "busy", [heavy.format(i) for i in range(3)], deadline_s=120, log_dir=tmp_path,
        env={"EXPLORER_MAX_CONCURRENT_RUNS": "1", "EXPLORER_MAX_QUEUED_RUNS": "0"})
    assert result.ok >= 1
    assert all(e.split(": ", 2)[1] == "busy" for e in result.errors), result.errors
    assert not any("error box" in e or "exception" in e for e in result.errors)


def test_bounds_are_checked():
    ws_load = benchmark_scripts.load("ws_load")
    with pytest.raises(ValueError, match="sessions=0: use 1 to"):
        ws_load.run_scenario("none", [])
    assert ws_load.views("forum", 2) == ["", ""]
    assert len(set(ws_load.views("varied", 40))) == 40


@pytest.mark.parametrize("argv, message", [
    (["--rate", "0"], "--rate 0: use a rate above 0 and at most 10 arrivals per second"),
    (["--rate", "50"], "--rate 50: use a rate above 0 and at most 10"),
    (["--rate", "2", "--duration", "0"], "--duration 0: use above 0 and at most 120 seconds"),
    (["--burst", "65"], "--burst 65: use 1 to 64"),
    (["--burst", "2", "--server-env", "NOEQUALS"], "--server-env 'NOEQUALS': write NAME=VALUE"),
    (["--burst", "2", "--server-env", "FOO-BAR=1"], "NAME has only letters, digits and _"),
    (["--burst", "2", "--deadline", "0"], "--deadline 0: use above 0 and at most 600 seconds"),
    (["--burst", "2", "--duration", "5"], "--duration applies to --rate"),
])
def test_bad_arguments_say_what_is_allowed(capsys, argv, message):
    ws_load = benchmark_scripts.load("ws_load")
    with pytest.raises(SystemExit) as stop:
        ws_load.main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_first_visitors_of_different_pages_on_a_fresh_server_see_no_exception(tmp_path):
    # Until app.py has run once, a page link runs that page's script directly, and the
    # first visitors' scripts import the package at the same moment, each on its own
    # thread. That once handed a thread a half-initialised module: an exception box for
    # every visitor (3 of 3 trials with "/" and "/forum" together).
    import asyncio
    from pathlib import Path

    from explorer.devserver import streamlit_server

    ws_load = benchmark_scripts.load("ws_load")
    pages = ["", "forum", "hidden-precision", ""]
    with streamlit_server(Path(ws_load.ROOT) / "app.py", log_path=tmp_path / "server.log"
                          ) as server:
        ws_url = server.base.replace("http://", "ws://") + "/_stcore/stream"

        async def everyone():
            return await asyncio.gather(*(ws_load.visit(ws_url, "", 180, page_name=page)
                                          for page in pages))

        results = asyncio.run(everyone())
    log = (tmp_path / "server.log").read_text()
    assert "partially initialized" not in log and "Traceback" not in log, log[-3000:]
    # A page link's first run hands over to app.py (the browser follows; this client only
    # sees the hand-over, without a chart): what must not appear is an exception.
    problems = [r.error for r in results
                if r.error and r.error != "the page finished without a chart"]
    assert problems == [], problems
    assert results[0].error is None and results[0].charts >= 1


@pytest.mark.slow
def test_a_link_streamlit_drops_whole_is_said_on_the_page(tmp_path):
    # Streamlit ignores a query string of more than 1000 parameters or 512 KiB as a whole:
    # the page would open on its defaults with no word why. It must say so, to that
    # visitor only.
    import asyncio
    from pathlib import Path

    from explorer.devserver import streamlit_server

    ws_load = benchmark_scripts.load("ws_load")
    too_many = "&".join(f"k{i}=1" for i in range(1001))
    at_the_limit = "&".join(f"k{i}=1" for i in range(1000))
    # (A browser cannot send this one: the web server answers HTTP 400 from ~125 KB. A
    # websocket client can, and Streamlit's 512 KiB check then drops it.)
    too_long = "activation=" + "a" * (513 * 1024)
    with streamlit_server(Path(ws_load.ROOT) / "app.py", log_path=tmp_path / "server.log"
                          ) as server:
        ws_url = server.base.replace("http://", "ws://") + "/_stcore/stream"

        def visit(query: str, page: str = ""):
            return asyncio.run(ws_load.visit(ws_url, query, 180, page_name=page))

        assert visit("").charts >= 1  # the first run after a restart imports the package
        dropped = visit(too_many)
        long = visit(too_long, "forum")
        kept = visit(at_the_limit)
        plain = visit("")
    said = [a for a in dropped.alerts if "This link was not applied" in a]
    assert len(said) == 1, dropped.alerts
    assert "it has 1,001 parameters, and Streamlit accepts at most 1,000" in said[0]
    assert dropped.charts >= 1 and dropped.error is None  # the defaults still run
    assert any("it has 525,323 characters, and Streamlit accepts at most 524,288" in a
               for a in long.alerts), long.alerts
    # At the limit the link is read, and its unknown keys get their one warning.
    assert not any("not applied" in a for a in kept.alerts)
    assert any("1000 URL parameters are unknown" in a for a in kept.alerts), kept.alerts
    assert not any("not applied" in a for a in plain.alerts)  # said once, to that visitor
