"""AppTest: every page renders, every control changes the result, the URL round-trips,
and hostile links end in warnings and defaults, never a traceback."""

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import preset, run
from explorer.charts import fmt
from explorer.devices import unavailable_devices
from explorer.export import expected_output

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 90


def fresh(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(markdown: str) -> str:
    """Markdown with its backslash escapes removed: the text a reader sees."""
    return re.sub(r"\\(.)", r"\1", markdown)


def result_text(at: AppTest) -> str:
    """Everything on the page that states a result: verdict, cards, captions, environment."""
    parts = [box.value for box in (*at.info, *at.success, *at.warning, *at.error)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    parts += [c.value for c in at.caption] + [m.value for m in at.markdown]
    return plain("\n".join(parts))


def link_warnings(at: AppTest) -> str:
    return "\n".join(plain(w.value) for w in at.warning if "ignored" in plain(w.value)
                     or "names no tap" in plain(w.value))


def plotly_specs(at: AppTest) -> list[str]:
    return [el.proto.spec for el in at.get("plotly_chart")]


def cards(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def forum_cards() -> list[tuple[str, str]]:
    """The forum case's cards on a fresh page of this machine (the numbers themselves
    depend on the CPU's kernels, so tests compare against this, not against constants)."""
    global _FORUM_CARDS
    if _FORUM_CARDS is None:
        _FORUM_CARDS = cards(fresh())
    return _FORUM_CARDS


_FORUM_CARDS = None


def widget(at: AppTest, kind: str, key: str):
    return getattr(at.sidebar, kind)(key=key)


@pytest.fixture(scope="module")
def explorer_page() -> AppTest:
    return fresh()


def test_explorer_opens_on_the_forum_case(explorer_page, forum):
    at = explorer_page
    text = result_text(at)
    assert "Equivalent up to rounding" in text
    # The largest difference is at the logits; plain torch on this machine says how big.
    assert f"Max |A - B|={fmt(forum.logits_max_abs_diff, 2)}" in text
    assert len(plotly_specs(at)) == 6
    assert at.query_params == {}
    assert not at.warning and not at.error


def test_sidebar_explains_missing_cuda(explorer_page):
    if "cuda" not in unavailable_devices():
        pytest.skip("this machine has CUDA")
    captions = " ".join(c.value for c in explorer_page.sidebar.caption)
    assert "No CUDA here" in captions
    assert widget(explorer_page, "selectbox", "ex.device").options == ["cpu"]


def test_every_control_has_help():
    at = fresh()
    at.sidebar.expander[0]  # the Advanced section exists
    kinds = ("selectbox", "select_slider", "number_input", "slider", "text_input")
    for kind in kinds:
        for w in getattr(at.sidebar, kind):
            assert w.help, (kind, w.key)


# (widget kind, key, new value, URL parameter and value it must produce)
CONTROLS = [
    ("selectbox", "ex.preset", "squashed", ("preset", "squashed")),
    ("selectbox", "ex.activation", "sigmoid", ("activation", "sigmoid")),
    ("select_slider", "ex.init_constant", 0.001, ("init_constant", "0.001")),
    ("number_input", "ex.init_constant_exact", 0.003, ("init_constant", "0.003")),
    ("slider", "ex.depth", 2, ("depth", "2")),
    ("selectbox", "ex.dtype", "float64", ("dtype", "float64")),
    ("selectbox", "ex.impl_a", "conv2d", ("impl_a", "conv2d")),
    ("selectbox", "ex.impl_b", "linear", ("impl_b", "linear")),
    ("selectbox", "ex.emulate_a", "bf16", ("emulate_a", "bf16")),
    ("selectbox", "ex.emulate_b", "tf32", ("emulate_b", "tf32")),
    ("selectbox", "ex.init_scheme", "torch_default", ("init_scheme", "torch_default")),
    ("selectbox", "ex.input_distribution", "integers", ("input_distribution", "integers")),
    ("number_input", "ex.input_dim", 128, ("input_dim", "128")),
    ("text_input", "ex.widths", "32,64,128", ("widths", "32,64,128")),
    ("number_input", "ex.num_classes", 8, ("num_classes", "8")),
    ("number_input", "ex.batch", 8, ("batch", "8")),
    ("number_input", "ex.samples", 3, ("samples", "3")),
    ("number_input", "ex.seed", 1, ("seed", "1")),
    ("number_input", "ex.threads", 1, ("threads", "1")),
]
# A thread count may or may not change the summation order; the run says what it used.
SAME_NUMBERS_ALLOWED = {"ex.threads": "1 threads"}


@pytest.mark.parametrize("kind,key,value,url", CONTROLS, ids=[c[1] for c in CONTROLS])
def test_each_control_changes_the_result_and_the_url(kind, key, value, url):
    at = fresh()
    before = result_text(at)
    charts_before = plotly_specs(at)
    control = widget(at, kind, key)
    if kind == "text_input":
        control.input(value)
    else:
        control.set_value(value)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert result_text(at) != before
    if key in SAME_NUMBERS_ALLOWED:
        assert SAME_NUMBERS_ALLOWED[key] in result_text(at)
    else:
        assert plotly_specs(at) != charts_before
    name, text = url
    assert at.query_params.get(name) == text, at.query_params


def test_init_constant_inputs_follow_each_other():
    at = fresh()
    widget(at, "select_slider", "ex.init_constant").set_value(0.02).run()
    assert widget(at, "number_input", "ex.init_constant_exact").value == 0.02
    widget(at, "number_input", "ex.init_constant_exact").set_value(0.0037).run()
    slider = widget(at, "select_slider", "ex.init_constant")
    assert slider.value == 0.0037 and "0.0037" in slider.options


def test_preset_resets_every_setting():
    at = fresh()
    widget(at, "slider", "ex.depth").set_value(5).run()
    widget(at, "selectbox", "ex.preset").set_value("tf32_conv").run()
    assert widget(at, "slider", "ex.depth").value == 3
    assert widget(at, "selectbox", "ex.emulate_b").value == "tf32"
    assert at.query_params == {"preset": "tf32_conv"}
    assert "exceeds the worst-case float32 rounding bound" in result_text(at)


def test_url_state_round_trips():
    query = {"activation": "tanh", "init_constant": "0.05", "depth": "4", "emulate_b": "tf32",
             "taps": "pre", "hist": "L2-pre", "seed": "7"}
    at = fresh(query)
    assert not link_warnings(at)
    assert widget(at, "selectbox", "ex.activation").value == "tanh"
    assert widget(at, "select_slider", "ex.init_constant").value == 0.05
    assert widget(at, "slider", "ex.depth").value == 4
    assert at.radio(key="ex.taps").value == "pre"
    assert at.selectbox(key="ex.hist").value == "L2-pre"
    assert at.query_params == query
    # The same link in a new session shows the same numbers.
    assert result_text(fresh(query)) == result_text(at)
    # A change by hand updates the link.
    at.radio(key="ex.taps").set_value("post").run()
    assert at.query_params == {**query, "taps": "post"}


HOSTILE = {
    "depth": "-3",
    "init_constant": "nan",
    "device": "quantum",
    "activation": "<img src=x onerror=alert(1)>",
    "dtype": "float128",
    "taps": "sideways",
    "hist": "L99-pre",
    "pin": "depth=zz",
    "rm -rf": "1",
}


def test_hostile_url_warns_and_uses_defaults():
    at = fresh(HOSTILE)
    raw = "\n".join(w.value for w in at.warning)
    warnings = link_warnings(at)
    for fragment in ("depth=-3", "init_constant=nan", "'quantum'", "'float128'", "'sideways'",
                     "L99-pre", "'zz'", "'rm -rf' is unknown",
                     "Using depth=3 instead", "<img src=x onerror=alert(1)>",
                     "no run is pinned"):
        assert fragment in warnings, fragment
    assert "<img" in plain(raw)
    assert not re.search(r"(?<!\\)<", raw)  # every < escaped: shown as text, never as HTML
    seed_report = run(preset("seed"))
    assert seed_report.verdict.headline in result_text(at)
    assert widget(at, "slider", "ex.depth").value == 3
    assert len(plotly_specs(at)) == 6
    # Nothing is pinned, and the link is rewritten to the view actually shown.
    assert "pinned" not in "".join(plotly_specs(at)).lower()
    assert at.query_params == {}


def test_warnings_stay_until_the_view_is_changed():
    at = fresh({"depth": "-3"})
    assert "depth=-3" in link_warnings(at)
    at.run()
    assert "depth=-3" in link_warnings(at)
    widget(at, "selectbox", "ex.activation").set_value("relu").run()
    assert not link_warnings(at)


def test_settings_that_cannot_run_show_an_error_and_keep_the_last_run():
    at = fresh()
    widget(at, "text_input", "ex.widths").input("64,128").run()
    assert any("give exactly one width per hidden layer (depth=3)" in plain(e.value)
               and "last settings that ran" in plain(e.value) for e in at.error)
    assert len(plotly_specs(at)) == 6  # the last good run is still shown
    assert widget(at, "text_input", "ex.widths").value == "64,128"  # kept as typed
    assert at.query_params == {"widths": "64,128"}


def test_batch_and_samples_are_never_clamped_by_the_budget():
    from explorer import limits
    from explorer.config import MAX_ROWS

    at = fresh()
    batch = widget(at, "number_input", "ex.batch")
    assert batch.max == MAX_ROWS  # the field's own range, not the budget's
    # About 5.4M parameters: a few dozen rows fit (parameters cost 25-40 bytes each, a later
    # layer's 20-40 more while it is measured; see limits.MemoryModel).
    widget(at, "number_input", "ex.input_dim").set_value(1024).run()
    widget(at, "text_input", "ex.widths").input("1280,1600,1280").run()
    allowed = limits.max_rows((1024, 1280, 1600, 1280, 4), "float32", samples=5)
    assert 1 < allowed < 80  # the forum's 16 x 5 rows no longer fit
    assert any(f"allows up to {allowed:,} rows" in c.value for c in at.caption)
    errors = " ".join(plain(e.value) for e in at.error)
    assert "budget" in errors and "Lower batch*samples (rows), the widths or the depth" in errors
    assert (widget(at, "number_input", "ex.batch").value,
            widget(at, "number_input", "ex.samples").value) == (16, 5)


def test_the_row_limit_caption_counts_tf32_rounding():
    # TF32 rounding of a wide input costs more per element than the plain input floor: the
    # caption's limit must be the one the run check applies with the emulation on.
    from explorer import limits

    at = fresh()
    widget(at, "slider", "ex.depth").set_value(1).run()
    widget(at, "number_input", "ex.input_dim").set_value(4096).run()
    widget(at, "text_input", "ex.widths").input("16").run()
    plain = limits.max_rows((4096, 16, 4), "float32", samples=5)
    assert any(f"allows up to {plain:,} rows" in c.value for c in at.caption)
    widget(at, "selectbox", "ex.emulate_b").set_value("tf32").run()
    rounded = limits.max_rows((4096, 16, 4), "float32", samples=5, tf32_emulated=True)
    assert rounded < plain
    assert any(f"allows up to {rounded:,} rows" in c.value for c in at.caption)


def test_an_over_budget_setting_and_back_loses_nothing():
    # The forum case, then widths far over the budget, then back: batch, samples and every
    # other setting are as they were, and the forum numbers come back.
    at = fresh()
    widget(at, "text_input", "ex.widths").input("1024,4096,4096").run()
    errors = " ".join(plain(e.value) for e in at.error)
    # ~21M parameters: over the budget at one row, so it says what can help, not the rows.
    assert "These settings cannot run" in errors and "even for one row" in errors
    assert "Lower the widths or the depth" in errors and "batch" not in errors
    assert any("allows no rows for these layer sizes: lower the widths or the depth"
               in c.value for c in at.caption)
    assert (widget(at, "number_input", "ex.batch").value,
            widget(at, "number_input", "ex.samples").value) == (16, 5)
    assert at.query_params == {"widths": "1024,4096,4096"}
    widget(at, "text_input", "ex.widths").input("").run()
    assert not at.error
    assert cards(at) == forum_cards()
    assert at.query_params == {}


def test_depth_slider_offers_only_depths_that_can_run():
    from explorer import ExperimentConfig

    def runs(depth: int) -> bool:
        try:
            ExperimentConfig(depth=depth)
        except ValueError:
            return False
        return True

    deepest = max(d for d in range(1, 17) if runs(d))
    at = fresh()
    slider = widget(at, "slider", "ex.depth")
    assert slider.max == deepest < 16
    captions = " ".join(plain(c.value) for c in at.sidebar.caption)
    assert f"budget: depth <= {deepest} at 80 rows" in captions
    # Narrow custom widths can go deeper; they follow the depth.
    widget(at, "text_input", "ex.widths").input("16,16,16").run()
    assert widget(at, "slider", "ex.depth").max == 16
    assert widget(at, "slider", "ex.depth").value == 3  # a new range keeps the value
    widget(at, "slider", "ex.depth").set_value(16).run()
    assert not at.error
    assert widget(at, "text_input", "ex.widths").value == ",".join(["16"] * 16)
    widget(at, "slider", "ex.depth").set_value(2).run()
    assert widget(at, "text_input", "ex.widths").value == "16,16"


def test_an_over_budget_link_opens_as_shared_with_the_reason():
    at = fresh({"depth": "16"})
    assert widget(at, "slider", "ex.depth").value == 16  # not clamped
    assert not link_warnings(at)  # depth=16 is a fine value; together they cannot run
    errors = " ".join(plain(e.value) for e in at.error)
    assert "budget" in errors and "EXPLORER_MAX_" in errors
    assert not plotly_specs(at)  # nothing ran yet, so no result to show
    assert at.query_params == {"depth": "16"}
    widget(at, "slider", "ex.depth").set_value(3).run()
    assert not at.error and cards(at) == forum_cards()


def test_the_apps_own_share_link_opens_as_shared():
    at = fresh()
    widget(at, "number_input", "ex.batch").set_value(2000).run()
    widget(at, "number_input", "ex.samples").set_value(1).run()
    assert not at.error
    link = dict(at.query_params)
    assert link == {"batch": "2000", "samples": "1"}
    again = fresh(link)
    assert not at.warning and not again.warning and not again.error
    assert (widget(again, "number_input", "ex.batch").value,
            widget(again, "number_input", "ex.samples").value) == (2000, 1)
    assert result_text(again).split("Computed in")[0] == result_text(at).split("Computed in")[0]


def test_pin_overlays_a_dashed_baseline_until_unpinned():
    at = fresh()
    at.button[0].click().run()  # "Pin this run"
    assert at.query_params.get("pin") == "preset=seed"
    widget(at, "selectbox", "ex.emulate_b").set_value("tf32").run()
    specs = "".join(plotly_specs(at))
    assert "pinned: max |A-B|" in specs and '"dash":"dash"' in specs.replace(" ", "")
    # Each card says how this run compares: the ratio to the pinned value.
    deltas = {m.label: m.proto.delta for m in at.metric}
    assert re.fullmatch(r"x[\d,.e+-]+", deltas["Max |A - B|"]), deltas
    at.button[0].click().run()  # "Unpin"
    assert "pin" not in at.query_params
    assert "pinned:" not in "".join(plotly_specs(at))


def test_downloads_and_script_are_offered(explorer_page):
    labels = [b.proto.label for b in explorer_page.get("download_button")]
    assert labels == ["CSV (one row per tap)", "JSON (full report)", "Charts (standalone HTML)",
                      "Reproduce in Python (.py)"]
    code = [c.value for c in explorer_page.code]
    assert any("class Conv2dNet" in c for c in code)
    assert expected_output(run(preset("seed"))).rstrip() in code


def test_every_page_url_is_its_file_name_and_enters_through_app():
    # Until app.py has called st.navigation once, Streamlit routes the first visitor after a
    # restart by the file names in pages/: a URL that is no file name gets a "Page not
    # found" dialog. So no page may set a url_path of its own, every page file is listed,
    # and each starts by sending a bare (legacy-routed) run through app.py.
    source = Path(APP).read_text()
    assert "url_path" not in source
    listed = set(re.findall(r'st\.Page\("(pages/[\w-]+\.py)"', source))
    files = {f"pages/{p.name}" for p in (Path(APP).parent / "pages").glob("*.py")}
    assert listed == files and len(files) >= 5
    for page in files:
        first_call = next(line for line in (Path(APP).parent / page).read_text().splitlines()
                          if line.startswith("require_app_entry("))
        assert first_call.startswith(f'require_app_entry("{page}")')


def test_a_bare_page_run_reopens_through_app_with_the_links_settings():
    # What the first visitor after a restart gets: Streamlit runs pages/sweeps.py bare with
    # the link's query string. The page must come up inside the app (navigation, shared
    # sidebar) with the link's settings, not the defaults.
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"x": "depth=1:2", "y": "none", "batch": "2", "samples": "2",
                            "metric": "max_abs_diff"})
    at.switch_page("pages/sweeps.py").run()
    assert not at.exception
    assert [t.value for t in at.text_input if t.label == "X values"] == ["1:2"]
    assert at.query_params["x"] == "depth=1:2" and at.query_params["batch"] == "2"


def test_forum_case_page(forum):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/forum.py").run()
    assert not at.exception, [e.value for e in at.exception]
    code = [c.value for c in at.code]
    assert any("class LinearNet" in c and "class Conv2dNet" in c for c in code)
    assert expected_output(run(preset("seed"))).rstrip() in code
    text = result_text(at)
    # Numbers that depend on summation order: from plain torch in this run (condition) or
    # the library's own report of the same settings (what the page must show).
    assert f"condition number reaches {fmt(forum.first_layer_condition_max)}" in text
    tf32 = run(preset("tf32_conv"))
    assert f"reaches {fmt(tf32.summary.max_bound_ratio)}x the float32 bound" in text
    assert "on this machine" in text and "thread count" in text
    assert "Bit-identical" in text
    assert len(plotly_specs(at)) == 1
    links = [link.proto.page for link in at.get("page_link")]
    assert links and not at.error


def test_how_to_read_page_lists_every_metric():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/how-to-read.py").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    for metric in ("absolute difference", "relative difference", "ULP distance",
                   "bits of error", "error vs reference", "magnitude", "headroom",
                   "rounding bound", "bound ratio", "condition number", "local vs propagated"):
        assert f"| {metric} |" in text, metric


