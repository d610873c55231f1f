"""compare.run end to end: the forum case, the TF32 case, edge cases, the report contract."""

import json
import math

import pytest
import torch

from explorer import ExperimentConfig, run

TAP_KEYS = {"layer", "stage", "width", "max_abs_diff", "mean_abs_diff", "max_rel_diff",
            "max_ulp_diff", "max_abs_value", "b_max_abs_value", "a_max_rel_err_vs_ref",
            "b_max_rel_err_vs_ref", "bound_ratio"}
SUMMARY_KEYS = {"logits_mean_diff", "feats_sum_diff", "max_abs_diff", "max_rel_diff",
                "max_ulp_diff", "verdict"}


def test_taps_are_ordered_by_layer_pre_before_post(seed_report):
    names = [(t.layer, t.stage) for t in seed_report.taps]
    assert names == [(1, "pre"), (1, "post"), (2, "pre"), (2, "post"), (3, "pre"),
                     (3, "post"), (4, "pre")]
    assert [t.width for t in seed_report.taps] == [64, 64, 128, 128, 256, 256, 4]


def test_seed_is_equivalent_up_to_rounding(seed_report):
    pre = [t for t in seed_report.taps if t.stage == "pre"]
    assert all(0 <= t.bound_ratio <= 1 for t in pre)
    assert all(t.bound_ratio is None for t in seed_report.taps if t.stage == "post")
    assert seed_report.verdict.code in ("rounding", "magnitude", "cancellation")
    assert seed_report.verdict.headline.startswith("Equivalent up to rounding")
    assert "% of the worst-case float32 bound" in seed_report.verdict.headline
    # the forum's magnitudes: ~1e8 at the logits, differences of whole units there
    assert seed_report.taps[-1].max_abs_value > 1e7
    assert seed_report.summary.max_abs_diff >= 1


def test_statistics_invariants(seed_report):
    for t in seed_report.taps:
        assert t.median_abs_diff <= t.p99_abs_diff <= t.max_abs_diff
        assert t.median_rel_diff <= t.p99_rel_diff <= t.max_rel_diff
        assert t.mean_abs_diff <= t.max_abs_diff
        assert t.max_bits == pytest.approx(math.log2(1 + t.max_ulp_diff))
        assert sum(t.bits_histogram) == 80 * t.width
        assert t.headroom_bits > 0 and t.nonfinite_count == 0


def test_local_difference_is_within_bound_and_first_layer_local_equals_total(seed_report):
    first = seed_report.tap(1, "pre")
    assert first.local_max_abs_diff == first.max_abs_diff  # same input at layer 1
    assert first.condition_max > 1e3  # a row of 256 normals summing near zero


def test_tf32_emulation_breaks_the_float32_bound_on_side_b():
    report = run(ExperimentConfig(emulate_b="tf32"))
    assert report.tap(1, "pre").bound_ratio > 1
    assert report.verdict.code == "reduced_precision"
    assert "B (conv2d) behaves as if its operands had 11 significant bits" in \
        report.verdict.headline
    assert "exceeds the worst-case float32 rounding bound" in report.verdict.headline
    assert "TF32" in report.verdict.headline
    summary = report.summary
    assert summary.b_logits_max_rel_err_vs_ref > 10 * summary.a_logits_max_rel_err_vs_ref
    assert report.summary.closer_to_ref == "a"


def test_emulation_on_side_a_is_named_side_a():
    report = run(ExperimentConfig(emulate_a="bf16"))
    assert report.verdict.code == "reduced_precision"
    assert report.verdict.headline.startswith("A (linear)")


def test_float16_overflow_is_reported_not_crashed():
    report = run(ExperimentConfig(dtype="float16"))
    assert report.verdict.code == "nonfinite"
    assert "overflow to inf" in report.verdict.headline
    assert report.summary.first_nonfinite_layer is not None
    bad = report.tap(report.summary.first_nonfinite_layer, "pre")
    assert math.isinf(bad.max_abs_value) and bad.headroom_bits == -math.inf
    json.loads(report.to_json())  # strict JSON still


def test_all_zero_layers_give_zero_differences_not_nan():
    # relu with weights -1: layer 2 is negative everywhere, so its post tap is all zeros.
    report = run(ExperimentConfig(activation="relu", init_constant=-1.0))
    post2 = report.tap(2, "post")
    assert post2.max_abs_value == 0 and post2.max_rel_diff == 0 and post2.diff_nan_count == 0
    assert post2.headroom_bits == math.inf


