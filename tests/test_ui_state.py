"""ui.state: URL text <-> ViewState, leniently in, minimally out, markdown made inert."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from explorer import ExperimentConfig, limits, preset
from explorer.config import check_field, default_widths
from explorer.ui.state import (
    MAX_WARNINGS,
    Settings,
    ViewState,
    differences,
    named_list,
    parse_hist,
    parse_url,
    safe_text,
    tap_keys,
    to_url,
    view_of,
    widths_text,
)


def test_default_view_has_an_empty_url():
    assert to_url(ViewState()) == {}
    view, warnings = parse_url({})
    assert view == ViewState() and warnings == []


def test_round_trip_with_preset_pin_and_view_options():
    view = view_of(preset("squashed", depth=4, emulate_b="tf32"), "squashed",
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
    assert view.pinned is None  # a pin that is not understood pins nothing
    text = "\n".join(warnings)
    for fragment in ("depth=-3", "init_constant=nan", "'quantum'", "<script>alert(1)</script>",
                     "preset='nope'", "taps='sideways'", "hist='<img src=x>'",
                     "pin='depth=zz' was not used, so no run is pinned",
                     "'bogus' is unknown; How to read this lists the names."):
        assert fragment in text, fragment
    assert "Using depth=3 instead" in text


def test_unavailable_cuda_falls_back_to_cpu():
    view, warnings = parse_url({"device": "cuda:7"})
    assert view.config.device == "cpu"
    assert any("cuda:7" in w for w in warnings)


def test_overlong_and_repeated_values():
    view, warnings = parse_url({"activation": "x" * 5000, "depth": ["2", "5"]})
    assert view.config.activation == "elu" and view.config.depth == 5
    assert any("'activation' (5000 characters)" in w for w in warnings)


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
                     "emulate_b", "widths", "batch", "samples", "seed", "taps", "hist",
                     "pin", "x"]),
    st.text(max_size=30)))
def test_any_url_gives_a_valid_view(params):
    view, warnings = parse_url(params)
    for name, value in view.settings.values:  # every value is valid on its own
        check_field(name, value)
    assert math.isfinite(view.settings["init_constant"])
    # Either the settings run (a validated config), or the view says why not.
    assert isinstance(view.config, ExperimentConfig) != bool(view.problem)
    again, problems = parse_url(to_url(view))
    assert problems == [] and again == view


# --- a link is decoded as a whole, then validated once -----------------------------------

def test_link_values_are_applied_together_not_one_at_a_time():
    # batch=2000 with the preset's 5 samples would be 10,000 rows; with samples=1 it is
    # 2,000. The app's own share link for batch=2000&samples=1 must open as it was shared,
    # in either order of the keys.
    assert limits.max_rows((256, *default_widths(3), 4), "float32") >= 2000
    for params in ({"batch": "2000", "samples": "1"}, {"samples": "1", "batch": "2000"}):
        view, warnings = parse_url(params)
        assert warnings == []
        assert view.config is not None and (view.config.batch, view.config.samples) == (2000, 1)
        assert to_url(view) == {"batch": "2000", "samples": "1"}


def test_settings_over_budget_are_kept_as_set_and_say_what_to_lower():
    view, warnings = parse_url({"depth": "16", "batch": "7"})
    assert warnings == []  # each value is fine on its own
    assert view.settings["depth"] == 16 and view.settings["batch"] == 7
    assert view.settings["samples"] == 5  # untouched
    assert view.config is None
    # Depth 16 at the default widths is over budget at any rows: say what can help.
    assert "budget" in view.problem and "Lower the widths or the depth" in view.problem
    assert to_url(view) == {"depth": "16", "batch": "7"}  # the link says what was set
    # Fixing the one setting makes it run, with everything else as it was.
    fixed = ViewState(settings=view.settings.replace(depth=3))
    assert fixed.config == ExperimentConfig(batch=7)


def test_widths_that_do_not_match_the_depth_are_kept_with_the_reason():
    view, warnings = parse_url({"widths": "8,8"})
    assert warnings == [] and view.config is None
    assert view.settings["widths"] == (8, 8)
    assert "give exactly one width per hidden layer (depth=3)" in view.problem


def test_settings_round_trip_even_when_they_cannot_run():
    settings = Settings.of(ExperimentConfig()).replace(depth=16, widths=(1024,) * 3)
    view = ViewState(settings=settings)
    assert view.config is None
    again, warnings = parse_url(to_url(view))
    assert warnings == [] and again == view


def test_hundreds_of_unknown_keys_give_one_warning():
    params = {f"junk{i}": "1" for i in range(300)}
    params["activation"] = "tanh"
    view, warnings = parse_url(params)
    assert view.config.activation == "tanh"
    assert len(warnings) == 1
    assert "300 URL parameters are unknown: 'junk0', 'junk1'" in warnings[0]
    assert "and 295 more" in warnings[0]


def test_many_bad_values_are_capped():
    params = {name: "<bad>" for name in ("activation", "init_scheme", "depth", "input_dim",
                                         "num_classes", "batch", "samples", "seed", "dtype",
                                         "impl_a", "impl_b", "emulate_a", "emulate_b")}
    view, warnings = parse_url(params)
    assert view.config == ExperimentConfig()
    assert len(warnings) == MAX_WARNINGS
    assert warnings[-1] == f"... and {13 - MAX_WARNINGS + 1} more link settings were ignored."


def test_a_bad_pin_pins_nothing_and_says_why():
    for pin, why in (("depth=zz", "depth='zz' is not allowed"),
                     ("preset=nope", "preset='nope' is unknown"),
                     ("colour=red", "'colour' is not a setting"),
                     ("widths=8,8", "give exactly one width per hidden layer"),
                     ("", "it names no settings")):
        view, warnings = parse_url({"pin": pin})
        assert view.pinned is None and view.pinned_preset is None, pin
        assert len(warnings) == 1 and "no run is pinned" in warnings[0], warnings
        assert why in warnings[0], (pin, warnings)
        assert "pin" not in to_url(view)
    view, warnings = parse_url({"pin": "preset=squashed&depth=2"})
    assert warnings == [] and view.pinned == preset("squashed", depth=2)


def test_hist_must_name_a_tap_of_the_linked_network():
    assert tap_keys(1) == ["L1-pre", "L1-post", "L2-pre"]
    view, warnings = parse_url({"depth": "2", "hist": "L3-post"})
    assert view.hist == "" and "names no tap of a network with depth 2" in warnings[0]
    view, warnings = parse_url({"depth": "2", "hist": "L2-post"})
    assert view.hist == "L2-post" and warnings == []


def test_differences_use_sidebar_names_decisive_settings_first():
    base = Settings.of(ExperimentConfig())
    changed = base.replace(activation="tanh", seed=7, dtype="bfloat16", emulate_b="tf32",
                           widths=(512,) * 6, depth=6)
    # dtype and emulation explain the numbers: named before the network and the data.
    assert differences(base, changed) == [
        "dtype bfloat16", "emulation B tf32", "activation tanh", "depth 6", "widths 512 x6",
        "seed 7"]
    assert named_list(differences(base, changed)) == "dtype bfloat16, emulation B tf32 and 4 more"


def test_widths_text_never_reads_as_a_longer_list():
    assert widths_text(()) == "default"
    assert widths_text((64, 128, 256)) == "64,128,256"
    assert widths_text((512, 512, 512, 512)) == "512 x4"
    assert widths_text((64, 128, 256, 512, 1024, 1024)) == "64,…,1024 (6 layers)"
    assert widths_text((7,)) == "7"


def test_modified_caption_fits_one_sidebar_line():
    # 34 characters: 40 fit a line, and the caption's help icon takes the rest (an audit
    # saw the icon wrap at 38).
    from explorer.ui.sidebar import SIDEBAR_LINE_CHARS, modified_caption
    assert SIDEBAR_LINE_CHARS == 34
    assert modified_caption(["activation tanh", "depth 4"]) == "Modified: activation tanh, depth 4"
    assert modified_caption(["dtype float16", "seed 7", "depth 9"]) == \
        "Modified: dtype float16 and 2 more"
    assert (modified_caption(["emulation A bf16", "emulation B tf32", "seed 7"])
            == "Modified: 3 settings")
    assert modified_caption(["widths 64,…,1024 (6 layers)"]) == "Modified: 1 setting"
    many = [f"rows per call A {i}" for i in range(30)]
    assert len(modified_caption(many)) <= SIDEBAR_LINE_CHARS


def test_layers_caption_stays_short():
    from explorer.ui.sidebar import layers_text
    assert layers_text((256, 64, 128, 256, 4)) == "256-64-128-256-4"
    assert layers_text((256, *range(100, 116), 4)) == "256-100-…-115-4 (17 layers)"


def test_execution_settings_are_named_before_the_network():
    # A batch-invariance pin differs in rows per call: that, not the seed, explains it.
    base = Settings.of(ExperimentConfig())
    changed = base.replace(seed=3, threads_a=2, rows_per_call_b=1, input_distribution="integers")
    assert differences(base, changed) == [
        "rows per call B 1", "threads A 2", "input values integers", "seed 3"]


def test_an_unknown_key_suggests_the_closest_name_and_stays_short():
    view, warnings = parse_url({"activaton": "tanh", "zzz": "1"})
    assert view == ViewState()
    assert warnings == [
        "2 URL parameters are unknown: 'activaton' (did you mean 'activation'?), 'zzz'; How "
        "to read this lists the names."]
    assert parse_url({"zzz": "1"})[1] == [
        "'zzz' is unknown; How to read this lists the names."]


def test_a_typo_after_many_unknown_keys_is_still_named_with_its_suggestion():
    # An audit: with more than five unknown keys, a typo past the fifth was not named.
    params = {f"junk{i}": "1" for i in range(8)} | {"sampels": "3"}
    view, warnings = parse_url(params)
    assert view == ViewState()
    assert warnings == [
        "9 URL parameters are unknown: 'sampels' (did you mean 'samples'?), 'junk0', "
        "'junk1', 'junk2', 'junk3' and 4 more; How to read this lists the names."]


def test_emulation_with_another_dtype_is_said_not_silently_dropped():
    view, warnings = parse_url({"dtype": "bfloat16", "emulate_b": "tf32"})
    assert warnings == ["emulate_b='tf32' is off: emulation rounds float32 operands, and "
                        "dtype is bfloat16. Set dtype=float32 to use it."]
    assert parse_url({"dtype": "float32", "emulate_b": "tf32"})[1] == []
    assert parse_url({"preset": "half"})[1] == []  # a preset's own settings: nothing to say