def test_returning_to_the_explorer_keeps_the_settings():
    at = fresh()
    widget(at, "selectbox", "ex.activation").set_value("tanh").run()
    at.switch_page("pages/how-to-read.py").run()
    at.query_params.clear()  # a browser clears the link on a page switch
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    assert widget(at, "selectbox", "ex.activation").value == "tanh"
    assert at.query_params == {"activation": "tanh"}


def test_presets_say_what_they_show():
    at = fresh()
    widget(at, "selectbox", "ex.preset").set_value("exact").run()
    assert "Bit-identical" in result_text(at)
    widget(at, "selectbox", "ex.preset").set_value("half").run()
    assert not at.exception
    assert any("Non-finite values" in plain(e.value) for e in at.error)
    assert len(plotly_specs(at)) == 6


def test_cuda_controls_appear_only_on_cuda(monkeypatch):
    # Pretend this machine lists a GPU: the CUDA switches appear, and the run that then
    # cannot find one ends in a clear error, not a traceback.
    import torch

    import explorer.devices
    import explorer.ui.sidebar

    def fake():
        return ["cpu", "cuda:0"]

    monkeypatch.setattr(explorer.ui.sidebar, "available_devices", fake)
    # URL parsing checks availability through devices.resolve_device; the run itself
    # (compare.run's own reference) still finds no GPU.
    monkeypatch.setattr(explorer.devices, "resolve_device", lambda name: torch.device(name))
    at = fresh()
    assert not [w for w in at.sidebar.selectbox if w.key == "ex.conv_tf32"]
    widget(at, "selectbox", "ex.device").set_value("cuda:0").run()
    assert not at.exception
    keys = {w.key for w in (*at.sidebar.selectbox, *at.sidebar.checkbox)}
    assert {"ex.conv_tf32", "ex.matmul_tf32", "ex.cudnn_deterministic",
            "ex.cudnn_benchmark"} <= keys
    widget(at, "selectbox", "ex.conv_tf32").set_value("off").run()
    assert at.query_params.get("conv_tf32") == "off"
    if "cuda" in unavailable_devices():
        assert any("could not be made" in plain(e.value) for e in at.error)


