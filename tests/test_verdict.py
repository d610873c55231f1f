"""The verdict never misleads: every sentence is true of the tap and the element it names.

Two kinds of test. Synthetic reports (hand-made TapMetrics) pin each rule of verdict.py to
a case where a careless rule would say something false. Real runs check the same rules
end to end, with expectations computed independently here (plain torch, math), never
quoted from one machine: the numbers depend on the CPU's summation order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
import torch

from explorer import ExperimentConfig, run
from explorer.reference import RefereeInfo
from explorer.report import Summary, TapMetrics
from explorer.verdict import judge

FLOAT64 = RefereeInfo(True, "float64", "float64 on the CPU")


# ---------------------------------------------------------------------------------------
# Synthetic reports


def tap(layer: int, stage: str, **changes) -> TapMetrics:
    base = dict(
        layer=layer, stage=stage, width=4, fan_in=4,
        max_abs_diff=1e-6, mean_abs_diff=1e-7, median_abs_diff=1e-7, p99_abs_diff=1e-6,
        max_rel_diff=1e-7, mean_rel_diff=1e-8, median_rel_diff=1e-8, p99_rel_diff=1e-7,
        max_ulp_diff=1.0, mean_ulp_diff=0.5, median_ulp_diff=0.0, p99_ulp_diff=1.0,
        max_bits=1.0, mean_bits=0.5, diff_nan_count=0,
        max_abs_value=10.0, mean_abs_value=5.0, rms_value=6.0, headroom_bits=100.0,
        nonfinite_count=0, b_max_abs_value=10.0, b_mean_abs_value=5.0, b_rms_value=6.0,
        b_headroom_bits=100.0, b_nonfinite_count=0, ref_max_abs_value=10.0,
        a_max_rel_err_vs_ref=1e-7, a_mean_rel_err_vs_ref=1e-8, a_median_rel_err_vs_ref=1e-8,
        b_max_rel_err_vs_ref=1e-7, b_mean_rel_err_vs_ref=1e-8, b_median_rel_err_vs_ref=1e-8,
        closer_to_ref="tie", local_max_abs_diff=None, local_max_rel_diff=None,
        local_max_ulp_diff=None, bound_max=None, bound_ratio=None, bound_ratio_p99=None,
        condition_max=None, condition_median=None, assert_close_passes=True,
        needed_atol=0.0, needed_rtol=0.0)
    if stage == "pre":
        base.update(local_max_abs_diff=1e-6, local_max_rel_diff=1e-7, local_max_ulp_diff=1.0,
                    bound_max=1e-5, bound_ratio=0.05, bound_ratio_p99=0.05,
                    condition_max=2.0, condition_median=1.5, a_bound_ratio=0.1,
                    b_bound_ratio=0.1)
    base.update(changes)
    return TapMetrics(**base)


def summary_of(taps: list[TapMetrics], **changes) -> Summary:
    pre = [t for t in taps if t.stage == "pre"]
    values = dict(
        logits_mean_diff=0.0, feats_sum_diff=0.0,
        max_abs_diff=max(t.max_abs_diff for t in taps),
        max_rel_diff=max(t.max_rel_diff for t in taps),
        max_ulp_diff=max(t.max_ulp_diff for t in taps),
        max_bits=max(t.max_bits for t in taps),
        logits_max_abs_diff=taps[-1].max_abs_diff, logits_max_rel_diff=taps[-1].max_rel_diff,
        max_bound_ratio=max((t.bound_ratio for t in pre if t.bound_ratio is not None),
                            default=None),
        closer_to_ref=taps[-1].closer_to_ref,
        a_logits_max_rel_err_vs_ref=taps[-1].a_max_rel_err_vs_ref,
        b_logits_max_rel_err_vs_ref=taps[-1].b_max_rel_err_vs_ref,
        max_condition=max((t.condition_max for t in pre if t.condition_max), default=None),
        nonfinite_a=sum(t.nonfinite_count for t in taps),
        nonfinite_b=sum(t.b_nonfinite_count for t in taps),
        first_nonfinite_layer=None, finite_taps=len(taps))
    values.update(changes)
    return Summary(**values)


def verdict_text(verdict) -> str:
    return " ".join((verdict.headline, *verdict.details))


def test_cancellation_is_never_claimed_at_a_post_tap():
    # The most ULPs are after the activation, and layer 1 has a huge condition number
    # elsewhere: a careless rule pairs them and calls the post tap "cancellation".
    taps = [tap(1, "pre", condition_max=1.6e4, max_ulp_diff=20.0, worst_ulp_condition=3.0),
            tap(1, "post", max_ulp_diff=1100.0, worst_ulp_rel_diff=9e-5,
                worst_ulp_input_a=-44.0, worst_ulp_input_rel_diff=2e-6,
                worst_ulp_act_condition=44.0, worst_ulp_act_error_a=0.0,
                worst_ulp_act_error_b=0.0),
            tap(2, "pre")]
    verdict = judge(ExperimentConfig(activation="sigmoid"), taps, summary_of(taps), FLOAT64)
    assert verdict.code != "cancellation"
    for sentence in verdict.details:
        if "(post)" in sentence:
            assert "large terms cancel" not in sentence
            assert "not cancellation in a sum" in sentence
    activation = next(d for d in verdict.details if d.startswith("Activation"))
    assert "layer 1 (post)" in activation and "x = -44" in activation
    assert "|x f'(x)/f(x)| = 44" in activation and "2e-06 (relative)" in activation


def test_activation_own_rounding_is_named_when_it_dominates():
    taps = [tap(1, "pre"), tap(1, "post", max_ulp_diff=6.5e5, worst_ulp_rel_diff=0.067,
                                worst_ulp_input_a=-4.92, worst_ulp_input_rel_diff=1e-7,
                                worst_ulp_act_condition=20.0, worst_ulp_act_error_a=0.055,
                                worst_ulp_act_error_b=0.016),
            tap(2, "pre")]
    verdict = judge(ExperimentConfig(activation="gelu"), taps, summary_of(taps), FLOAT64)
    sentence = next(d for d in verdict.details if d.startswith("Activation"))
    assert "float32 gelu itself is off by 0.055 (A) and 0.016 (B)" in sentence
    assert "the activation's own rounding" in sentence


def test_numbers_in_a_sentence_belong_to_the_tap_it_names():
    # Layer 1 holds the largest condition number, layer 2 the most ULPs at an element whose
    # own condition number is modest, layer 3 a real cancellation: the sentence must name
    # layer 3 and quote layer 3's element, never 1.6e4.
    taps = [tap(1, "pre", condition_max=1.6e4, max_ulp_diff=100.0, worst_ulp_condition=1.6e4),
            tap(1, "post"),
            tap(2, "pre", condition_max=50.0, max_ulp_diff=9000.0, worst_ulp_condition=44.0,
                worst_ulp_rel_diff=5e-4),
            tap(2, "post"),
            tap(3, "pre", condition_max=3e3, max_ulp_diff=600.0, worst_ulp_condition=2.5e3,
                worst_ulp_rel_diff=4e-5)]
    verdict = judge(ExperimentConfig(), taps, summary_of(taps), FLOAT64)
    assert verdict.code == "cancellation"
    sentence = next(d for d in verdict.details if d.startswith("Cancellation"))
    assert "layer 3 (pre)" in sentence and "600 ULPs" in sentence
    assert "relative 4e-05" in sentence and "is 2.5e+03" in sentence
    assert "1.6e+04" not in sentence and "9e+03" not in sentence


def test_no_cancellation_claim_when_the_worst_element_is_well_conditioned():
    taps = [tap(1, "pre", condition_max=1.6e4, max_ulp_diff=5000.0, worst_ulp_condition=44.0)]
    verdict = judge(ExperimentConfig(depth=1), taps, summary_of(taps), FLOAT64)
    assert verdict.code != "cancellation"
    assert "1.6e+04" not in verdict_text(verdict)


def test_both_sides_reduced_is_never_identical():
    taps = [tap(1, "pre", max_ulp_diff=0.0, max_abs_diff=0.0, bound_ratio=0.0,
                a_bound_ratio=60.0, b_bound_ratio=60.0),
            tap(1, "post", max_ulp_diff=0.0, max_abs_diff=0.0),
            tap(2, "pre", max_ulp_diff=0.0, max_abs_diff=0.0, bound_ratio=0.0,
                a_bound_ratio=109.0, b_bound_ratio=108.0)]
    config = ExperimentConfig(depth=1, impl_b="linear", emulate_a="tf32", emulate_b="tf32")
    verdict = judge(config, taps, summary_of(taps, a_effective_bits=11, b_effective_bits=11),
                    FLOAT64)
    assert verdict.code == "reduced_precision"
    assert verdict.headline == (
        "Both sides compute in lower precision than float32: A (linear) as if with 11 "
        "significant bits (TF32 or float16, emulated); B (linear) as if with 11 significant "
        "bits (TF32 or float16, emulated).")
    # Each side's whole story leads the findings.
    for i, (side, worst) in enumerate((("A", "109x"), ("B", "108x"))):
        assert verdict.details[i] == (
            f"{side} (linear) behaves as if its operands had 11 significant bits (TF32 "
            f"or float16, emulated), not float32's 24: it exceeds the worst-case float32 "
            f"rounding bound at every layer (up to {worst}).")
    assert "identical" not in verdict_text(verdict).lower()


def test_one_side_reduced_names_that_side_and_its_layers():
    taps = [tap(1, "pre", a_bound_ratio=0.2, b_bound_ratio=3.0, bound_ratio=1.6),
            tap(1, "post"), tap(2, "pre", a_bound_ratio=0.1, b_bound_ratio=0.9)]
    verdict = judge(ExperimentConfig(depth=1, emulate_b="bf16"), taps,
                    summary_of(taps, b_effective_bits=8), FLOAT64)
    assert verdict.code == "reduced_precision"
    assert verdict.headline.startswith(
        "B (conv2d) behaves as if its operands had 8 significant bits (bfloat16, emulated), "
        "not float32's 24: it exceeds the worst-case float32 rounding bound at layer 1 (up "
        "to 3x")
    assert "B (conv2d): its operands are rounded to bfloat16 by emulation." in verdict.details
    # Without effective bits (no format fits), it says less, and still names the bound.
    unknown = judge(ExperimentConfig(depth=1, emulate_b="bf16"), taps, summary_of(taps),
                    FLOAT64)
    assert "B (conv2d) computes in lower precision than float32 (no candidate format fits" \
        in unknown.headline
    assert "TF32" not in verdict.headline


def test_closer_sentence_follows_the_numbers_it_shows():
    base = [tap(1, "pre"), tap(1, "post")]
    cases = [(1e-5, 1.5e-5, "a", "slightly closer"), (1e-5, 3e-5, "a", "is closer"),
             (4e-5, 1e-5, "b", "is closer"), (0.0, 0.0, "tie", "equally close")]
    for a_err, b_err, closer, words in cases:
        taps = [*base, tap(2, "pre", a_max_rel_err_vs_ref=a_err, b_max_rel_err_vs_ref=b_err,
                           closer_to_ref=closer)]
        text = verdict_text(judge(ExperimentConfig(depth=1), taps, summary_of(taps),
                                  FLOAT64))
        assert words in text, (a_err, b_err, text)
        if closer in ("a", "b"):
            mine, other = (a_err, b_err) if closer == "a" else (b_err, a_err)
            assert f"max relative error {mine:.3g} vs {other:.3g}" in text
        assert "0 vs 0" not in text


def test_reduced_precision_with_equal_logits_errors_never_says_further():
    # Sigmoid saturates: both logits equal the reference, the culprit shows earlier.
    taps = [tap(1, "pre", a_bound_ratio=0.1, b_bound_ratio=40.0, bound_ratio=20.0,
                a_max_rel_err_vs_ref=4e-6, b_max_rel_err_vs_ref=4e-3),
            tap(1, "post"),
            tap(2, "pre", a_max_rel_err_vs_ref=0.0, b_max_rel_err_vs_ref=0.0,
                closer_to_ref="tie")]
    verdict = judge(ExperimentConfig(depth=1, activation="sigmoid", emulate_b="tf32"), taps,
                    summary_of(taps), FLOAT64)
    text = verdict_text(verdict)
    assert "further" not in text and "0 vs 0" not in text
    assert "at layer 1 (pre) it is A 4e-06, B 0.004" in text


def test_referee_is_named_as_what_it_is():
    taps = [tap(1, "pre", a_max_rel_err_vs_ref=1e-16, b_max_rel_err_vs_ref=3e-16,
                closer_to_ref="a")]
    longdouble = RefereeInfo(True, "longdouble (64-bit significand)", "numpy longdouble")
    text = verdict_text(judge(ExperimentConfig(depth=1, dtype="float64"), taps,
                              summary_of(taps), longdouble))
    assert "extended-precision (64-bit significand) reference" in text
    assert "float64 reference" not in text


def test_vacuous_bound_is_unknown_not_zero_in_the_verdict():
    note = "vacuous: (fan-in + 1) x unit roundoff = 257 x 0.00391 >= 1 in bfloat16"
    taps = [tap(1, "pre", bound_ratio=None, bound_note=note, a_bound_ratio=None,
                b_bound_ratio=None)]
    verdict = judge(ExperimentConfig(depth=1, dtype="bfloat16"), taps, summary_of(taps),
                    FLOAT64)
    text = verdict_text(verdict)
    assert "0% of the worst-case" not in text
    assert "unknown at every layer" in verdict.headline
    assert "vacuous at every layer" in text


def test_overflow_names_the_format_that_overflowed():
    ok = tap(1, "pre", max_abs_value=7e4, b_max_abs_value=7e4)
    post = tap(1, "post", max_abs_value=7e4, b_max_abs_value=7e4)
    broken = tap(2, "pre", b_max_abs_value=math.inf, b_nonfinite_count=4, max_abs_diff=math.inf)
    taps = [ok, post, broken]
    summary = summary_of(taps, first_nonfinite_layer=2, first_nonfinite_stage="pre",
                         finite_taps=2, finite_max_abs_diff=1e-6, finite_max_rel_diff=1e-7,
                         finite_max_ulp_diff=1.0)
    fp16 = judge(ExperimentConfig(depth=1, emulate_b="fp16"), taps, summary, FLOAT64)
    assert "float16's largest value (65504) is exceeded by B's operands" in fp16.headline
    assert "float32's largest value" not in fp16.headline
    plain = judge(ExperimentConfig(depth=1), taps, summary, FLOAT64)
    assert "float32's largest value (3.4028e+38) is exceeded" in plain.headline
    assert any("over the 2 finite taps (L1 pre to L1 post)" in d for d in plain.details)


# ---------------------------------------------------------------------------------------
# Real runs


def sentences(report) -> list[str]:
    return [report.verdict.headline, *report.verdict.details]


PLAIN_CONFIGS = [
    ExperimentConfig(),
    ExperimentConfig(activation="sigmoid", init_constant=10.0),
    ExperimentConfig(activation="gelu"),
    ExperimentConfig(activation="tanh", init_constant=0.01),
    ExperimentConfig(activation="silu", init_scheme="torch_default"),
    ExperimentConfig(impl_a="tensordot", impl_b="conv1d", activation="softplus",
                     init_constant=0.1),
]


@pytest.fixture(scope="module")
def plain_reports():
    return [run(config) for config in PLAIN_CONFIGS]


def _ulps32(a: float, b: float) -> int:
    """ULP distance of two float32 values, from their bit patterns (independent of the
    library's ordinal mapping)."""
    def ordinal(v):
        bits = torch.tensor([v], dtype=torch.float32).view(torch.int32).item()
        return bits if bits >= 0 else -(bits & 0x7FFFFFFF)
    return abs(ordinal(a) - ordinal(b))


def test_worst_element_fields_describe_one_element(plain_reports):
    """Every tap's worst-ULP fields are one element's: its A and B values reproduce the
    tap's max ULPs and the quoted relative difference."""
    for report in plain_reports:
        for t in report.taps:
            if not t.max_ulp_diff:
                continue
            assert _ulps32(t.worst_ulp_a, t.worst_ulp_b) == t.max_ulp_diff, t.name
            rel = abs(t.worst_ulp_a - t.worst_ulp_b) / max(abs(t.worst_ulp_a),
                                                           abs(t.worst_ulp_b))
            assert t.worst_ulp_rel_diff == pytest.approx(rel, rel=1e-12), t.name


def test_plain_float32_runs_stay_within_each_sides_bound(plain_reports):
    for report in plain_reports:
        for t in report.taps:
            if t.stage == "pre":
                assert 0 <= t.a_bound_ratio <= 1, (report.config, t.name)
                assert 0 <= t.b_bound_ratio <= 1, (report.config, t.name)
        assert report.verdict.code != "reduced_precision"


def test_post_tap_sentences_never_claim_cancellation(plain_reports):
    for report in plain_reports:
        for sentence in sentences(report):
            if "(post)" in sentence:
                assert "large terms cancel" not in sentence, sentence


def test_sigmoid_amplification_matches_an_independent_derivative():
    report = run(ExperimentConfig(activation="sigmoid", init_constant=10.0))
    checked = 0
    for t in report.taps:
        if t.stage != "post" or t.worst_ulp_input_a is None:
            continue
        x = t.worst_ulp_input_a
        # sigmoid'(x) = s(x)(1 - s(x)), so x f'(x) / f(x) = x (1 - s(x)).
        expected = abs(x * (1 - 1 / (1 + math.exp(-x))))
        assert t.worst_ulp_act_condition == pytest.approx(expected, rel=1e-9), t.name
        checked += 1
    assert checked  # layer 1's difference reaches its activation on every machine
    sentence = next((s for s in sentences(report) if s.startswith("Activation")), None)
    if sentence is not None:
        match = re.search(r"layer (\d+) \(post\).*\|x f'\(x\)/f\(x\)\| = (\S+) there",
                          sentence)
        assert match, sentence
        t = report.tap(int(match.group(1)), "post")
        assert match.group(2) == f"{t.worst_ulp_act_condition:.3g}"


def test_gelu_own_error_matches_an_independent_exact_gelu():
    report = run(ExperimentConfig(activation="gelu"))
    t = max((t for t in report.taps if t.stage == "post"), key=lambda t: t.max_ulp_diff)
    if t.worst_ulp_input_a is None:
        pytest.skip("no difference after any activation on this machine")
    x = t.worst_ulp_input_a
    exact = 0.5 * x * (1 + math.erf(x / math.sqrt(2)))
    # A's activation output at that element, as its network computed it (torch's vector
    # kernel; a one-element call may take another code path and round differently).
    expected = abs(t.worst_ulp_a - exact) / abs(exact) if exact else math.inf
    assert t.worst_ulp_act_error_a == pytest.approx(expected, rel=1e-9)


def test_seed_cancellation_sentence_names_layer_1_and_its_own_element(seed_report, forum):
    """Recomputed with plain torch: the element of layer 1 with the most ULPs between the
    forum's Linear and Conv2d outputs, and its condition number."""
    sentence = next(s for s in sentences(seed_report) if s.startswith("Cancellation"))
    assert "layer 1 (pre)" in sentence
    from forum_reference import ForumConv, ForumLinear, _constant_init

    sizes = (256, 64, 128, 256, 4)
    linear, conv = ForumLinear(sizes), ForumConv(sizes)
    linear.apply(_constant_init)
    conv.apply(_constant_init)
    with torch.no_grad():
        a = linear.backbone[0](forum.x)
        b = conv.backbone[0](forum.x.unsqueeze(3).permute(0, 2, 1, 3)).squeeze(3).permute(0, 2, 1)
    a_flat, b_flat = a.reshape(-1), b.reshape(-1)
    ulps = [_ulps32(float(p), float(q)) for p, q in zip(a_flat, b_flat)]
    worst = max(range(len(ulps)), key=ulps.__getitem__)
    magnitude = forum.x.double().abs().sum(-1).reshape(-1)[worst // 64] + 1
    condition = float(magnitude / abs(float(a_flat[worst])))
    assert f"{float(max(ulps)):.3g} ULPs apart" in sentence
    assert f"is {condition:.3g}: large terms cancel" in sentence


def test_both_sides_tf32_is_reduced_precision_end_to_end():
    report = run(ExperimentConfig(impl_b="linear", emulate_a="tf32", emulate_b="tf32"))
    assert report.summary.max_ulp_diff == 0  # they agree with each other...
    assert report.verdict.code == "reduced_precision"  # ...and both are wrong
    assert report.verdict.headline.startswith("Both sides compute in lower precision")
    assert report.summary.a_max_bound_ratio > 1 and report.summary.b_max_bound_ratio > 1


def test_vacuous_bound_is_null_with_its_reason():
    report = run(ExperimentConfig(dtype="bfloat16"))  # fan-in 256: 257 x 2^-8 >= 1
    first = report.taps[0]
    assert first.fan_in == 256
    assert first.bound_ratio is None and first.bound_max is None
    assert first.a_bound_ratio is None and first.b_bound_ratio is None
    assert first.bound_note.startswith("vacuous: (fan-in + 1) x unit roundoff = 257")
    data = json.loads(report.to_json())
    assert data["taps"][0]["bound_ratio"] is None
    known = [t.bound_ratio for t in report.taps if t.bound_ratio is not None]
    assert report.summary.max_bound_ratio == (max(known) if known else None)
    # float16 with fan-in 4096: 4097 x 2^-11 >= 1, vacuous too.
    wide = run(ExperimentConfig(dtype="float16", input_dim=4096, batch=2, samples=1,
                                activation="tanh", init_constant=0.001))
    assert wide.taps[0].bound_ratio is None and "vacuous" in wide.taps[0].bound_note


def test_closer_to_ref_follows_the_logits_max_errors(plain_reports):
    for report in [*plain_reports, run(ExperimentConfig(activation="sigmoid",
                                                        emulate_b="tf32"))]:
        s = report.summary
        a, b = s.a_logits_max_rel_err_vs_ref, s.b_logits_max_rel_err_vs_ref
        assert s.closer_to_ref == ("tie" if a == b else "a" if a < b else "b")
        for t in report.taps:
            x, y = t.a_max_rel_err_vs_ref, t.b_max_rel_err_vs_ref
            assert t.closer_to_ref == ("tie" if x == y else "a" if x < y else "b")
        text = " ".join(sentences(report))
        assert "0 vs 0" not in text
        if "slightly closer" in text:
            mine, other = sorted((a, b))
            assert other / mine < 2


@pytest.mark.parametrize("changes, fmt_name", [
    ({"emulate_b": "fp16"}, "float16"),
    ({"dtype": "float16"}, "float16"),
    ({"init_constant": 100.0, "depth": 8, "batch": 2, "samples": 1}, "float32"),
])
def test_overflow_sentence_names_the_right_format(changes, fmt_name):
    report = run(ExperimentConfig(**changes))
    assert report.verdict.code == "nonfinite"
    assert f"{fmt_name}'s largest value" in report.verdict.headline
    other = {"float16": "float32", "float32": "float16"}[fmt_name]
    assert f"{other}'s largest value" not in report.verdict.headline
    s = report.summary
    first = report.tap(s.first_nonfinite_layer, s.first_nonfinite_stage)
    assert f"layer {first.layer} ({first.stage})" in report.verdict.headline
    assert s.finite_taps == report.taps.index(first)


def test_referee_named_extended_for_float64_runs():
    report = run(ExperimentConfig(dtype="float64", activation="tanh", init_constant=0.1))
    text = " ".join(sentences(report))
    assert "float64 reference" not in text
    if report.environment["referee"].startswith("longdouble"):
        assert "extended-precision" in text or report.verdict.code == "identical"


def test_summary_fields_are_in_json(seed_report):
    data = json.loads(seed_report.to_json())
    for key in ("a_max_bound_ratio", "b_max_bound_ratio", "first_nonfinite_stage",
                "finite_taps", "finite_max_abs_diff"):
        assert key in data["summary"]
    for key in ("a_bound_ratio", "b_bound_ratio", "bound_note", "worst_ulp_condition"):
        assert key in data["taps"][0]
    assert {f.name for f in dataclasses.fields(TapMetrics)} <= set(data["taps"][0])


def test_cuda_tf32_default_is_named_as_the_cause_on_a_gpu_config():
    """No GPU here: the verdict's reasoning about CUDA switches is checked on a synthetic
    report of a cuda:0 config (the numbers are what a TF32 convolution would produce)."""
    taps = [tap(1, "pre", b_bound_ratio=40.0, bound_ratio=20.0), tap(1, "post"),
            tap(2, "pre", b_bound_ratio=60.0, bound_ratio=30.0)]
    summary = summary_of(taps, a_effective_bits=24, b_effective_bits=11)
    on = judge(ExperimentConfig(depth=1, device="cuda:0"), taps, summary, FLOAT64)
    assert on.headline.startswith("B (conv2d) behaves as if its operands had 11 significant "
                                  "bits (TF32 or float16, cuDNN's TF32 default)")
    assert any("cuDNN convolutions may use TF32 (on by default in PyTorch" in d
               for d in on.details)
    off = judge(ExperimentConfig(depth=1, device="cuda:0", conv_tf32="off"), taps, summary,
                FLOAT64)
    assert "cuDNN" not in verdict_text(off)  # switched off: no cause claimed from the settings
    matmul = judge(ExperimentConfig(depth=1, device="cuda:0", impl_b="linear",
                                    matmul_tf32="on"), taps, summary, FLOAT64)
    assert "(TF32 or float16, cuBLAS TF32 allowed)" in matmul.headline
    assert "cuBLAS matmuls were allowed TF32 for this run" in verdict_text(matmul)


def test_overflow_seen_only_as_nan_still_names_the_format():
    """Mixed-sign weights: float16-rounded operands overflow to +-inf and inf - inf makes
    every output NaN; the sentence must still name float16's range."""
    report = run(ExperimentConfig(init_scheme="normal", init_constant=100.0, depth=6,
                                  emulate_b="fp16", batch=4))
    assert report.verdict.code == "nonfinite"
    if "overflow" in report.verdict.headline:
        assert "float16's largest value (65504) is exceeded by B's operands" in \
            report.verdict.headline
        assert "float32's largest value" not in report.verdict.headline
    else:  # a NaN with no operand past float16's range on this machine: said as such
        assert "NaN first appears" in report.verdict.headline


def test_a_difference_born_in_the_activation_is_named_there_not_as_zero_percent():
    """Compiled vs eager: every affine layer agrees bit for bit fed the same input
    (local ratio 0), yet the outputs part at the first activation. The headline must say
    where they part, not "0% of the bound"; one ULP is "1 ULP"."""
    taps = [tap(1, "pre", max_abs_diff=0.0, max_ulp_diff=0.0, bound_ratio=0.0),
            tap(1, "post", max_abs_diff=4e-6, max_ulp_diff=1.0),
            tap(2, "pre", bound_ratio=0.0)]
    verdict = judge(ExperimentConfig(depth=1, impl_b="linear_compiled"), taps,
                    summary_of(taps), FLOAT64)
    assert verdict.headline == (
        "Every affine layer agrees to the last bit when fed the same input; A and B first "
        "differ at layer 1 (post-activation), where both apply elu to identical inputs: "
        "the two elu implementations differ by up to 1 ULP.")
    assert "1 ULPs" not in verdict_text(verdict)
    # The first difference at a later activation is named there.
    inherited = [tap(1, "pre", max_abs_diff=0.0, max_ulp_diff=0.0, bound_ratio=0.0),
                 tap(1, "post", max_abs_diff=0.0, max_ulp_diff=0.0),
                 tap(2, "pre", max_abs_diff=0.0, max_ulp_diff=0.0, bound_ratio=0.0),
                 tap(2, "post", max_abs_diff=1e-6, max_ulp_diff=3.0),
                 tap(3, "pre", bound_ratio=0.0)]
    headline = judge(ExperimentConfig(depth=2, impl_b="linear_compiled"), inherited,
                     summary_of(inherited), FLOAT64).headline
    assert "first differ at layer 2 (post-activation)" in headline
    assert "3 ULPs" in headline
