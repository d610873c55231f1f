"""Sweeps over execution variants: rows per call, threads, compiled implementations, and
the decision metrics."""

import pytest

from explorer import ExperimentConfig, run
from explorer import sweep as sw


def test_rows_per_call_axis_doubles_then_takes_the_whole_batch():
    axis = sw.parse_axis("rows_per_call_b=1:64:x2,whole")
    assert axis.spec == "rows-per-call-b=1:64:x2,whole"
    assert axis.labels == ("1", "2", "4", "8", "16", "32", "64", "whole")
    assert [dict(p.changes)["rows_per_call_b"] for p in axis.points] == \
        [1, 2, 4, 8, 16, 32, 64, 0]
    assert sw.parse_axis("rows-per-call-a=3:9:3,1").labels == ("3", "6", "9", "1")
    assert sw.parse_axis("threads-b=default,1").labels == ("default", "1")


@pytest.mark.parametrize("spec, fragment", [
    ("rows-per-call-b=1:99999999999999999999999:x2", "STOP=99999999...(23 digits) is outside"),
    ("rows-per-call-b=1:65536", "65536 points or more, at most 50"),
    ("rows-per-call-b=1:64:x1", "a factor at least x2"),
    ("rows-per-call-b=0:8", "START=0 is outside 1..65536"),
    ("rows-per-call-b=8:1", "STOP=1 is below START=8"),
    ("rows-per-call-b=whole,0", "0 appears twice"),
    ("rows-per-call-b=1:2:3:4", "is not N, whole, A:B, A:B:STEP or A:B:xF"),
    ("threads-a=1,300", "300 is outside 0..256"),
    ("impls=linear/linear_compiler", "'linear_compiler' is not one of"),
])
def test_bad_axes_are_refused_from_their_numbers(spec, fragment):
    with pytest.raises(ValueError) as err:
        sw.parse_axis(spec)
    assert fragment in str(err.value)


def test_impls_all_pairs_the_eager_implementations_only():
    labels = sw.parse_axis("impls=all").labels
    assert "linear/conv2d" in labels and not any("compiled" in label for label in labels)
    assert sw.parse_axis("impls=linear/linear_compiled").labels == ("linear/linear_compiled",)


def test_sweep_cells_equal_direct_runs_and_map_the_decisions():
    base = ExperimentConfig(impl_b="linear", activation="gelu", init_scheme="torch_default",
                            num_classes=16)
    result = sw.sweep(base, "rows-per-call-b=1,7,whole", "emulate-b=none,bf16",
                      metric="logits_max_abs_diff")
    assert result.done == result.total == 6
    for row in result.frame.itertuples():
        config = base.replace(rows_per_call_b=0 if row.x == "whole" else int(row.x),
                              emulate_b=row.y)
        assert row.value == run(config).summary.logits_max_abs_diff
    flips = sw.sweep(base, "rows-per-call-b=1,7,whole", "emulate-b=none,bf16",
                     metric="argmax_flips")
    assert flips.frame.cached.all()  # switching the metric recomputes nothing
    assert (flips.frame.value >= 0).all()


def test_the_sweep_budget_counts_kernel_calls(monkeypatch):
    monkeypatch.setenv("EXPLORER_MAX_SWEEP_CALLS", "1000")
    sw.CACHE.clear()
    with pytest.raises(ValueError, match=r"kernel calls for 3 cells, over the 1,000 sweep "
                                         r"budget"):
        sw.sweep(ExperimentConfig(impl_b="linear", seed=99), "rows-per-call-b=1,2,3")


def test_sweep_page_sweeps_rows_per_call_against_implementations():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/sweeps.py")
    at.query_params.update({"x": "rows-per-call-b=1:8:x2,whole",
                            "y": "impls=linear/linear,linear/conv2d",
                            "metric": "logits_max_abs_diff"})
    at.run()
    assert not at.exception and not at.error
    assert at.query_params["x"] == "rows-per-call-b=1:8:x2,whole"
    assert len(at.get("plotly_chart")) == 2
    # Picking the axis by hand loads its doubling default.
    at.selectbox(key="sw.x_name").set_value("rows-per-call-a").run()
    assert not at.exception
    assert at.text_input(key="sw.x_values").value == "1:64:x2,whole"
    assert at.selectbox(key="sw.metric").options.count("argmax_flips") == 1