@pytest.mark.parametrize("changes", [
    {"depth": 1}, {"depth": 1, "widths": (1,)}, {"batch": 1, "samples": 1},
    {"num_classes": 1, "input_dim": 1}, {"dtype": "bfloat16"}, {"dtype": "float64"},
    {"impl_a": "tensordot", "impl_b": "conv1d"}, {"impl_a": "matmul", "impl_b": "matmul"},
    {"activation": "softplus", "init_scheme": "normal", "init_constant": 0.05},
])
def test_edge_configs_run_and_serialise(changes):
    report = run(ExperimentConfig(**changes))
    data = json.loads(report.to_json())
    assert len(data["taps"]) == 2 * report.config.depth + 1
    assert report.verdict.headline


def test_same_implementation_is_bit_identical():
    report = run(ExperimentConfig(impl_a="conv2d", impl_b="conv2d"))
    assert report.verdict.code == "identical"
    assert report.summary.max_ulp_diff == 0


def test_json_contract_keys_and_strictness(seed_report):
    text = seed_report.to_json()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert {"config", "environment", "summary", "taps"} <= set(data)
    assert SUMMARY_KEYS <= set(data["summary"])
    for tap in data["taps"]:
        assert TAP_KEYS <= set(tap)
    env = data["environment"]
    assert {"torch_version", "device_name", "threads", "backend_flags"} <= set(env)


def test_dataframe_is_tidy(seed_report):
    frame = seed_report.to_frame()
    assert list(frame["tap"]) == [t.name for t in seed_report.taps]
    assert "max_rel_diff" in frame.columns and len(frame) == 7


def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError) as excinfo:
        run(ExperimentConfig(device="cuda:7"))
    assert "device='cuda:7' is not available" in str(excinfo.value)
    assert "Available here: cpu" in str(excinfo.value) or "cuda:0" in str(excinfo.value)


def test_assert_close_yardstick(seed_report, forum):
    logits = seed_report.taps[-1]
    # Whether assert_close passes depends on this machine's summation order: ask it.
    try:
        torch.testing.assert_close(forum.logits_conv, forum.logits_linear)
        passes = True
    except AssertionError:
        passes = False
    assert logits.assert_close_passes is passes
    assert logits.needed_atol == logits.max_abs_diff


def test_nan_from_mixed_sign_overflow_is_counted():
    report = run(ExperimentConfig(dtype="float16", init_scheme="normal", init_constant=100.0))
    assert report.verdict.code == "nonfinite"
    assert report.summary.nonfinite_a > 0
    assert any(t.diff_nan_count > 0 for t in report.taps)
    assert math.isnan(report.summary.logits_mean_diff)
    json.loads(report.to_json())


def test_outputs_are_capped_but_metrics_use_every_row():
    from explorer.compare import OUTPUT_ROWS

    report = run(ExperimentConfig(batch=2048, samples=1, depth=1))
    assert report.outputs["logits_a"].shape == (OUTPUT_ROWS, 4)
    assert sum(report.taps[0].bits_histogram) == 2048 * 64


@pytest.mark.parametrize("layout", ["contiguous", "conv2d", "conv1d"])
def test_row_ranges_and_single_elements_read_what_a_whole_copy_would(layout):
    # compare._row_range and tapstats.element avoid copying a permuted tap whole; they must
    # read exactly what reshape(-1, C) and flat() of a full copy read, across batch
    # boundaries and past the end.
    from explorer import tapstats
    from explorer.compare import _row_range
    from explorer.models import from_native, to_native

    batch, samples, width = 5, 3, 4
    x = torch.arange(batch * samples * width, dtype=torch.float32).reshape(batch, samples, width)
    t = x if layout == "contiguous" else from_native(layout, to_native(layout, x).contiguous())
    assert torch.equal(t, x) and (layout == "contiguous") == t.is_contiguous()
    rows = x.reshape(-1, width)
    for start, stop in [(0, 1), (0, 15), (2, 7), (3, 6), (5, 9), (14, 15), (13, 40), (15, 20)]:
        assert torch.equal(_row_range(t, start, stop), rows[start:stop]), (start, stop)
    for index in range(x.numel()):
        assert float(tapstats.element(t, index)) == float(tapstats.flat(x)[index])
