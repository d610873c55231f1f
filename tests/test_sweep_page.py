"""The sweep page: its URL state (plain pytest), its figures, and the page itself (AppTest)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from explorer import sweep as sw
from explorer import sweep_charts
from explorer.config import ExperimentConfig, preset
from explorer.ui.sweep_state import (
    DEFAULT_METRIC,
    DEFAULT_X,
    DEFAULT_Y,
    FROM_LINK,
    SweepView,
    parse_sweep_url,
    split_spec,
    sweep_to_url,
)

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/sweeps.py"
TINY = ExperimentConfig(depth=2, widths=(8, 8), input_dim=16, batch=2, samples=3)


# --- URL state --------------------------------------------------------------------------

def test_url_round_trip():
    view = SweepView("squashed", preset("squashed", depth=2), "depth=1:4",
                     "emulate-b=none,tf32", "max_bound_ratio")
    url = sweep_to_url(view)
    assert url["x"] == "depth=1:4" and url["y"] == "emulate-b=none,tf32"
    assert url["preset"] == "squashed" and url["depth"] == "2"
    again, warnings = parse_sweep_url(url)
    # The link spells the base out; opened elsewhere it is "the link's settings".
    assert again == replace(view, base=FROM_LINK) and warnings == []
    assert sweep_to_url(again) == url
    only_preset, _ = parse_sweep_url({"x": "depth=1:4", "preset": "squashed"})
    assert only_preset.base == "squashed" and only_preset.config == preset("squashed")


def test_no_y_axis_round_trips_as_none():
    view = SweepView(x="dtype=float32,float16", y="")
    assert sweep_to_url(view)["y"] == "none"
    assert parse_sweep_url(sweep_to_url(view))[0].y == ""
    assert split_spec("") == ("none", "")


@pytest.mark.parametrize("params, fragment, field, expected", [
    ({"x": "depth=1:999"}, "STOP=999 is outside 1..16", "x", DEFAULT_X),
    ({"x": "depth=1:10000000"}, "STOP=10000000 is outside 1..16", "x", DEFAULT_X),
    ({"x": "depth=1:99999999999"}, "STOP=99999999999 is outside 1..16", "x", DEFAULT_X),
    ({"y": "activation=<script>"}, "is not one of", "y", DEFAULT_Y),
    ({"x": "depth=1:16", "y": "init-constant=1e-3:1:40"}, "more than the 400 allowed", "x",
     DEFAULT_X),
    ({"x": "dtype=all", "y": "dtype=float32"}, "both set dtype", "y", DEFAULT_Y),
    ({"metric": "__import__('os')"}, "is not available", "metric", DEFAULT_METRIC),
    ({"x": "depth=" + "1," * 300}, "characters): longer than 400 characters; ignored", "x",
     DEFAULT_X),
    ({"colour": "red"}, "'colour' is unknown", "x", DEFAULT_X),
])
def test_hostile_url_values_warn_and_fall_back(params, fragment, field, expected):
    view, warnings = parse_sweep_url(params)
    assert any(fragment in w for w in warnings), warnings
    assert getattr(view, field) == expected


def test_bad_base_setting_warns_and_keeps_the_preset():
    view, warnings = parse_sweep_url({"x": "depth=1:2", "activation": "swish"})
    assert view.x == "depth=1:2" and view.config.activation == "elu"
    assert any("activation='swish'" in w for w in warnings)


@pytest.mark.parametrize("sizes, dropped, instead", [
    # An audit's link: 60000 rows are over the memory budget.
    ({"batch": "60000", "samples": "1"}, "batch=60000, samples=1", "batch=16, samples=5"),
    # Three widths for seven layers.
    ({"depth": "7", "widths": "4096,4096,4096"}, "depth=7, widths=4096,4096,4096",
     "depth=3, widths=() (one default width per layer)"),
])
def test_a_link_whose_base_cannot_run_keeps_every_setting_but_its_sizes(sizes, dropped,
                                                                        instead):
    view, warnings = parse_sweep_url({"x": "depth=1:3", "y": "none", "seed": "31",
                                      "activation": "tanh", **sizes})
    assert view.base == FROM_LINK and view.x == "depth=1:3"
    assert (view.config.seed, view.config.activation) == (31, "tanh")
    assert (view.config.batch, view.config.samples, view.config.widths) == (16, 5, ())
    text = " ".join(warnings)
    assert "these settings cannot run: " in text
    assert (f"The sweep's base uses the preset's {instead} instead of the link's {dropped}, "
            "and keeps the link's activation=tanh, seed=31.") in text, warnings
    # The page's URL then says what runs: the kept settings, not the dropped sizes.
    url = sweep_to_url(view)
    assert url["seed"] == "31" and url["activation"] == "tanh" and "batch" not in url


def test_a_link_size_equal_to_the_presets_is_not_said_to_be_replaced():
    _, warnings = parse_sweep_url({"x": "depth=1:2", "depth": "3", "batch": "60000",
                                   "widths": "4096,4096,4096", "seed": "3"})
    assert ("The sweep's base uses the preset's batch=16, widths=() (one default width per "
            "layer) instead of the link's batch=60000, widths=4096,4096,4096, and keeps the "
            "link's depth=3, seed=3.") in warnings


def test_the_base_caption_names_rounded_operands():
    # An audit: the bf16_predictions base read "A=linear B=linear, gelu, ..." though B
    # rounds its operands to bfloat16.
    text = sw.describe_base(preset("bf16_predictions"))
    assert text.endswith("float32, B in bf16"), text  # the Explorer's settings-line words
    both = sw.describe_base(ExperimentConfig(emulate_a="tf32", emulate_b="bf16"))
    assert both.endswith("float32, A in tf32, B in bf16"), both
    assert sw.describe_base(ExperimentConfig()).endswith("rows 80, float32")


def test_a_link_that_cannot_run_even_with_the_presets_sizes_says_so():
    view, warnings = parse_sweep_url({"x": "depth=1:3", "seed": "31", "dtype": "float64",
                                      "emulate_b": "tf32", "batch": "60000"})
    assert view.config == preset(view.preset) and view.base == view.preset
    text = " ".join(warnings)
    assert "even with the preset's sizes the link's settings cannot run (emulate_b='tf32'" \
        in text and "does not use the link's batch=60000, seed=31, dtype=float64, " \
        "emulate_b=tf32." in text, warnings


def test_sweep_page_link_over_budget_runs_with_its_other_settings():
    at = _open_sweep_page(x="depth=1:2", y="none", seed="31", activation="tanh",
                          batch="60000", samples="1")
    assert not at.exception
    warnings = " ".join(w.value.replace("\\", "") for w in at.warning)
    assert "keeps the link's activation=tanh, seed=31" in warnings
    assert at.query_params["seed"] == "31" and at.query_params["activation"] == "tanh"
    assert "batch" not in at.query_params
    assert len(at.get("plotly_chart")) == 2


# --- figures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_result():
    sw.CACHE.clear()
    return sw.sweep(TINY, "dtype=float32,float16", "emulate-b=none,tf32",
                    metric="max_bound_ratio")


def test_heatmap_uses_log_colour_and_explains_blank_cells(mixed_result):
    fig = sweep_charts.heatmap_figure(mixed_result)
    assert isinstance(fig, go.Figure) and fig.data[0].type == "heatmap"
    z = fig.data[0].z
    valid = mixed_result.frame[mixed_result.frame.verdict != sw.INVALID]
    positive = valid[valid.value > 0].iloc[0]
    assert math.isclose(z[positive.y_index][positive.x_index], math.log10(positive.value))
    hover = fig.data[0].customdata
    assert hover[1][1].startswith("invalid: emulate_b='tf32' is not allowed")
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "no value (invalid or n/a" in notes


def test_lines_one_per_row_with_log_axes():
    result = sw.sweep(TINY, "init-constant=1e-3:1:4", "activation=elu,tanh")
    fig = sweep_charts.lines_figure(result)
    assert [t.name for t in fig.data] == ["elu", "tanh"]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.data[0].x) == [p.number for p in result.x.points]
    positive = result.frame.value[result.frame.value > 0]
    if len(positive):
        assert fig.layout.yaxis.type == "log"


def test_zero_cells_are_drawn_at_a_floor_and_said_to_be_zero():
    exact = TINY.replace(activation="identity", input_distribution="integers")
    result = sw.sweep(exact, "impls=linear/conv2d,linear/conv1d")
    assert (result.frame.value == 0).all()
    lines = sweep_charts.lines_figure(result)
    assert all(s == "circle-open" for s in lines.data[0].marker.symbol)
    assert lines.data[0].customdata[0].startswith("0 (identical)")
    heat = sweep_charts.heatmap_figure(result)
    assert "exactly 0 (identical)" in heat.layout.annotations[0].text


# --- the page --------------------------------------------------------------------------

def _open_sweep_page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    return at


def test_sweep_page_renders_heatmap_lines_and_download():
    at = _open_sweep_page(x="depth=1:2", y="activation=elu,tanh", batch="2", samples="3")
    assert not at.exception
    assert at.title[0].value.startswith("Sweeps")
    assert len(at.get("plotly_chart")) == 2
    assert len(at.get("download_button")) == 1
    assert not at.error and not at.warning
    assert at.query_params["x"] == "depth=1:2"


def test_sweep_page_bad_input_shows_the_library_message():
    at = _open_sweep_page(x="depth=1:2", y="none", batch="2", samples="3")
    at.text_input(key="sw.x_values").set_value("1:99").run()
    assert not at.exception
    assert any("STOP=99 is outside 1..16" in e.value.replace("\\", "") for e in at.error)
    assert len(at.get("plotly_chart")) == 2  # the last valid sweep stays on screen


def test_sweep_page_hostile_url_warns_and_uses_defaults():
    at = _open_sweep_page(x="depth=<b>1:999</b>", metric="nope", batch="2", samples="3")
    assert not at.exception
    warnings = " ".join(w.value.replace("\\", "") for w in at.warning)
    # Both problems in one box, one paragraph.
    assert len(at.warning) == 1
    assert "Link settings ignored: " in warnings and "metric='nope'" in warnings
    assert "Using metric='max_bound_ratio' instead" in warnings
    assert "The default is" not in warnings  # the CLI's default is another metric
    assert at.selectbox(key="sw.metric").value == DEFAULT_METRIC
    assert at.text_input(key="sw.x_values").value == split_spec(DEFAULT_X)[1]


def test_changing_the_axis_loads_its_default_values_and_waits_for_run():
    at = _open_sweep_page(x="depth=1:2", y="none", batch="2", samples="3")
    heatmap = at.get("plotly_chart")[0].proto.spec
    at.selectbox(key="sw.y_name").set_value("emulate-b").run()
    assert not at.exception
    assert at.text_input(key="sw.y_values").value == "none,tf32,bf16"
    # Nothing ran: the same grid, the same link, and a note saying how to run it.
    assert at.get("plotly_chart")[0].proto.spec == heatmap
    assert at.query_params["y"] == "none"
    assert any("press Run" in i.value for i in at.info)
    at.button(key="sw.run").click().run()
    assert at.query_params["y"] == "emulate-b=none,tf32,bf16"
    assert at.get("plotly_chart")[0].proto.spec != heatmap
    assert not at.info


# --- Run, Cancel, the base, the default -------------------------------------------------

def _sweep_page_after_explorer(**explorer_query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in explorer_query.items():
        at.query_params[key] = value
    at.run()
    at.query_params.clear()  # a browser drops the Explorer's link on a page switch
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_default_sweep_runs_once_and_its_rows_differ():
    at = _sweep_page_after_explorer(batch="2", samples="3")
    assert at.query_params["x"] == DEFAULT_X and at.query_params["y"] == DEFAULT_Y
    assert at.query_params["metric"] == DEFAULT_METRIC == "max_bound_ratio"
    assert at.query_params["batch"] == "2"  # the base is the Explorer's settings
    grid = at.dataframe[-1].value  # "The numbers": rows none, tf32, bf16
    assert list(grid.index) == ["none", "tf32", "bf16"]
    # Not three identical rows: float32 on both sides stays within the rounding bound at
    # every init constant, while B's reduced-precision operands break it somewhere.
    assert (grid.loc["none"] <= 1).all()
    assert grid.loc["tf32"].max() > 1 and grid.loc["bf16"].max() > 1
    assert not grid.loc["none"].equals(grid.loc["tf32"])
    captions = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "Base (The Explorer's current settings)" in captions and "rows 6" in captions


def test_the_base_follows_the_explorer_or_a_preset(monkeypatch):
    at = _sweep_page_after_explorer(activation="tanh", batch="2", samples="3")
    captions = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "tanh" in captions and at.query_params["activation"] == "tanh"
    at.selectbox(key="sw.base").set_value("squashed").run()
    assert any("press Run" in i.value for i in at.info)
    assert at.query_params["activation"] == "tanh"  # nothing changed before Run
    at.button(key="sw.run").click().run()
    assert at.query_params["preset"] == "squashed" and "activation" not in at.query_params
    captions = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "Base (Preset: Sigmoid, small weights)" in captions and "sigmoid" in captions


def test_changing_only_the_metric_computes_nothing(monkeypatch):
    at = _open_sweep_page(x="depth=1:2", y="activation=elu,tanh", batch="2", samples="3")

    def no_runs(config, **kwargs):
        raise AssertionError("a cell was computed again")

    monkeypatch.setattr("explorer.compare.run", no_runs)
    at.selectbox(key="sw.metric").set_value("max_ulp_diff").run()
    assert not at.exception and not at.error and not at.info
    assert at.query_params["metric"] == "max_ulp_diff"
    grid = at.dataframe[-1].value
    assert grid.notna().all().all() and (grid >= 0).all().all()


def test_cancel_keeps_the_finished_cells():
    at = _open_sweep_page(x="depth=1:3", y="activation=elu,tanh", batch="2", samples="3")
    assert at.dataframe[-1].value.notna().all().all()
    # As if Cancel had interrupted a run of this sweep after four of its six cells.
    view, _ = at.session_state["sw:result"]
    del at.session_state["sw:result"]
    for depth in (2, 3):
        config = view.config.replace(depth=depth, activation="tanh")
        sw.CACHE._items.pop(sw.cache_key(config), None)
    at.button(key="sw.cancel").click().run()
    assert not at.exception
    warning = " ".join(w.value.replace("\\", "") for w in at.warning)
    assert "cancelled after 4 of 6 cells" in warning and "Run computes the rest" in warning
    grid = at.dataframe[-1].value
    assert grid.loc["elu"].notna().all() and grid.loc["tanh"].isna().sum() == 2
    at.button(key="sw.run").click().run()  # Run finishes the sweep
    assert not at.warning and at.dataframe[-1].value.notna().all().all()


def test_sweep_lines_label_whole_decades_only():
    result = sw.sweep(TINY, "init-constant=1e-4:10:6", "emulate-b=none,tf32")
    fig = sweep_charts.lines_figure(result)
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.type == "log" and isinstance(axis.dtick, int) and axis.dtick >= 1
        low, high = axis.range
        assert high - low >= 1
    values = [v for t in fig.data for v in t.y if v]
    assert all(fig.layout.yaxis.range[0] <= math.log10(v) <= fig.layout.yaxis.range[1]
               for v in values)


def test_sweep_lines_tick_whole_numbered_axes_at_the_swept_values():
    result = sw.sweep(TINY, "depth=1:4")  # a linear axis of whole numbers: no "depth 1.5"
    fig = sweep_charts.lines_figure(result)
    assert fig.layout.xaxis.type == "linear"
    assert list(fig.layout.xaxis.tickvals) == [1, 2, 3, 4]
    assert list(fig.layout.xaxis.ticktext) == ["1", "2", "3", "4"]


def test_heatmap_colours_span_whole_decades():
    # Three cells that all read 0.12 must not be painted from one end of the scale to the
    # other: the colour range is at least a decade, with labelled decade ticks.
    result = sw.sweep(TINY, "depth=1:3")
    fig = sweep_charts.heatmap_figure(result)
    heat = fig.data[0]
    assert heat.zmax - heat.zmin >= 1
    assert len(heat.colorbar.tickvals) >= 2
