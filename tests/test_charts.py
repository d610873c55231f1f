"""charts: the right traces, log axes, guide lines, zeros and non-finite values shown."""

import math

import pytest

from explorer import charts, preset, run
from explorer.charts import COLORS, FLOAT32_U, TF32_U, fmt


@pytest.fixture(scope="module")
def tf32_report():
    return run(preset("tf32_conv"))


@pytest.fixture(scope="module")
def half_report():
    return run(preset("half"))


def names(fig):
    return [trace.name for trace in fig.data]


def subtitle(fig) -> str:
    """The notes under a title as one line (they wrap with <br> to fit the chart)."""
    return (fig.layout.title.subtitle.text or "").replace("<br>", " ")


def trace(fig, name):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, (name, names(fig))
    return matches[0]


def test_all_figures_in_page_order(seed_report):
    figures = charts.all_figures(seed_report)
    assert list(figures) == list(charts.CHART_TITLES)
    for name, fig in figures.items():
        assert fig.layout.yaxis.type == "log", name
        assert fig.layout.title.text


def test_abs_diff_has_max_and_mean_per_tap(seed_report, forum):
    fig = charts.abs_diff_figure(seed_report)
    assert names(fig) == ["max |A-B|", "mean |A-B|"]
    top = trace(fig, "max |A-B|")
    assert list(top.x) == [t.name for t in seed_report.taps]
    assert list(top.y) == [t.max_abs_diff for t in seed_report.taps]
    assert top.line.color == COLORS["diff"]
    assert charts.fmt(forum.logits_max_abs_diff) in top.hovertext[-1]
    assert "L4 pre (width 4, fan-in 256)" in top.hovertext[-1]


def test_rel_diff_has_roundoff_lines(seed_report):
    fig = charts.rel_diff_figure(seed_report)
    assert set(trace(fig, "float32 u = 2^-24").y) == {FLOAT32_U}
    assert set(trace(fig, "TF32 u = 2^-11").y) == {TF32_U}
    assert "x float32 u" in trace(fig, "max relative").hovertext[0]


def test_magnitude_colours_and_overflow_line(seed_report):
    fig = charts.magnitude_figure(seed_report)
    assert trace(fig, "max |A|").line.color == COLORS["a"]
    assert trace(fig, "max |B|").line.color == COLORS["b"]
    assert trace(fig, "max |reference|").line.color == COLORS["ref"]
    # 7.9e7 is 2^102 below float32's 3.4e38: a line there would flatten the data, so the
    # headroom is a note instead.
    assert not [t for t in fig.data if "overflow" in t.name]
    assert "float32 overflows at 3.4e+38: 102 doublings above" in subtitle(fig)


def test_overflow_line_drawn_when_values_come_near(seed_report):
    from explorer import ExperimentConfig, run

    report = run(ExperimentConfig(dtype="float16"))
    fig = charts.magnitude_figure(report)
    assert set(trace(fig, "overflow 6.55e+04").y) == {65504.0}


def test_bound_ratio_pre_taps_only_with_the_one_line(seed_report):
    fig = charts.bound_ratio_figure(seed_report)
    ratio = trace(fig, "A vs B, max")
    assert all(x.endswith(" pre") for x in ratio.x)
    assert set(trace(fig, "rounding bound").y) == {1.0}


def test_zero_is_drawn_on_a_floor_and_said(seed_report):
    # In the forum case layer 3's local difference is exactly 0: all positive sums agree.
    l3 = seed_report.tap(3, "pre")
    assert l3.bound_ratio == 0
    fig = charts.bound_ratio_figure(seed_report)
    ratio = trace(fig, "A vs B, max")
    i = list(ratio.x).index("L3 pre")
    positive = [v for v in ratio.y if v]
    assert 0 < ratio.y[i] < min(v for v in positive if v != ratio.y[i])
    assert "0 (identical)" in ratio.hovertext[i]
    assert ratio.marker.symbol[i] == "circle-open"
    assert "exactly 0" in subtitle(fig)


def test_reference_error_colours(seed_report):
    fig = charts.reference_error_figure(seed_report)
    assert trace(fig, "A max").line.color == COLORS["a"]
    assert trace(fig, "B max").line.color == COLORS["b"]
    assert list(trace(fig, "B max").y) == [t.b_max_rel_err_vs_ref
                                                    for t in seed_report.taps]


def test_stage_filter(seed_report):
    fig = charts.abs_diff_figure(seed_report, stage="post")
    assert all(x.endswith(" post") for x in fig.data[0].x)
    assert len(fig.data[0].x) == seed_report.config.depth
    with pytest.raises(ValueError, match="stage='middle'"):
        charts.select_taps(seed_report, "middle")