def test_moving_depth_warns_about_no_link_and_the_histogram_follows_the_logits():
    at = fresh()
    assert at.selectbox(key="ex.hist").value == "L4-pre"  # the logits at depth 3
    widget(at, "slider", "ex.depth").set_value(4).run()
    assert not at.warning and not at.error
    assert at.selectbox(key="ex.hist").value == "L5-pre"
    widget(at, "slider", "ex.depth").set_value(2).run()
    assert not at.warning and not at.error
    assert at.selectbox(key="ex.hist").value == "L3-pre"
    assert "hist" not in at.query_params


def test_a_chosen_histogram_tap_stays_while_it_exists():
    at = fresh()
    at.selectbox(key="ex.hist").set_value("L2-post").run()
    assert at.query_params.get("hist") == "L2-post"
    widget(at, "slider", "ex.depth").set_value(5).run()
    assert at.selectbox(key="ex.hist").value == "L2-post"
    assert any("Bits of error at L2 post" in spec for spec in plotly_specs(at))
    widget(at, "slider", "ex.depth").set_value(1).run()  # L2 post is gone
    assert at.selectbox(key="ex.hist").value == "L2-pre"
    assert any("L2 post does not exist at depth 1" in plain(c.value) for c in at.caption)
    assert not link_warnings(at)


