"""End to end in a real browser: `streamlit run app.py`, Debian's chromium via Playwright.

Skipped when playwright or chromium is missing, unless EXPLORER_REQUIRE_BROWSER=1 (CI),
in which case that is a failure. The server always runs on 127.0.0.1 at a free port and is
always stopped.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from explorer.devserver import streamlit_server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STARTUP_TIMEOUT = 60
PAGE_TIMEOUT_MS = 45_000

CHART_DATA_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(el => JSON.stringify((el.data || []).map(t => [t.name, t.y])))"""


def _missing(reason: str) -> None:
    if os.environ.get("EXPLORER_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (EXPLORER_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    try:
        with streamlit_server(ROOT / "app.py", log_path, STARTUP_TIMEOUT) as running:
            yield running.base
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def browser(sync_playwright):
    with sync_playwright() as p:
        chromium = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(browser, url: str, width: int = 1400, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot")
    _settle(page)
    return page


def _settle(page) -> None:
    page.wait_for_selector("[data-test-script-state='notRunning']")
    page.wait_for_timeout(300)


def test_a_sub_page_link_opens_inside_the_app(server, browser):
    # First visit after the server starts, straight to a sub-page with settings in its
    # link. Streamlit routes that visit by pages/ file names (its legacy mode): no "Page
    # not found" dialog, the app's own navigation and layout, and the link's settings.
    page = _open(browser, server + "/sweeps?x=depth%3D1%3A2&y=none&metric=max_abs_diff"
                                   "&batch=2&samples=2")
    body = page.inner_text("body")
    assert "Page not found" not in body and "does not seem to exist" not in body
    nav = page.locator("[data-testid='stTopNav']").inner_text()
    assert "The forum case" in nav and "How to read this" in nav and "app" not in nav.split()
    assert page.locator("[data-testid='stException']").count() == 0
    assert "x=depth%3D1%3A2" in page.url or "x=depth=1:2" in page.url, page.url
    assert page.get_by_role("textbox", name="X values").input_value() == "1:2"


def test_explorer_renders_and_follows_a_control(server, browser, tmp_path):
    started = time.time()
    page = _open(browser, server + "/")
    first_page_seconds = time.time() - started
    assert page.locator(".js-plotly-plot").count() == 6
    assert page.locator("[data-testid='stException']").count() == 0
    assert "Equivalent up to rounding" in page.inner_text("body")
    before = page.evaluate(CHART_DATA_JS)

    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.locator("[data-testid='stSelectbox']").filter(has_text="Activation").click()
    page.get_by_role("option", name="sigmoid", exact=True).click()
    page.wait_for_url(re.compile(r"[?&]activation=sigmoid"))
    _settle(page)
    page.wait_for_function(f"() => JSON.stringify(({CHART_DATA_JS})()) !== "
                           f"JSON.stringify({before!r})")
    assert page.evaluate(CHART_DATA_JS) != before
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(tmp_path / "explorer-sigmoid.png"), full_page=True)
    assert (tmp_path / "explorer-sigmoid.png").stat().st_size > 10_000

    # The URL reproduces the view in a fresh tab.
    again = _open(browser, page.url)
    assert again.evaluate(CHART_DATA_JS) == page.evaluate(CHART_DATA_JS)
    assert first_page_seconds < 45, first_page_seconds


def test_hostile_link_warns_in_the_browser(server, browser, tmp_path):
    page = _open(browser, server + "/?depth=-3&activation=%3Cimg%20src%3Dx%3E")
    alerts = page.locator("[data-testid='stAlert']").all_inner_texts()
    text = "\n".join(alerts)
    assert "depth=-3" in text and "<img src=x>" in text  # shown as text, not as an image
    assert page.locator("[data-testid='stMain'] img[src='x']").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator(".js-plotly-plot").count() == 6
    page.screenshot(path=str(tmp_path / "hostile.png"))


def test_navigation_keeps_settings_and_page_links_apply_theirs(server, browser):
    page = _open(browser, server + "/?activation=tanh")
    nav = page.locator("[data-testid='stTopNav']")
    nav.get_by_text("How to read this", exact=True).click()
    page.wait_for_url(re.compile(r"/how-to-read$"))
    _settle(page)
    nav.get_by_text("Explorer", exact=True).click()
    page.wait_for_url(re.compile(r"[?&]activation=tanh"))
    _settle(page)
    assert "ignored" not in page.inner_text("[data-testid='stMain']")
    nav.get_by_text("The forum case", exact=True).click()
    page.wait_for_url(re.compile(r"/forum$"))
    _settle(page)
    page.get_by_text("Open this in the Explorer (Emulation B = tf32)").click()
    page.wait_for_url(re.compile(r"/\?emulate_b=tf32$"))
    _settle(page)
    assert "exceeds the worst-case float32 rounding bound" in page.inner_text("body")
    assert page.locator("[data-testid='stException']").count() == 0


# Text that does not fit its box (an ellipsis or a hidden overflow), among visible elements.
# Any element with text, not only leaves: a card's label is clipped by a container whose
# only child is the paragraph holding the text.
CUT_OFF_JS = """() => [...document.querySelectorAll(
        '[data-testid=stMain] *, [data-testid=stSidebar] *')]
    .filter(e => {
        const cs = getComputedStyle(e), r = e.getBoundingClientRect();
        return e.innerText && e.innerText.trim() && r.width > 2 && r.height > 2 &&
            cs.visibility !== 'hidden' && e.scrollWidth > e.clientWidth + 1 &&
            (cs.textOverflow === 'ellipsis' || cs.overflowX === 'hidden');
    }).map(e => e.innerText.slice(0, 60))"""
# Per chart: its width and each legend entry's [text, left, right, top] inside it.
LEGENDS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => {
    const box = plot.getBoundingClientRect();
    return [box.width, [...plot.querySelectorAll('.legend .traces')].map(t => {
        const r = t.getBoundingClientRect();
        return [t.textContent, r.left - box.left, r.right - box.left, Math.round(r.top)];
    })];
})"""
MAIN_CONTROLS = ("Preset", "Activation", "Init constant c", "Depth (hidden layers)", "Device",
                 "Compute dtype", "A (blue)", "B (orange)")


def _cut_off_texts(page) -> list[str]:
    return page.evaluate(CUT_OFF_JS)


def _overlapping_legend_entries(page) -> list[tuple]:
    problems = []
    for width, entries in page.evaluate(LEGENDS_JS):
        for text, _, right, _ in entries:
            if right > width + 1:
                problems.append((text, "past the chart's edge"))
        for i, (text, left, right, top) in enumerate(entries):
            for other, o_left, _, o_top in entries[i + 1:]:
                if top == o_top and left < o_left < right - 1:
                    problems.append((text, f"runs into {other!r}"))
    return problems


@pytest.mark.parametrize("query", [
    "", "?preset=batch_invariance", "?preset=bf16_predictions", "?preset=realistic",
    # Both sides emulated: a settings line and a verdict of two lines each, a note under
    # one card only, and a sidebar caption with many changes.
    "?activation=tanh&depth=6&batch=32&samples=3&seed=42&emulate_a=bf16&emulate_b=tf32"
    "&impl_b=conv1d",
    # An audit's links: overflow (short card notes), a link warning above the title, a
    # compiled side with both emulated (a long title falls back to short names), and a
    # long widths list (the sidebar's layers caption stays within two lines).
    "?preset=half&depth=5",
    "?activation=tanh&zzz=1",
    "?impl_a=conv1d&impl_b=linear_compiled&emulate_a=fp16&emulate_b=bf16",
    "?emulate_b=tf32&depth=16&widths=" + ",".join(str(w) for w in range(100, 116)),
])
def test_projector_layout_at_1280x720(server, browser, tmp_path, query):
    # A meeting room projector: the verdict and the top of the first chart on the first
    # screen, the main controls above the sidebar's fold, and no label cut off; also for
    # the variant presets, whose titles are longer and whose cards say more.
    page = _open(browser, server + "/" + query, width=1280, height=720)
    page.screenshot(path=str(tmp_path / "projector.png"))
    _assert_fits_a_projector(page)
    if not query:
        verdict = page.locator("[data-testid='stMain'] [data-testid='stAlert']").first
        assert "Equivalent up to rounding" in verdict.inner_text()
        # Pinning adds the Unpin button and its caption above the charts: still on screen.
        page.get_by_role("button", name="Pin this run").click()
        page.wait_for_url(re.compile(r"[?&]pin="))
        _settle(page)
        assert "Dashed: pinned, these very settings." in page.inner_text("body")
        _assert_fits_a_projector(page)


@pytest.mark.parametrize("query", [
    "?emulate_b=tf32&pin=preset%3Dseed",
    # Several settings differ, one of them a long widths list: the caption stays short.
    "?activation=tanh&depth=6&widths=512,512,512,512,512,512&batch=4&init_constant=0.5"
    "&pin=preset%3Dseed%26activation%3Dsigmoid",
    # Pinned values of 0 (the note must not be cut off), the decisive dtype named first.
    "?emulate_b=tf32&pin=activation%3Dsigmoid%26init_constant%3D0.001%26depth%3D5"
    "%26dtype%3Dbfloat16%26seed%3D7%26batch%3D32",
    # Every variant at once: compiled, rows per call, threads, both emulated, and a pin.
    "?impl_a=linear_compiled&impl_b=conv1d&emulate_a=bf16&emulate_b=tf32&rows_per_call_a=3"
    "&threads_b=1&pin=preset%3Dseed%26dtype%3Dbfloat16",
    # Everything at once: two-line settings line and verdict, a pin, a long widths list.
    "?activation=tanh&depth=6&batch=32&samples=3&seed=42&widths=512,512,512,512,512,1024"
    "&emulate_a=bf16&emulate_b=tf32&impl_b=conv1d&init_constant=0.002"
    "&pin=preset%3Dseed%26dtype%3Dbfloat16",
])
def test_projector_layout_against_a_pin(server, browser, query):
    # A changed setting against the pin: every card says how it compares, the caption says
    # what the dashed run is, and the first chart still starts on the first screen.
    page = _open(browser, server + "/" + query, width=1280, height=720)
    assert page.locator("[data-testid='stMetricDelta']").count() >= 5
    assert "Dashed: pinned, with " in page.inner_text("body")
    if "dtype%3Dbfloat16" in query:
        assert "Dashed: pinned, with dtype bfloat16," in page.inner_text("body")
    _assert_fits_a_projector(page)


def _assert_fits_a_projector(page) -> None:
    chart_top = page.evaluate("Math.min(...[...document.querySelectorAll('.js-plotly-plot')]"
                              ".map(e => e.getBoundingClientRect().top))")
    assert chart_top < 600, chart_top
    verdict = page.locator("[data-testid='stMain'] [data-testid='stAlert']").first
    box = verdict.bounding_box()
    assert box and box["y"] + box["height"] < 720
    sidebar = page.locator("[data-testid='stSidebar']")
    for label in MAIN_CONTROLS:
        widget = sidebar.locator("[data-testid='stWidgetLabel']", has_text=label).first
        box = widget.bounding_box()
        assert box and box["y"] + box["height"] + 45 < 720, (label, box)  # label and box
    assert not _cut_off_texts(page), _cut_off_texts(page)
    assert not _overlapping_legend_entries(page), _overlapping_legend_entries(page)


def test_a_running_sweep_can_be_cancelled(server, browser):
    # A sweep long enough to catch (24 cells of 4096 rows): Cancel stops it, and the cells
    # finished so far stay on screen with a note; nothing else starts on its own.
    query = ("x=init-constant%3D1e-4%3A10%3A6&y=activation%3Delu%2Csigmoid%2Ctanh%2Crelu"
             "&metric=max_rel_diff&batch=256&samples=16")
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(f"{server}/sweeps?{query}")
    page.wait_for_selector("text=/\\d+\\/24 cells/")  # running, at least one cell done
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("text=/cancelled after \\d+ of 24 cells/")
    _settle(page)
    text = page.inner_text("[data-testid='stMain']")
    done = int(re.search(r"cancelled after (\d+) of 24 cells", text).group(1))
    assert 1 <= done < 24
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 2")
    assert page.locator("[data-testid='stException']").count() == 0
    # Run resumes: the finished cells come from the cache, so the count starts past them.
    page.get_by_role("button", name="Run").click()
    page.wait_for_function(
        f"(() => {{ const m = document.body.innerText.match(/(\\d+)\\/24 cells,/);"
        f" return m && Number(m[1]) > {done}; }})()")
    page.get_by_role("button", name="Cancel").click()  # keep the test short
    page.wait_for_function(
        f"(() => {{ const m = document.body.innerText.match(/cancelled after (\\d+) of 24/);"
        f" return m && Number(m[1]) > {done}; }})()")
    _settle(page)
    assert page.locator("[data-testid='stException']").count() == 0
