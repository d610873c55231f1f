"""Sweeps: cells equal single runs, progress, cancellation, axis parsing, the CLI."""

from __future__ import annotations

import json
import math
import threading

import pytest

from explorer import sweep as sw
from explorer.cli import main
from explorer.compare import run
from explorer.config import ExperimentConfig, preset

# Small and fast: two hidden layers of 8, 6 rows.
TINY = ExperimentConfig(depth=2, widths=(8, 8), input_dim=16, batch=2, samples=3)


@pytest.fixture(autouse=True)
def _fresh_cache():
    sw.CACHE.clear()
    yield
    sw.CACHE.clear()


# --- axis parsing ------------------------------------------------------------------------

def test_log_range_is_log_spaced_with_exact_ends():
    axis = sw.parse_axis("init-constant=1e-4:10:6")
    values = [dict(p.changes)["init_constant"] for p in axis.points]
    assert values[0] == 1e-4 and values[-1] == 10.0
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert all(math.isclose(r, 10.0) for r in ratios)
    assert axis.numeric and axis.log_scale


def test_integer_range_is_inclusive_and_steps():
    assert sw.parse_axis("depth=1:8").labels == tuple(str(d) for d in range(1, 9))
    assert sw.parse_axis("depth=1:7:3").labels == ("1", "4", "7")
    assert sw.parse_axis("depth=2,5").labels == ("2", "5")


def test_close_constants_get_distinct_labels():
    labels = sw.parse_axis("init-constant=1e-4:1.001e-4:3").labels
    assert len(set(labels)) == 3


def test_lists_pairs_and_aliases():
    assert sw.parse_axis("activation=elu,sigmoid,tanh").labels == ("elu", "sigmoid", "tanh")
    pairs = sw.parse_axis("impls=linear/conv2d,linear/conv1d")
    assert pairs.points[1].changes == (("impl_a", "linear"), ("impl_b", "conv1d"))
    both = sw.parse_axis("emulate_both=none,tf32")  # underscore spelling accepted
    assert both.name == "emulate-both"
    assert both.points[1].changes == (("emulate_a", "tf32"), ("emulate_b", "tf32"))
    assert len(sw.parse_axis("dtype=all").points) == 4


@pytest.mark.parametrize("spec, message", [
    ("depth", "expected NAME=VALUES"),
    ("colour=red", "unknown axis 'colour'"),
    ("init-constant=1e-4:10", "START:STOP:COUNT"),
    ("init-constant=0:10:5", "positive START and STOP"),
    ("init-constant=1e-4:10:1", "COUNT=1 must be from 2 to 50"),
    ("init-constant=1e-9,1", "outside 1e-06..100"),
    ("init-constant=abc", "'abc' is not a number"),
    ("depth=8:1", "STOP=1 is below START=8"),
    ("depth=1:4:0", "STEP=0 must be at least 1"),
    ("depth=0:3", "START=0 is outside 1..16"),
    ("depth=1,17", "17 is outside 1..16"),
    ("depth=1.5", "'1.5' is not a whole number"),
    # Not a number at all: the axis's range is said (an audit: "Write the stop like 1").
    ("depth=1:two", "'two' is not a whole number. Write the stop as a whole number from 1 "
                    "to 16"),
    ("rows-per-call-b=1:abc:x2", "Write the stop as a whole number from 1 to 65536"),
    # The count's own range, not an example (1) it does not allow.
    ("init-constant=1e-4:10:abc", "Write the count as a whole number from 2 to 50."),
    ("activation=elu,,tanh", "empty value in the list"),
    ("activation=elu,swish", "'swish' is not one of"),
    ("activation=elu,elu", "'elu' appears twice"),
    ("init-constant=1,1.0", "1 appears twice"),
    ("depth=2,02", "2 appears twice"),
    ("impls=linear-conv2d", "is not a pair A/B"),
    ("emulate-b=tf33", "'tf33' is not one of none, tf32, bf16, fp16"),
])
def test_bad_axis_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError) as err:
        sw.parse_axis(spec)
    assert message in str(err.value)


# Huge ranges and counts: refused from the numbers as written, before any list is built.
HUGE_SPECS = [
    ("depth=1:10000000", "STOP=10000000 is outside 1..16"),
    ("depth=1:99999999999", "STOP=99999999999 is outside 1..16"),
    ("depth=-99999999999:3", "START=-99999999999 is outside 1..16"),
    ("depth=1:" + "9" * 400, "STOP=99999999...(400 digits) is outside 1..16"),
    ("depth=1:16:1", ""),  # the largest allowed range: 16 points
    ("init-constant=1e-4:10:10000000", "COUNT=10000000 must be from 2 to 50"),
    ("init-constant=1e-4:10:99999999999", "COUNT=99999999999 must be from 2 to 50"),
    ("init-constant=1e-4:1e400:5", "'1e400' is not finite"),
    ("depth=" + ",".join(str(i) for i in range(1, 121)), "120 values, at most 50"),
]


