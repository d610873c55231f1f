"""Hidden precision: per-side bounds, effective bits, and oneDNN's real bf16 on the CPU.

Expectations are properties (bits of known formats, bounds that hold in any summation
order) or independent computations in this run; the real-bf16 part asks this CPU first
and is skipped, with the reason, where the CPU ignores oneDNN's bf16 setting.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import torch

from explorer import ExperimentConfig, machine, run
from explorer import effective as eff
from explorer.export import report_csv
from explorer.precision import gamma, gamma_probabilistic

# ---------------------------------------------------------------------------------------
# The decision rule, by hand


def test_choose_picks_the_nearest_format_on_a_log_scale():
    sims = {24: 1e-8, 11: 1e-4, 8: 8e-4}
    assert eff.choose(1.2e-8, sims) == 24
    assert eff.choose(1.1e-4, sims) == 11
    assert eff.choose(7e-4, sims) == 8
    assert eff.choose(5e-9, sims) == 24  # better than the float32 simulation: float32


def test_choose_keeps_the_compute_dtype_for_another_summation_order():
    # 4x worse than the simulated float32 kernel, but 100x better than TF32: float32.
    assert eff.choose(4e-8, {24: 1e-8, 11: 1e-4, 8: 8e-4}) == 24


def test_choose_says_none_when_nothing_fits():
    assert eff.choose(1e-2, {24: 1e-8, 11: 1e-4, 8: 8e-4}) is None  # 12x past bfloat16
    assert eff.choose(None, {24: 1e-8}) is None


def test_choose_prefers_the_wider_format_when_every_format_is_exact():
    assert eff.choose(0.0, {24: 0.0, 11: 0.0, 8: 0.0}) == 24
    assert eff.choose(3e-5, {24: 3e-5, 11: 3e-5, 8: 3e-5}) == 24


def test_choose_never_names_a_format_its_simulation_cannot_tell_from_the_compute_dtype():
    # An audit's float32 run (tanh, init constant 1: saturated activations, weights 1):
    # every narrower format simulated 3.8e-08 against the float32 kernel's 2.9e-08, as
    # rounding exact operands changes nothing; B observed 3.4e-08, nearer 3.8e-08 on a log
    # scale, and was called "11 bits (TF32 or float16)".
    assert eff.choose(3.4e-8, {24: 2.9e-8, 11: 3.8e-8, 8: 3.8e-8}) == 24
    # Four times the compute dtype's simulation (the tolerance) is still not a format...
    assert eff.choose(1.1e-7, {24: 2.9e-8, 11: 2.9e-8 * 4, 8: 2.9e-8 * 4}) == 24
    # ...but a format clearly apart from it is named, whatever the formats between.
    assert eff.choose(1.5e-5, {24: 2.9e-8, 11: 3.8e-8, 8: 1.6e-5}) == 8
    assert eff.choose(1e-6, {24: 2.9e-8, 11: 3.8e-8, 8: 3.8e-8}) is None
    # float16's own simulation exact, bfloat16's not: an observed error there is bfloat16.
    assert eff.choose(2e-3, {11: 0.0, 8: 2.1e-3}) == 8
    assert eff.choose(2e-3, {11: 0.0, 8: 0.0}) is None


def test_a_small_gap_between_the_formats_names_no_narrower_one():
    # A third audit's float32 run (tanh, weights 5, no bias): near-1 activations round to
    # exactly 1 in every narrower format, so TF32, float16 and bfloat16 all simulated
    # 6.7e-09 against float32's 4.4e-10 (kernel) and 7e-10 (left-to-right), a 10x gap where
    # a real TF32 puts 8192x; B observed 7.6e-09 and was called 11 bits.
    assert eff.choose(7.6e-9, {24: 7e-10, 11: 6.7e-9, 8: 6.7e-9}) is None
    # Half the bits apart is the least gap that names a format: 2^6.5 for TF32 against
    # float32, 2^8 for bfloat16; float16 against bfloat16 keeps the tolerance (2 bits).
    assert eff.choose(7e-10 * 2**6.4, {24: 7e-10, 11: 7e-10 * 2**6.4}) is None
    assert eff.choose(7e-10 * 2**6.6, {24: 7e-10, 11: 7e-10 * 2**6.6}) == 11
    assert eff.choose(7e-10 * 2**8.1, {24: 7e-10, 8: 7e-10 * 2**8.1}) == 8
    assert eff.choose(5e-3, {11: 1e-3, 8: 5e-3}) == 8
    assert eff.choose(3e-3, {11: 1e-3, 8: 3e-3}) == 11  # 1.6 bits apart: not told apart


def test_an_error_far_above_the_kernel_names_nothing_when_no_other_order_was_simulated():
    # A second audit's float32 run (sigmoid, init constant 10: the left-to-right sums'
    # corner of saturated ones rounds nothing): A observed 1e-06, the float32 kernel 2.5e-08,
    # both left-to-right sums 0, TF32 2.1e-06, and A was called "11 bits". Another
    # summation order of float32 could give 1e-06 too; nothing measured says which.
    found = [eff.Candidate("float32 kernel", 24, 2.5e-8),
             eff.Candidate("float32 left-to-right, bias first", 24, 0.0),
             eff.Candidate("float32 left-to-right, bias last", 24, 0.0),
             eff.Candidate("TF32", 11, 2.1e-6), eff.Candidate("float16", 11, 2.1e-6),
             eff.Candidate("bfloat16", 8, 1.7e-5)]
    ones = torch.ones(4, 4, dtype=torch.float64)

    def fitted(observed: float) -> int | None:
        return eff.fit(ones * observed, ones, found).bits

    assert fitted(1e-6) is None
    assert fitted(6e-8) == 24  # within the tolerance of the kernel: float32 still fits
    # With a left-to-right sum that did round on its corner, the usual rule applies.
    rounded = [c if "left-to-right" not in c.name else eff.Candidate(c.name, 24, 1e-8)
               for c in found]
    rounded = [c if c.name != "TF32" else eff.Candidate("TF32", 11, 4e-6) for c in rounded]
    assert eff.fit(ones * 3e-6, ones, rounded).bits == 11
    assert eff.choose(1e-6, {24: 2.5e-8, 11: 2.1e-6, 8: 1.7e-5}, orders_known=False) is None
    assert eff.choose(1.6e-5, {24: 2.5e-8, 11: 2.1e-6, 8: 1.7e-5}) == 8


def test_eleven_bits_are_not_called_float16_where_float16_overflows():
    # A second audit: with B's operands rounded to bfloat16, a layer whose TF32 and
    # bfloat16 simulations tied (3.1e-05) was named "TF32 or float16", though float16's
    # simulation overflowed (inf) there.
    found = [eff.Candidate("float32 kernel", 24, 1e-8), eff.Candidate("TF32", 11, 3.1e-5),
             eff.Candidate("float16", 11, math.inf), eff.Candidate("bfloat16", 8, 3.1e-5)]
    ones = torch.ones(4, 4, dtype=torch.float64)
    fit = eff.fit(ones * 3e-5, ones, found)
    assert (fit.bits, fit.format) == (11, "TF32")
    finite = [c if c.name != "float16" else eff.Candidate("float16", 11, 3.1e-5)
              for c in found]
    assert eff.fit(ones * 3e-5, ones, finite).format == "TF32 or float16"


def test_candidates_never_exceed_the_compute_dtype():
    assert eff.candidates_for("float64") == (53, 24, 11, 8)
    assert eff.candidates_for("float32") == (24, 11, 8)
    assert eff.candidates_for("float16") == (11, 8)
    assert eff.candidates_for("bfloat16") == (8,)


def test_round_to_bits_matches_the_formats():
    x = torch.tensor([1 + 2**-9, 1 + 2**-11 + 2**-20, 3.0, -0.0, 1 + 2**-11],
                     dtype=torch.float32)
    # bfloat16 keeps 8 bits: 1 + 2^-9 rounds to 1 (ties to even).
    assert eff.round_to_bits(x, 8).tolist()[0] == 1.0
    # TF32 keeps 11 bits (ulp 2^-10 at 1): 1 + 2^-11 + 2^-20 is past the midpoint
    # 1 + 2^-11 and rounds up; the midpoint itself ties to even, down to 1.
    assert eff.round_to_bits(x, 11).tolist()[1] == 1 + 2**-10
    assert eff.round_to_bits(x, 11).tolist()[4] == 1.0
    assert eff.round_to_bits(x, 24) is x
    assert eff.round_to_bits(x, 11).tolist()[2:4] == [3.0, -0.0]


def test_probabilistic_gamma_grows_like_sqrt_n():
    u = 2.0**-24
    small, large = gamma_probabilistic(256, u), gamma_probabilistic(4096, u)
    assert small < gamma(256, u) and large < gamma(4096, u)  # tighter than the worst case
    lam = math.sqrt(2 * math.log(2 * 256 / 1e-6)) / (1 - u)
    assert small == pytest.approx(lam * 16 * u, rel=1e-4)  # about lam sqrt(n) u
    assert large / small == pytest.approx(4 * math.sqrt(math.log(2 * 4096e6)
                                                        / math.log(2 * 256e6)), rel=1e-3)


# ---------------------------------------------------------------------------------------
# End to end: the cases


@pytest.mark.parametrize("changes, bits", [
    ({}, (24, 24)),
    ({"emulate_b": "tf32"}, (24, 11)),
    ({"emulate_b": "bf16"}, (24, 8)),
    ({"emulate_b": "fp16", "activation": "tanh", "init_constant": 0.01}, (24, 11)),
    ({"impl_b": "linear", "emulate_a": "tf32", "emulate_b": "tf32"}, (11, 11)),
    ({"emulate_a": "bf16", "impl_b": "conv1d"}, (8, 24)),
    ({"dtype": "float64"}, (53, 53)),
    ({"dtype": "float64", "activation": "tanh", "init_constant": 0.05}, (53, 53)),
    ({"activation": "gelu", "init_scheme": "torch_default", "emulate_a": "tf32"}, (11, 24)),
])
def test_effective_bits_name_each_sides_format(changes, bits):
    report = run(ExperimentConfig(**changes))
    s = report.summary
    assert (s.a_effective_bits, s.b_effective_bits) == bits, [
        (t.a_effective_note, t.b_effective_note) for t in report.taps if t.stage == "pre"]
    compute = eff.DTYPE_BITS[report.config.dtype]
    narrow = [side for side, b in zip("ab", bits) if b < compute]
    if narrow:
        assert report.verdict.code == "reduced_precision"
        # Each narrow side's bits are in the headline; its whole sentence is the headline
        # (one side) or leads the findings (both sides: two would not fit two lines).
        everything = " ".join((report.verdict.headline, *report.verdict.details))
        for side in narrow:
            b = bits["ab".index(side)]
            assert f"{b} significant bits ({eff.BITS_NAME[b]}, emulated)" in \
                report.verdict.headline
            assert (f"{side.upper()} ({getattr(report.config, 'impl_' + side)}) behaves as "
                    f"if its operands had {b} significant bits ({eff.BITS_NAME[b]}, emulated)"
                    in everything)
        if 8 in bits and 11 not in bits:
            assert "TF32" not in report.verdict.headline  # bfloat16 is never "TF32-like"
    else:
        assert report.verdict.code != "reduced_precision"
    assert "identical" not in report.verdict.headline.lower() or not narrow


def test_tf32_at_a_wide_fan_in_is_caught_by_statistics_not_only_the_bound():
    """Fan-in 4096: the worst-case bound is loose, the error statistics still see TF32."""
    report = run(ExperimentConfig(input_dim=4096, emulate_b="tf32", activation="tanh",
                                  init_constant=0.01, batch=4))
    assert report.summary.b_effective_bits == 11
    assert report.summary.a_effective_bits == 24
    assert report.verdict.code == "reduced_precision"


def test_per_side_ratios_are_in_0_1_on_plain_runs_and_probabilistic_is_larger():
    for config in (ExperimentConfig(), ExperimentConfig(activation="tanh", init_constant=0.1),
                   ExperimentConfig(init_scheme="torch_default", activation="gelu",
                                    impl_a="matmul", impl_b="tensordot")):
        for t in run(config).taps:
            if t.stage != "pre":
                continue
            for worst, typical in ((t.a_bound_ratio, t.a_prob_bound_ratio),
                                   (t.b_bound_ratio, t.b_prob_bound_ratio)):
                assert 0 <= worst <= 1, (config, t.name)
                # Same error over a smaller denominator.
                assert typical >= worst


def test_new_keys_are_in_json_and_csv(seed_report):
    data = json.loads(seed_report.to_json())
    assert data["summary"]["a_effective_bits"] == 24
    assert data["summary"]["b_effective_bits"] == 24
    env = data["environment"]
    for key in ("onednn_matmul_fp32_precision", "onednn_conv_fp32_precision",
                "cpu_bf16_honoured", "onednn_isa", "threads_a", "threads_b"):
        assert key in env
    pre = data["taps"][0]
    for key in ("a_bound_ratio", "b_bound_ratio", "a_prob_bound_ratio", "a_effective_bits",
                "b_effective_bits"):
        assert key in pre
    rows = list(csv.DictReader(io.StringIO(report_csv(seed_report))))
    assert {"a_bound_ratio", "b_effective_bits", "a_prob_bound_ratio"} <= set(rows[0])
    assert rows[0]["a_effective_bits"] == "24"


# ---------------------------------------------------------------------------------------
# oneDNN switches: restored after a run and after an error; the real path where honoured


def _onednn_flags():
    return (torch.backends.mkldnn.matmul.fp32_precision,
            torch.backends.mkldnn.conv.fp32_precision)


def test_onednn_switches_are_in_force_during_the_run_and_restored_after():
    before = _onednn_flags()
    report = run(ExperimentConfig(depth=1, batch=2, samples=2, cpu_matmul_precision="bf16",
                                  cpu_conv_precision="ieee"))
    assert report.environment["onednn_matmul_fp32_precision"] == "bf16"
    assert report.environment["onednn_conv_fp32_precision"] == "ieee"
    assert _onednn_flags() == before


def test_onednn_switches_are_restored_after_an_error(monkeypatch):
    import explorer.compare as compare

    before = _onednn_flags()
    seen = {}

    def broken(*args, **kwargs):
        seen["during"] = _onednn_flags()
        raise RuntimeError("boom inside the run")

    monkeypatch.setattr(compare, "Network", broken)
    with pytest.raises(RuntimeError, match="boom inside the run"):
        run(ExperimentConfig(depth=1, cpu_matmul_precision="bf16", cpu_conv_precision="bf16"))
    assert seen["during"] == ("bf16", "bf16")
    assert _onednn_flags() == before


def test_bad_cpu_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError) as err:
        ExperimentConfig(cpu_matmul_precision="fast")
    assert "cpu_matmul_precision='fast' is not allowed: choose one of default, ieee, bf16, " \
           "tf32" in str(err.value)


def _linear_share_of_bound_with_bf16_flag() -> float:
    """Independently of the probe: a Linear with oneDNN's matmul precision at bf16, its
    max error as a share of the float32 worst-case bound."""
    generator = torch.Generator().manual_seed(1)
    x, w = torch.randn(96, 512, generator=generator), torch.randn(48, 512, generator=generator)
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        with torch.no_grad():
            y = torch.nn.functional.linear(x, w)
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before
    exact = x.double() @ w.double().T
    bound = gamma(512, 2.0**-24) * (x.double().abs() @ w.double().abs().T)
    return float(((y.double() - exact).abs() / bound).max())


def test_probe_agrees_with_an_independent_measurement():
    share = _linear_share_of_bound_with_bf16_flag()
    honoured = machine.cpu_bf16_honoured()["matmul"]
    assert honoured == (share > 1), share


def test_real_onednn_bf16_is_named_like_its_emulation():
    if not machine.cpu_bf16_honoured()["matmul"]:
        pytest.skip("this CPU computes float32 even with oneDNN's fp32_precision='bf16' "
                    f"(oneDNN ISA: {machine.onednn_isa()}); the real bf16 path is checked on "
                    "CPUs that honour it, emulation everywhere")
    real = run(ExperimentConfig(cpu_matmul_precision="bf16"))
    assert (real.summary.a_effective_bits, real.summary.b_effective_bits) == (8, 24)
    assert real.verdict.code == "reduced_precision"
    assert real.verdict.headline.startswith("A (linear) behaves as if its operands had 8")
    emulated = run(ExperimentConfig(emulate_a="bf16"))
    for r, e in zip(real.taps, emulated.taps):
        if r.stage == "pre" and r.layer == 1:  # same input: the ratios are comparable
            assert r.a_effective_bits == e.a_effective_bits == 8
    both = run(ExperimentConfig(cpu_matmul_precision="bf16", cpu_conv_precision="bf16"))
    if machine.cpu_bf16_honoured()["conv"]:
        assert (both.summary.a_effective_bits, both.summary.b_effective_bits) == (8, 8)
    assert both.verdict.code == "reduced_precision"


def test_ignored_bf16_switch_is_said_in_the_verdict():
    report = run(ExperimentConfig(cpu_matmul_precision="bf16", depth=1, batch=4))
    said = any("computes it in float32 anyway" in d for d in report.verdict.details)
    assert said == (not machine.cpu_bf16_honoured()["matmul"])


@pytest.mark.parametrize("activation", ["elu", "tanh", "silu", "gelu", "identity"])
@pytest.mark.parametrize("constant", [1e-4, 1e-5])
def test_tiny_weights_with_a_large_bias_are_still_float32(activation, constant):
    """Weights c and biases c with c tiny: the bias dwarfs every product, so a left-to-right
    sum rounds at the bias's size at every step (n times a blocked kernel's error). That
    is float32 in another order, never a narrower format."""
    report = run(ExperimentConfig(activation=activation, init_constant=constant))
    s = report.summary
    assert (s.a_effective_bits, s.b_effective_bits) == (24, 24), [
        (t.a_effective_note, t.b_effective_note) for t in report.taps if t.stage == "pre"]
    assert report.verdict.code != "reduced_precision"


def test_float16_emulation_is_never_called_bfloat16():
    """Tiny values: float16's subnormals cost bits that TF32 (float32's range) keeps."""
    for constant in (1e-4, 1e-6):
        report = run(ExperimentConfig(activation="gelu", init_constant=constant,
                                      emulate_b="fp16"))
        s = report.summary
        assert s.a_effective_bits == 24
        assert s.b_effective_bits in (11, None)
        assert "bfloat16" not in report.verdict.headline
        if s.b_effective_bits == 11:
            assert "float16" in s.b_effective_format


def test_a_plain_side_beside_a_float16_side_stays_float32():
    report = run(ExperimentConfig(init_constant=1e-6, emulate_a="fp16"))
    assert report.summary.b_effective_bits == 24
    assert not report.verdict.headline.startswith("Both sides")
