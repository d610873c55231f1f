"""ui.state: URL text <-> ViewState, leniently in, minimally out, markdown made inert."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from explorer import ExperimentConfig, preset
from explorer.ui.state import ViewState, parse_hist, parse_url, safe_text, to_url


def test_default_view_has_an_empty_url():
    assert to_url(ViewState()) == {}
    view, warnings = parse_url({})
    assert view == ViewState() and warnings == []


def test_round_trip_with_preset_pin_and_view_options():
    view = ViewState(preset="squashed", config=preset("squashed", depth=4, emulate_b="tf32"),
                     taps="pre", hist="L2-pre", pinned_preset="tf32_conv",
                     pinned=preset("tf32_conv", seed=7))
    url = to_url(view)
    assert url["preset"] == "squashed" and url["depth"] == "4" and url["taps"] == "pre"
    assert "activation" not in url  # the preset's own values are not repeated
    again, warnings = parse_url(url)
    assert warnings == []
    assert again == view


def test_hostile_values_fall_back_with_named_warnings():
    view, warnings = parse_url({
        "depth": "-3", "init_constant": "nan", "device": "quantum",
        "activation": "<script>alert(1)</script>", "preset": "nope", "taps": "sideways",
        "hist": "<img src=x>", "pin": "depth=zz", "bogus": "1",
    })
    assert view.config == ExperimentConfig()
    assert view.taps == "both" and view.hist == ""
    assert view.pinned == ExperimentConfig()
    text = "\n".join(warnings)
    for fragment in ("depth=-3", "init_constant=nan", "'quantum'", "<script>alert(1)</script>",
                     "preset='nope'", "taps='sideways'", "hist='<img src=x>'",
                     "pinned run: depth='zz'", "'bogus' is unknown"):
        assert fragment in text, fragment
    assert "Using depth=3 instead" in text


def test_unavailable_cuda_falls_back_to_cpu():
    view, warnings = parse_url({"device": "cuda:7"})
    assert view.config.device == "cpu"
    assert any("cuda:7" in w for w in warnings)


def test_overlong_and_repeated_values():
    view, warnings = parse_url({"activation": "x" * 5000, "depth": ["2", "5"]})
    assert view.config.activation == "elu" and view.config.depth == 5
    assert any("5000 characters" in w for w in warnings)


def test_seed_beyond_browser_precision():
    view, warnings = parse_url({"seed": str(2**60)})
    assert view.config.seed == 2010 and "larger than a browser" in warnings[0]


def test_parse_hist():
    assert parse_hist("L4-pre") == (4, "pre")
    assert parse_hist("L1-post") == (1, "post")
    assert parse_hist("L4 pre") is None and parse_hist("L123-pre") is None


def test_safe_text_escapes_markdown_and_html():
    out = safe_text("<b>x</b> [a](javascript:1) ![i](http://e/x.png) :red[y] $z$ *w*")
    for raw in ("<b>", "](", ":red[", "$z$", "*w*"):
        assert raw not in out
    assert safe_text("a\n\n# b") == "a \\# b"
    assert safe_text("y" * 1000, limit=10) == "y" * 10 + "\\.\\.\\."


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["preset", "activation", "depth", "init_constant", "device", "dtype",
                     "emulate_b", "widths", "batch", "seed", "taps", "hist", "pin", "x"]),
    st.text(max_size=30)))
def test_any_url_gives_a_valid_view(params):
    view, warnings = parse_url(params)
    assert isinstance(view.config, ExperimentConfig)  # validated on construction
    assert math.isfinite(view.config.init_constant)
    again, problems = parse_url(to_url(view))
    assert problems == [] and again == view