@pytest.mark.parametrize("typed", [0.0, 1000.0, -1000.0, 1e-9])
def test_exact_init_refuses_values_out_of_range_with_a_message(typed):
    at = fresh()
    before = cards(at)
    widget(at, "number_input", "ex.init_constant_exact").set_value(typed).run()
    assert not at.exception
    errors = " ".join(plain(e.value) for e in at.error)
    assert f"Init constant {typed!r} was not applied" in errors
    assert "magnitude must be a finite number from 1e-06 to 100" in errors
    assert "The run uses c = 1 (the slider)" in errors
    assert widget(at, "number_input", "ex.init_constant_exact").value == typed  # as typed
    assert widget(at, "select_slider", "ex.init_constant").value == 1.0
    assert "init_constant" not in at.query_params
    assert cards(at) == before  # still the forum case


def test_exact_init_accepts_a_negative_constant_and_runs_it():
    at = fresh()
    widget(at, "number_input", "ex.init_constant_exact").set_value(-0.5).run()
    assert not at.error
    assert widget(at, "select_slider", "ex.init_constant").value == -0.5
    assert at.query_params.get("init_constant") == "-0.5"
    assert "init -0.5" in result_text(at)


def test_preset_caption_says_modified_and_reset_restores_the_preset():
    at = fresh()
    assert not any("Modified" in plain(c.value) for c in at.sidebar.caption)
    assert "ELU, every weight and bias = 1" in widget(at, "selectbox", "ex.preset").help
    widget(at, "selectbox", "ex.activation").set_value("tanh").run()
    widget(at, "slider", "ex.depth").set_value(4).run()
    captions = [plain(c.value) for c in at.sidebar.caption]
    assert "Modified: activation tanh, depth 4" in captions
    # More changes: fewer named, the rest counted, in one sidebar line; all in the help.
    widget(at, "text_input", "ex.widths").set_value("512,512,512,512").run()
    widget(at, "number_input", "ex.seed").set_value(7).run()
    caption = next(c for c in at.sidebar.caption if "Modified" in plain(c.value))
    assert plain(caption.value) == "Modified: 4 settings"
    assert ("activation tanh, depth 4, widths 512 x4, seed 7. Reset (↺) restores the preset."
            in plain(caption.help))
    at.sidebar.button(key="ex.reset").click().run()
    assert widget(at, "selectbox", "ex.activation").value == "elu"
    assert widget(at, "slider", "ex.depth").value == 3
    assert at.query_params == {}
    assert cards(at) == forum_cards()
    # Reset works for a preset that is already chosen, too.
    widget(at, "selectbox", "ex.preset").set_value("squashed").run()
    widget(at, "selectbox", "ex.activation").set_value("relu").run()
    at.sidebar.button(key="ex.reset").click().run()
    assert widget(at, "selectbox", "ex.activation").value == "sigmoid"
    assert at.query_params == {"preset": "squashed"}