def test_baseline_overlay_is_dashed(seed_report, tf32_report):
    fig = charts.abs_diff_figure(tf32_report, baseline=seed_report)
    pinned = trace(fig, "pinned: max |A-B|")
    assert pinned.line.dash == "dash"
    # One legend entry stands for the whole baseline.
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["max |A-B|", "mean |A-B|", charts.PINNED_LEGEND]
    assert list(pinned.y) == [t.max_abs_diff for t in seed_report.taps]
    assert trace(fig, "max |A-B|").line.dash == "solid"
    hist = charts.bits_histogram_figure(tf32_report, 4, "pre", baseline=seed_report)
    assert trace(hist, "pinned: L4 pre").line.dash == "dash"


def test_histogram_counts_every_element(seed_report):
    fig = charts.bits_histogram_figure(seed_report, 1, "pre")
    bars = fig.data[0]
    counts = [c or 0 for c in bars.y]
    assert sum(counts) == seed_report.config.rows * 64
    assert len(counts) == 33  # 0..32 bits for float32
    assert fig.layout.yaxis.type == "log"
    assert "identical (0 ULPs)" in bars.hovertext[0]


def test_reduced_precision_breaks_the_line(tf32_report):
    ratio = trace(charts.bound_ratio_figure(tf32_report), "A vs B, max")
    assert max(ratio.y) > 1


def test_non_finite_values_are_listed_not_dropped(half_report):
    fig = charts.magnitude_figure(half_report)
    top = trace(fig, "max |A|")
    assert None in top.y  # inf cannot be drawn...
    assert "inf at L3 pre, L3 post, L4 pre: not drawn" in subtitle(fig)
    assert set(trace(fig, "overflow 6.55e+04").y) == {65504.0}


def test_fmt():
    assert fmt(None) == "n/a"
    assert fmt(math.nan) == "n/a"
    assert fmt(math.inf) == "inf"
    assert fmt(0.0) == "0"
    assert fmt(208.0) == "208"
    assert fmt(4480.0) == "4,480"
    assert fmt(3.4197e-4, 2) == "3.4e-4"
    assert fmt(7.89e7, 2) == "7.9e7"


# --- readability -----------------------------------------------------------------------

def _data_traces(fig):
    """Traces that carry data (not the horizontal guides, which have two equal points)."""
    return [t for t in fig.data if not (t.type == "scatter" and len(t.y) == 2
                                        and t.y[0] == t.y[1] and t.mode == "lines")]


def test_log_axes_label_whole_decades_and_show_every_value(seed_report, tf32_report):
    for report in (seed_report, tf32_report):
        for name, fig in charts.all_figures(report, baseline=seed_report).items():
            axis = fig.layout.yaxis
            assert isinstance(axis.dtick, int) and axis.dtick >= 1, name  # no 2, 3, 5 labels
            low, high = axis.range
            assert high - low >= 1, name  # at least two decade labels
            for t in fig.data:
                for y in t.y:
                    if y is not None and y > 0 and math.isfinite(y):
                        assert low <= math.log10(y) <= high, (name, t.name, y)


def test_decade_axis_spans_whole_decades():
    settings = charts.decade_axis([2e-4, 5e-4, None, 0.0, math.inf])
    assert settings["range"] == [-4.15, -2.85] and settings["dtick"] == 1
    wide = charts.decade_axis([1e-20, 1.0])
    assert wide["dtick"] == 3  # 20 decades: every third is labelled
    assert charts.decade_axis([0.0, None]) == {}


def test_histogram_bars_with_one_element_stay_visible(seed_report):
    for tap in seed_report.taps:
        fig = charts.bits_histogram_figure(seed_report, tap.layer, tap.stage)
        low = fig.layout.yaxis.range[0]
        for count in tap.bits_histogram:
            if count:  # at least a quarter of a decade tall, even for a count of 1
                assert math.log10(count) - low >= 0.25
        used = [k for k, c in enumerate(tap.bits_histogram) if c]
        assert fig.layout.xaxis.range[1] > max(used)  # no non-empty bin is cut off
    # A hand-made histogram: 318 identical elements, one at 3 bits, one at 20 bits.
    import dataclasses

    counts = [0] * 33
    counts[0], counts[3], counts[20] = 318, 1, 1
    last = seed_report.taps[-1]
    taps = seed_report.taps[:-1] + (dataclasses.replace(last, bits_histogram=tuple(counts)),)
    report = dataclasses.replace(seed_report, taps=taps)
    fig = charts.bits_histogram_figure(report, last.layer, last.stage)
    low, high = fig.layout.yaxis.range
    assert math.log10(1) - low >= 0.25 and high > math.log10(318)
    assert fig.layout.xaxis.range[1] > 20
    assert "1 of 320 elements" in fig.data[0].hovertext[20]


def test_a_typical_value_is_drawn_on_top_of_its_maximum_and_looks_different(seed_report):
    fig = charts.bound_ratio_figure(seed_report)
    order = names(fig)
    top, p99 = trace(fig, "A vs B, max"), trace(fig, "A vs B, p99")
    assert order.index("A vs B, p99") > order.index("A vs B, max")  # drawn later
    assert p99.line.color != top.line.color
    assert p99.marker.symbol[0] != top.marker.symbol[0]
    assert p99.line.width < top.line.width