@pytest.mark.parametrize("spec, message", HUGE_SPECS)
def test_huge_ranges_are_refused_before_anything_big_is_allocated(spec, message):
    import tracemalloc

    tracemalloc.start()
    try:
        try:
            sw.parse_axis(spec)
            refused = ""
        except ValueError as err:
            refused = str(err)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message in refused if message else refused == ""
    if message:
        assert "Keep values within 1..16" in refused or "must be from 2 to 50" in refused \
            or "at most 50" in refused or "not finite" in refused
    assert peak < 1_000_000, f"parse_axis({spec[:30]!r}) traced {peak} bytes"


def test_huge_range_in_the_cli_is_one_line_and_exit_2(capsys):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = main(["sweep", "--x", "depth=1:10000000", "--format", "csv"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: axis 'depth=1:10000000': STOP=10000000 is outside 1..16")
    assert "Keep values within 1..16, e.g. 1:8." in err and "Traceback" not in err
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000  # the old code built a 10M-element list: ~1 GB


def test_grid_limits_and_overlapping_axes():
    with pytest.raises(ValueError, match="more than the 400 allowed"):
        sw.sweep(TINY, "depth=1:16", "init-constant=1e-3:1:30")
    with pytest.raises(ValueError, match="both set emulate_b"):
        sw.sweep(TINY, "emulate-b=none,tf32", "emulate-both=none,bf16")
    with pytest.raises(ValueError, match="metric='nope' is not available"):
        sw.sweep(TINY, "depth=1:2", metric="nope")


# --- results --------------------------------------------------------------------------

def test_cells_equal_single_runs_exactly():
    result = sw.sweep(TINY, "init-constant=1e-3:10:3", "activation=elu,tanh",
                      metric="max_ulp_diff")
    assert result.done == result.total == 6 and not result.cancelled
    for row in result.frame.itertuples():
        config = TINY.replace(init_constant=float(sw.parse_axis(
            "init-constant=1e-3:10:3").points[row.x_index].changes[0][1]), activation=row.y)
        single = run(config)
        assert row.value == single.summary.max_ulp_diff
        assert row.verdict == single.verdict.code


def test_switching_metric_reuses_the_cache():
    first = sw.sweep(TINY, "depth=1:2", metric="max_rel_diff")
    second = sw.sweep(TINY, "depth=1:2", metric="max_bound_ratio")
    assert not first.frame.cached.any() and second.frame.cached.all()
    config = TINY.replace(depth=2, widths=())
    assert second.frame.value.iloc[1] == run(config).summary.max_bound_ratio


def test_invalid_cells_carry_the_config_message():
    result = sw.sweep(TINY, "dtype=float32,float16", "emulate-b=none,tf32")
    bad = result.frame[(result.frame.x == "float16") & (result.frame.y == "tf32")].iloc[0]
    assert bad.verdict == sw.INVALID and math.isnan(bad.value)
    assert "emulation rounds float32 operands" in bad.message
    good = result.frame[(result.frame.x == "float32") & (result.frame.y == "tf32")].iloc[0]
    assert good.verdict == "reduced_precision" and good.value > 0
    assert "1 invalid" in result.message


def test_progress_reaches_total_with_time_left_estimates():
    seen = []
    sw.sweep(TINY, "depth=1:3", "activation=elu,relu", progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 7))
    assert seen[-1].done == seen[-1].total == 6 and seen[-1].fraction == 1.0
    assert seen[-1].remaining == 0.0
    assert all(p.remaining >= 0 and p.elapsed >= 0 for p in seen)


def test_cancel_from_the_callback_stops_early():
    calls = []

    def stop_after_two(p):
        calls.append(p.done)
        return p.done < 2

    result = sw.sweep(TINY, "depth=1:4", progress=stop_after_two)
    assert calls == [1, 2]
    assert result.cancelled and result.done == 2 and result.total == 4
    assert result.message.startswith("cancelled after 2 of 4 cells")
    assert list(result.frame.verdict[2:]) == [sw.NOT_RUN, sw.NOT_RUN]


def test_cancel_with_an_event_before_start_runs_nothing():
    event = threading.Event()
    event.set()
    result = sw.sweep(TINY, "depth=1:3", cancel=event)
    assert result.cancelled and result.done == 0
    assert (result.frame.verdict == sw.NOT_RUN).all()


def test_grid_is_y_by_x():
    result = sw.sweep(TINY, "depth=1:3", "activation=elu,tanh")
    grid = result.grid()
    assert list(grid.index) == ["elu", "tanh"] and list(grid.columns) == ["1", "2", "3"]


def test_base_widths_reset_when_depth_varies():
    base = preset("seed", widths=(32, 32, 32))
    result = sw.sweep(base, "depth=2:3")
    assert (result.frame.verdict != sw.INVALID).all()


# --- CLI ---------------------------------------------------------------------------------

def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


TINY_FLAGS = ("--depth", "2", "--widths", "8,8", "--input-dim", "16", "--batch", "2",
              "--samples", "3")


def test_cli_sweep_json_is_strict(capsys):
    code, out, _ = _cli(capsys, "sweep", "--x", "dtype=float32,float16", "--y",
                        "emulate-b=none,tf32", "--metric", "max_bound_ratio", "--format",
                        "json", *TINY_FLAGS)
    assert code == 0
    data = json.loads(out, parse_constant=lambda token: pytest.fail(f"bare {token} in JSON"))
    assert data["metric"] == "max_bound_ratio" and data["total"] == 4
    invalid = [c for c in data["cells"] if c["verdict"] == "invalid"]
    assert len(invalid) == 1 and invalid[0]["value"] == "nan"


def test_cli_sweep_csv_and_table(capsys):
    code, out, _ = _cli(capsys, "sweep", "--x", "depth=1:2", "--y", "activation=elu,tanh",
                        "--format", "csv", *TINY_FLAGS)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == ",".join(sw.FRAME_COLUMNS) and len(lines) == 5
    code, out, _ = _cli(capsys, "sweep", "--x", "depth=1:2", *TINY_FLAGS)
    assert code == 0 and "max_rel_diff:" in out and "2 cells in" in out


@pytest.mark.parametrize("argv, message", [
    (("sweep",), "the following arguments are required: --x"),
    (("sweep", "--x", "depth=1:99"), "STOP=99 is outside 1..16"),
    (("sweep", "--x", "depth=1:2", "--metric", "nope"), "invalid choice: 'nope'"),
    (("sweep", "--x", "depth=1:2", "--dtype", "float99"), "invalid choice: 'float99'"),
])
def test_cli_sweep_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_overflowed_cells_have_no_value_and_say_so():
    """float16 with weights 1 overflows from depth 2 on: such a cell is not "0, identical"
    (both sides inf, and equal infinities differ by 0), it has no value."""
    from explorer import ExperimentConfig
    from explorer.sweep_charts import NONFINITE_COLOR, heatmap_figure

    base = ExperimentConfig(batch=2, samples=2)
    result = sw.sweep(base, "depth=1:4", "dtype=float32,float16", metric="max_rel_diff")
    frame = result.frame
    for row in frame.itertuples():
        report = run(base.replace(depth=int(row.x), widths=(), dtype=row.y))
        if report.verdict.code == "nonfinite":
            assert row.verdict == sw.NONFINITE and math.isnan(row.value)
            assert row.message.startswith("overflow to inf at layer ")
        else:
            assert row.value == report.summary.max_rel_diff
    broken = frame[frame.verdict == sw.NONFINITE]
    assert len(broken) >= 2  # float16 at depths 3 and 4 at least
    text = sw.format_table(result)
    assert "overflow" in text
    csv = frame.to_csv(index=False)
    assert csv.count(",nonfinite,overflow to inf at layer") == len(broken)
    fig = heatmap_figure(result)
    marks = [t for t in fig.data if t.name == "overflow / NaN"]
    assert len(marks) == 1 and marks[0].colorscale[0][1] == NONFINITE_COLOR
    labels = [label for row in marks[0].text for label in row if label]
    assert labels == ["overflow"] * len(broken)
    assert "overflowed (inf/NaN): no value" in fig.layout.annotations[0].text


def test_cached_only_fills_what_was_computed_and_runs_nothing(monkeypatch):
    from explorer import sweep as sw
    from explorer.config import ExperimentConfig

    tiny = ExperimentConfig(depth=2, widths=(8, 8), input_dim=16, batch=2, samples=3)
    sw.CACHE.clear()
    first = sw.sweep(tiny, "init-constant=0.01,0.1,1", "activation=elu,tanh")
    # Forget two cells, as if a cancelled sweep had not reached them.
    for c, activation in ((0.1, "elu"), (1.0, "tanh")):
        sw.CACHE._items.pop(sw.cache_key(tiny.replace(init_constant=c,
                                                      activation=activation)))
    calls = []
    monkeypatch.setattr("explorer.compare.run", lambda config: calls.append(config))
    partial = sw.sweep(tiny, "init-constant=0.01,0.1,1", "activation=elu,tanh",
                       cached_only=True)
    assert calls == []  # nothing computed
    assert partial.cancelled and partial.done == 4 and partial.total == 6
    assert "cancelled after 4 of 6 cells" in partial.message
    # The pass took no time; the message says the cells came from the cache and what
    # their runs took (an audit saw "(0.0 s)" after 6 s of computing).
    shown = sum(r.seconds for r in partial.frame.itertuples() if r.verdict != sw.NOT_RUN)
    assert shown > 0 and partial.message.endswith(
        f"; all from the cache, whose runs took {shown:.1f} s)"), partial.message
    # The same for a whole sweep run again: every cell from the cache.
    again_all = sw.sweep(tiny, "init-constant=0.01,1", "activation=elu")
    runs = sum(r.seconds for r in again_all.frame.itertuples())
    assert again_all.message.endswith(f"; all from the cache, whose runs took {runs:.1f} s")
    by_cell = {(r.x, r.y): r for r in partial.frame.itertuples()}
    assert by_cell[("0.1", "elu")].verdict == sw.NOT_RUN
    assert by_cell[("1", "tanh")].verdict == sw.NOT_RUN
    # A cached cell after a missing one is still filled, with the first sweep's value.
    again = {(r.x, r.y): r.value for r in first.frame.itertuples()}
    assert by_cell[("1", "elu")].value == again[("1", "elu")]
    assert by_cell[("0.01", "tanh")].value == again[("0.01", "tanh")]


# --- the sweep budget, in estimated CPU seconds ------------------------------------------

NARROW_DEEP = ExperimentConfig(depth=8, widths=(64,) * 8, batch=4096, samples=1)


def test_a_sweep_of_narrow_networks_is_priced_by_its_seconds_not_its_operations(monkeypatch):
    from explorer import limits

    monkeypatch.delenv("EXPLORER_MAX_SWEEP_SECONDS", raising=False)
    cell = limits.estimate(NARROW_DEEP)
    # Per tap and per element terms dominate: the GEMMs are a small part of this network.
    model = limits.TIME_MODELS["float32"]
    assert model.per_element * cell.activation_elements > model.per_flop * cell.flops
    # 42 x 3 = 126 cells of it: refused before any cell runs, saying how much and what to do.
    with pytest.raises(ValueError) as err:
        sw.sweep(NARROW_DEEP, "init-constant=1e-4:10:42", "activation=elu,sigmoid,tanh")
    message = str(err.value)
    expected = 126 * cell.seconds
    assert f"about {expected:.0f} CPU seconds for 126 cells, over the 120 s sweep budget" \
        in message
    assert "EXPLORER_MAX_SWEEP_SECONDS" in message and "Use fewer points" in message
    assert len(sw.CACHE._items) == 0


def test_sweep_budget_counts_only_cells_still_to_compute(monkeypatch):
    from explorer import limits

    # Every cell priced at exactly 1 s; a budget of 2.5 s takes two cells, not three.
    monkeypatch.setitem(limits.TIME_MODELS, "float32", limits.TimeModel(1.0, 0.0, 0.0, 0.0))
    monkeypatch.setenv("EXPLORER_MAX_SWEEP_SECONDS", "2.5")
    with pytest.raises(ValueError, match="about 3 CPU seconds for 3 cells, over the 2.5 s"):
        sw.sweep(TINY, "depth=1:3")
    sw.sweep(TINY, "depth=1:2")  # two cells fit, and are cached
    assert sw.sweep(TINY, "depth=1:3").done == 3  # only one left to compute: fits


def test_a_sweep_just_over_its_budget_is_not_told_it_needs_what_the_budget_allows(
        monkeypatch):
    from explorer import limits

    # Three cells of 1.125 s each (3.375 s) against a 3 s budget: rounded, both read "3".
    monkeypatch.setitem(limits.TIME_MODELS, "float32", limits.TimeModel(1.125, 0.0, 0.0, 0.0))
    monkeypatch.setenv("EXPLORER_MAX_SWEEP_SECONDS", "3")
    with pytest.raises(ValueError, match=r"about 3\.38 CPU seconds for 3 cells, over the 3\.00 s"):
        sw.sweep(TINY, "depth=1:3")


def test_the_sweep_page_default_grid_is_within_the_default_budget(monkeypatch):
    from explorer import limits
    from explorer.ui.sweep_state import DEFAULT_X, DEFAULT_Y

    monkeypatch.delenv("EXPLORER_MAX_SWEEP_SECONDS", raising=False)
    cells = sw.cell_configs(preset("seed"), sw.parse_axis(DEFAULT_X), sw.parse_axis(DEFAULT_Y))
    seconds = sum(limits.estimate(c).seconds for _, _, c, _ in cells if c is not None)
    assert seconds < limits.setting("EXPLORER_MAX_SWEEP_SECONDS")
    sw.check_work(cells)