def test_hundreds_of_unknown_link_keys_give_one_warning():
    at = fresh({f"k{i}": "1" for i in range(300)})
    assert len(at.warning) == 1
    assert plain(at.warning[0].value).startswith(
        "Link settings ignored: 300 URL parameters are unknown: ")  # not "setting"
    assert len(plotly_specs(at)) == 6
    one = fresh({"zzz": "1"})
    assert plain(one.warning[0].value).startswith("Link setting ignored: 'zzz' is unknown")


def test_a_bad_pin_in_a_link_pins_nothing():
    at = fresh({"pin": "depth=zz"})
    assert "no run is pinned" in link_warnings(at)
    labels = [b.proto.label for b in at.button]
    assert "Pin this run" in labels and "Unpin" not in labels
    assert "pinned" not in "".join(plotly_specs(at)).lower()
    assert "pin" not in at.query_params


def test_overflow_run_never_reads_as_perfect():
    """float16, depth 5: both sides overflow alike from layer 3, so the all-tap maxima are 0
    (equal infinities). The cards must show the finite taps and where the overflow is."""
    at = fresh({"preset": "half", "depth": "5"})
    report = run(preset("half", depth=5))
    s = report.summary
    where = f"L{s.first_nonfinite_layer} {s.first_nonfinite_stage}"
    shown = {m.label: (m.value, m.proto.delta) for m in at.metric}
    # The scope sits under the value, short (a longer note is cut off at 1280 px); where
    # the overflow starts is in the Closer card's help and in the verdict.
    assert shown["Max |A - B|"][1] == "finite taps"
    assert shown["Closer"] == ("n/a", "inf/NaN")
    closer = next(m for m in at.metric if m.label == "Closer")
    assert f"n/a: A or B has inf/NaN from {where}." in closer.proto.help
    assert "tie" not in [value for value, _ in shown.values()]
    text = result_text(at)
    assert f"inf/NaN from {where}" in text
    assert "overflow to inf at layer 3 (pre)" in text
    assert at.error  # the verdict box is red