def test_dashes_mean_a_pinned_run_and_nothing_else(seed_report, tf32_report):
    for baseline in (None, seed_report):
        figures = charts.all_figures(tf32_report, baseline=baseline)
        for name, fig in figures.items():
            for t in _data_traces(fig):
                dash = t.line.dash if t.type == "scatter" else None
                is_pinned = t.name.startswith("pinned")
                assert (dash == "dash") == is_pinned, (name, t.name, dash)
            if baseline is None:
                assert not [n for n in names(fig) if "pinned" in n.lower()], name


def test_notes_wrap_to_the_chart_width(seed_report):
    fig = charts.magnitude_figure(seed_report)
    lines = fig.layout.title.subtitle.text.split("<br>")
    assert len(lines) >= 2 and all(len(line) <= charts.NOTE_LINE_CHARS for line in lines)
    assert fig.layout.margin.t >= 58 + 19 * len(lines)  # room for every line


def test_overflowed_taps_are_not_drawn_as_identical():
    """float16, depth 5: from L3 pre on both sides hold inf; equal infinities 'differ' by
    0, which must not be drawn as a hollow 'identical' marker or counted as 0 bits."""
    from explorer import preset, run

    report = run(preset("half", depth=5))
    broken = [t.name for t in report.taps if t.nonfinite_count or t.b_nonfinite_count]
    assert broken and broken[0] == "L3 pre"
    for fig in (charts.abs_diff_figure(report), charts.rel_diff_figure(report)):
        for line in fig.data[:2]:
            for x, y, hover in zip(line.x, line.y, line.hovertext):
                if x in broken:
                    assert y is None and "A or B holds inf/NaN" in hover, (x, hover)
                    assert "identical" not in hover
        assert f"inf/NaN in A or B at {broken[0]} to {broken[-1]}: not drawn" in subtitle(fig)
    hist = charts.bits_histogram_figure(report, report.taps[-1].layer, "pre")
    assert subtitle(hist).startswith("not a comparison: ")
    assert "mean 0 bits" not in subtitle(hist)


def test_tap_tick_labels_stay_upright_and_sparse():
    from explorer.charts import tap_tick_labels

    assert tap_tick_labels(["L1 pre", "L1 post", "L2 pre"]) == ["L1<br>pre", "L1<br>post",
                                                                "L2<br>pre"]
    names = [f"L{i} {s}" for i in range(1, 17) for s in ("pre", "post")] + ["L17 pre"]
    labels = tap_tick_labels(names)
    assert len(labels) == len(names)
    shown = [x for x in labels if x]
    assert shown == ["L1", "L3", "L5", "L7", "L9", "L11", "L13", "L15", "L17"]
    assert labels[names.index("L3 pre")] == "L3" and labels[names.index("L3 post")] == ""


def test_every_legend_entry_fits_half_a_chart():
    # At 1280 px an entry gets ~17 characters; longer ones were cut ("pinned run (dashed",
    # "B (compiled) media", "bound (rounding ex").
    from explorer import ExperimentConfig, preset, run

    cases = [(ExperimentConfig(impl_a="tensordot", impl_b="linear_compiled",
                               emulate_b="tf32"), preset("seed")),
             (preset("half", depth=5), preset("seed")),
             (ExperimentConfig(dtype="bfloat16"), ExperimentConfig(dtype="float16")),
             (ExperimentConfig(dtype="float16", impl_b="conv1d"), None)]
    for config, pinned in cases:
        report = run(config)
        baseline = run(pinned) if pinned is not None else None
        for name, fig in charts.all_figures(report, "both", None, baseline).items():
            for trace in fig.data:
                if trace.showlegend is not False and trace.name:
                    assert len(trace.name) <= charts.LEGEND_CHARS, (name, trace.name)


def test_each_sides_bound_hover_says_how_many_bits_it_behaves_as():
    # The extra hover is attached by trace name: a renamed legend entry once could drop it.
    from explorer import ExperimentConfig, run

    report = run(ExperimentConfig(emulate_b="bf16"))
    fig = charts.bound_ratio_figure(report)
    hover = " ".join(trace(fig, "B vs exact").hovertext)
    assert "over the probabilistic bound (typical rounding): " in hover
    assert "behaves as 8 bits (bfloat16)" in hover


def test_float16_shares_tf32s_roundoff_line_named_for_the_dtype():
    from explorer import ExperimentConfig

    fig = charts.rel_diff_figure(run(ExperimentConfig(dtype="float16")))
    assert set(trace(fig, "fp16 u = 2^-11").y) == {TF32_U}
    assert not [t for t in fig.data if t.name == "TF32 u = 2^-11"]