def test_card_notes_against_a_pin_never_compare_what_cannot_be_compared():
    # A pinned run with inf/NaN: its all-tap maxima are 0 (equal infinities), so "pinned: 0"
    # would be false; its own cards say n/a.
    at = fresh({"pin": "preset=half&depth=5"})
    notes = {m.label: m.proto.delta for m in at.metric if m.label != "Flips"}
    assert set(notes.values()) == {"pinned: n/a"}, notes
    # ULPs of bfloat16 and float32 are different units: no ratio between them; the other
    # cards (absolute, relative, share of each dtype's own bound) still compare.
    at = fresh({"dtype": "bfloat16", "pin": "preset=seed"})
    notes = {m.label: m.proto.delta for m in at.metric}
    assert notes["Max ULPs"] == "other dtype"
    assert notes["Max |A - B|"] != "other dtype" and notes["Max |A - B|"]


def test_worst_elements_table_follows_the_histogram_tap():
    from explorer.elements import worst_elements

    at = fresh()
    table = at.dataframe[0].value
    expected = worst_elements(preset("seed"), 4, "pre", k=10, per_row=True).to_frame()
    assert list(table["ulps"]) == list(expected["ulps"])
    assert list(table["a"]) == list(expected["a"])
    assert any("input rows that differ most at L4 pre" in plain(m.value) for m in at.markdown)
    at.selectbox(key="ex.hist").set_value("L1-pre").run()
    table = at.dataframe[0].value
    expected = worst_elements(preset("seed"), 1, "pre", k=10, per_row=True).to_frame()
    assert list(table["row"]) == [f"{b}, {s}" for b, s in zip(expected["batch"],
                                                              expected["sample"])]
    assert table["condition"].iloc[0] == expected["condition"].iloc[0]
    assert any("differ most at L1 pre" in plain(m.value) for m in at.markdown)
    assert at.query_params.get("hist") == "L1-pre"
    import json

    columns = json.loads(at.dataframe[0].proto.columns)  # every column explains itself
    assert set(table.columns) <= set(columns)
    assert all(columns[name].get("help") for name in table.columns), columns


def test_hidden_precision_page_shows_real_beside_emulated():
    from explorer import machine

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/hidden-precision.py").run()
    assert not at.exception, [e.value for e in at.exception]
    text = result_text(at)
    honoured = machine.cpu_bf16_honoured()
    if honoured["matmul"] or honoured["conv"]:
        assert "really computes in bfloat16 when asked" in text
    else:
        assert "ignores oneDNN's bf16 setting" in text
    emulated = run(preset("seed", emulate_a="bf16"))
    assert emulated.summary.a_effective_bits == 8
    assert "operands rounded to bf16 (emulated): 8 (bfloat16)" in text
    assert len(plotly_specs(at)) == 1
    frame = at.dataframe[0].value
    assert set(frame["run"]) == {"float32 (as is)", "oneDNN bf16 (real)",
                                 "operands rounded to bf16 (emulated)"}


def test_cpu_precision_switches_are_in_the_sidebar_and_the_link():
    from explorer import machine

    at = fresh({"cpu_matmul_precision": "bf16"})
    box = widget(at, "selectbox", "ex.cpu_matmul_precision")
    assert box.value == "bf16" and "oneDNN" in box.help
    assert widget(at, "selectbox", "ex.cpu_conv_precision").value == "default"
    text = result_text(at)
    if not machine.cpu_bf16_honoured()["matmul"]:
        assert "This CPU keeps float32 when asked for bf16" in text
        assert "computes it in float32 anyway" in text  # the verdict says so too
    widget(at, "selectbox", "ex.cpu_conv_precision").set_value("ieee").run()
    assert not at.exception
    assert at.query_params.get("cpu_conv_precision") in ("ieee", ["ieee"])
    assert at.query_params.get("cpu_matmul_precision") in ("bf16", ["bf16"])


def test_the_depth_caption_states_the_budgets_own_limit():
    # An over-budget link keeps its depth on the slider, but the caption must not claim
    # that depth fits: it names the deepest network the budget allows at these rows.
    from explorer import limits
    from explorer.config import default_widths

    at = fresh({"batch": "2000", "samples": "1", "depth": "8"})
    caption = next(plain(c.value) for c in at.sidebar.caption if "budget:" in plain(c.value))
    deepest = max(d for d in range(1, 17)
                  if limits.max_rows((256, *default_widths(d), 4), "float32") >= 2000)
    assert deepest < 8 and f"budget: depth <= {deepest} at 2,000 rows" in caption
    assert widget(at, "slider", "ex.depth").value == 8
    # Widths far over budget at depth 3: only depth 1 (the first width alone) fits.
    at = fresh({"widths": "1024,4096,4096"})
    caption = next(plain(c.value) for c in at.sidebar.caption if "budget:" in plain(c.value))
    assert "budget: depth <= 1 at 80 rows" in caption


def test_a_link_over_budget_at_every_depth_explains_instead_of_crashing():
    # depth=1 and too many rows for any depth: the depth slider's range was 1..1, which
    # Streamlit refuses with an exception box.
    at = fresh({"batch": "4096", "samples": "16", "depth": "1"})
    assert not at.exception
    assert any("cannot run" in plain(e.value) for e in at.error), [e.value for e in at.error]
    assert widget(at, "slider", "ex.depth").value == 1


def test_link_warnings_share_one_box():
    from explorer.ui.state import MAX_WARNINGS

    at = fresh({"pin": "garbage=1", "zzz": "1"})  # two problems: one short paragraph
    assert len(at.warning) == 1
    text = plain(at.warning[0].value)
    assert text.startswith("Link settings ignored: ") and " · " in text
    assert "'zzz' is unknown" in text and "no run is pinned" in text
    bad = {"activation": "foo", "dtype": "bar", "impl_a": "baz", "emulate_b": "qux",
           "depth": "99", "taps": "zz", "hist": "L99-pre", "seed": "-1", "batch": "0",
           "samples": "x", "zzz": "1"}
    at = fresh(bad)  # many: one bullet each, at most MAX_WARNINGS lines, the rest counted
    assert len(at.warning) == 1
    lines = [ln for ln in plain(at.warning[0].value).splitlines() if ln.startswith("- ")]
    assert len(lines) == MAX_WARNINGS and "more link settings were ignored" in lines[-1]


def test_a_link_with_emulation_and_another_dtype_warns_and_runs_without_it():
    at = fresh({"dtype": "bfloat16", "emulate_b": "tf32"})
    assert "emulate_b='tf32' is off" in link_warnings(at)
    assert not at.error and len(plotly_specs(at)) == 6
    assert "in tf32" not in result_text(at)  # the run has no emulation


def test_the_forum_numbers_are_shown_whole_whatever_their_length():
    # An audit saw the line end in "-1171394658304....": the text was cut at 300
    # characters, the sum's last digits with it. The depth-6 link has long numbers.
    query = {"depth": "6", "batch": "64", "seed": "6"}
    at = fresh(query)
    report = run(preset("seed", depth=6, batch=64, seed=6))
    text = result_text(at)
    summary = report.summary
    assert f"mean(B_logits - A_logits) = {summary.logits_mean_diff!r}" in text
    assert f"sum(B_feats - A_feats) = {summary.feats_sum_diff!r}. Computed in" in text
