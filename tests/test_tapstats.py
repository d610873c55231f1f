"""Both metric engines (the fused numba pass and the torch fallback) give the numbers of the
metric definitions, bit for bit, on the real taps of ~20 configs and on edge cases.

The expectation is a slow, plain restatement of shared/DESIGN.md's definitions written here
with numpy and Python only (nothing from explorer.metrics, tapstats or kernels), computed
on the same tensors in the same run: no expected number depends on this machine's
summation order or vector width, so the tests hold on any CPU and thread count.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from explorer import compare, tapstats
from explorer.config import ExperimentConfig, preset
from explorer.precision import UNIT_ROUNDOFF, gamma, gamma_probabilistic

numba = pytest.importorskip("numba")  # the fused engine; the fallback is tested regardless

ENGINES = ("numba", "torch")

# --- the definitions, plainly -------------------------------------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).reshape(-1).numpy()


def _abs_diff(x, y):
    with np.errstate(invalid="ignore"):
        d = np.abs(x - y)
    d[x == y] = 0.0  # equal values, also equal infinities, differ by 0
    return d


def _ratio(n, d):
    """0 where n == 0 (0/0 = 0), inf where both are infinite, NaN where either is NaN."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = n / d
    r[n == 0] = 0.0
    r[np.isinf(n) & np.isinf(d)] = math.inf
    r[np.isnan(n) | np.isnan(d)] = math.nan
    return r


_MASKS = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.float64: (torch.int64, (1 << 63) - 1),
          torch.float16: (torch.int16, 0x7FFF), torch.bfloat16: (torch.int16, 0x7FFF)}


def _ordinal(t: torch.Tensor) -> np.ndarray:
    int_dtype, mask = _MASKS[t.dtype]
    bits = t.detach().cpu().contiguous().view(int_dtype).reshape(-1).numpy().astype(np.int64)
    magnitude = bits & mask
    return np.where(bits < 0, -magnitude, magnitude)


def _ulp(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """|ord(x) - ord(y)|; for float64 with opposite signs |ord(x)| + |ord(y)| in float64."""
    ox, oy = _ordinal(x), _ordinal(y)
    opposite = ((ox > 0) & (oy < 0)) | ((ox < 0) & (oy > 0))
    if x.dtype == torch.float64:
        same = np.abs(np.where(opposite, 0, ox - oy)).astype(np.float64)
        u = np.where(opposite, np.abs(ox).astype(np.float64) + np.abs(oy).astype(np.float64),
                     same)
    else:
        u = np.abs(ox - oy).astype(np.float64)
    u[np.isnan(_np(x)) | np.isnan(_np(y))] = math.nan
    return u


def _log2p1(u: np.ndarray) -> np.ndarray:
    return np.array([math.log2(1.0 + v) for v in u.tolist()])  # the C library's log2


def _sorted_quantile(ordered: np.ndarray, q: float) -> float:
    position = q * (len(ordered) - 1)
    lo, hi = ordered[math.floor(position)], ordered[math.ceil(position)]
    frac = position - math.floor(position)
    if lo == hi or frac == 0:
        return float(lo)
    return float(hi) if math.isinf(hi) else float(lo + (hi - lo) * frac)


def _stats(values: np.ndarray) -> dict:
    kept = values[~np.isnan(values)]
    if kept.size == 0:
        return dict.fromkeys(("max", "mean", "median", "p99"), math.nan) | {
            "nan": int(values.size)}
    ordered = np.sort(kept)
    with np.errstate(over="ignore"):
        mean = float(np.mean(kept))  # numpy's pairwise mean: the definition of "mean"
    return {"max": float(ordered[-1]), "mean": mean, "median": _sorted_quantile(ordered, 0.5),
            "p99": _sorted_quantile(ordered, 0.99), "nan": int(values.size - kept.size)}


def _rms(values: np.ndarray, wide: bool) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan
    if not wide:
        return math.sqrt(float(np.mean(finite * finite)))
    largest = float(finite.max())
    if largest == 0:
        return 0.0
    scale = 2.0 ** math.frexp(largest)[1]
    return scale * math.sqrt(float(np.mean((finite / scale) ** 2)))


ATOL_RTOL = {"float64": (1e-7, 1e-7), "float32": (1e-5, 1.3e-6), "float16": (1e-5, 1e-3),
             "bfloat16": (1e-5, 1.6e-2)}
HIST_BINS = {"float64": 65, "float32": 33, "float16": 17, "bfloat16": 17}


def expected_tap(inputs: dict, dtype_name: str, gamma: float) -> dict:
    """Every TapMetrics number the engines compute, from the definitions."""
    a_t, b_t = inputs["a"], inputs["b"]
    a, b = _np(a_t), _np(b_t)
    wide = a_t.dtype == torch.float64
    abs_a, abs_b = np.abs(a), np.abs(b)
    diff = _abs_diff(a, b)
    rel = _ratio(diff, np.maximum(abs_a, abs_b))
    ulp = _ulp(a_t, b_t)
    bits = _log2p1(ulp)
    s_diff, s_rel, s_ulp, s_bits = _stats(diff), _stats(rel), _stats(ulp), _stats(bits)
    s_a, s_b = _stats(abs_a), _stats(abs_b)
    kept_bits = bits[~np.isnan(bits)]
    histogram = np.bincount(np.clip(np.floor(kept_bits), 0, HIST_BINS[dtype_name] - 1)
                            .astype(np.int64), minlength=HIST_BINS[dtype_name])
    atol, rtol = ATOL_RTOL[dtype_name]
    has_nan = bool(np.isnan(diff).any())
    out = {
        "max_abs_diff": s_diff["max"], "mean_abs_diff": s_diff["mean"],
        "median_abs_diff": s_diff["median"], "p99_abs_diff": s_diff["p99"],
        "max_rel_diff": s_rel["max"], "mean_rel_diff": s_rel["mean"],
        "median_rel_diff": s_rel["median"], "p99_rel_diff": s_rel["p99"],
        "max_ulp_diff": s_ulp["max"], "mean_ulp_diff": s_ulp["mean"],
        "median_ulp_diff": s_ulp["median"], "p99_ulp_diff": s_ulp["p99"],
        "max_bits": s_bits["max"], "mean_bits": s_bits["mean"],
        "diff_nan_count": s_diff["nan"],
        "max_abs_value": s_a["max"], "mean_abs_value": s_a["mean"],
        "rms_value": _rms(abs_a, wide),
        "nonfinite_count": int((~np.isfinite(a)).sum()),
        "b_max_abs_value": s_b["max"], "b_mean_abs_value": s_b["mean"],
        "b_rms_value": _rms(abs_b, wide), "b_nonfinite_count": int((~np.isfinite(b)).sum()),
        "assert_close_passes": bool((diff <= atol + rtol * abs_a).all()) and not has_nan,
        "needed_atol": math.nan if has_nan else float(diff.max()),
        "needed_rtol": math.nan if has_nan else float(_ratio(diff, abs_a).max()),
        "bits_histogram": tuple(int(c) for c in histogram),
    }
    width = a_t.shape[-1]
    if s_ulp["max"] > 0:  # the first element with the most ULPs, NaN left out
        i = int(np.argmax(np.where(np.isnan(ulp), -1.0, ulp)))
        out.update(worst_ulp_row=i // width, worst_ulp_col=i % width,
                   worst_ulp_a=float(a[i]), worst_ulp_b=float(b[i]),
                   worst_ulp_rel_diff=float(rel[i]))
    if s_diff["max"] > 0 and math.isfinite(s_diff["max"]):
        i = int(np.argmax(np.where(np.isnan(diff), -1.0, diff)))
        out.update(worst_abs_rel_diff=float(rel[i]), worst_abs_ulp_diff=float(ulp[i]),
                   worst_abs_value=float(abs_a[i]))
    if "a_err_given" in inputs:  # errors computed by the longdouble referee
        err_a, err_b = _np(inputs["a_err_given"]), _np(inputs["b_err_given"])
    elif "reference" in inputs:
        r = _np(inputs["reference"])
        err_a = np.where(r == 0, _abs_diff(a, r), _ratio(_abs_diff(a, r), np.abs(r)))
        err_b = np.where(r == 0, _abs_diff(b, r), _ratio(_abs_diff(b, r), np.abs(r)))
    if "reference" in inputs:
        s_ea, s_eb = _stats(err_a), _stats(err_b)
        out.update(ref_max_abs_value=_stats(np.abs(_np(inputs["reference"])))["max"],
                   a_max_rel_err_vs_ref=s_ea["max"], a_mean_rel_err_vs_ref=s_ea["mean"],
                   a_median_rel_err_vs_ref=s_ea["median"],
                   b_max_rel_err_vs_ref=s_eb["max"], b_mean_rel_err_vs_ref=s_eb["mean"],
                   b_median_rel_err_vs_ref=s_eb["median"])
    if "local_b" in inputs:
        lb_t = inputs["local_b"]
        lb, ms = _np(lb_t), _np(inputs["magnitude_sum"])
        local_diff = _abs_diff(a, lb)
        with np.errstate(invalid="ignore", over="ignore"):
            bound = gamma * ms
            two_bound = 2 * bound
        ratio = _stats(_ratio(local_diff, two_bound))
        condition = _stats(_ratio(ms, abs_a))
        # A bound that is vacuous (gamma = inf) or not finite proves nothing: None.
        known = math.isfinite(gamma) and all(np.isfinite(x).all() for x in (a, b, lb, ms))
        out.update(local_max_abs_diff=_stats(local_diff)["max"],
                   local_max_rel_diff=_stats(_ratio(local_diff, np.maximum(abs_a, np.abs(lb))))
                   ["max"],
                   local_max_ulp_diff=_stats(_ulp(a_t, lb_t))["max"],
                   bound_max=_stats(bound)["max"] if known else None,
                   bound_ratio=ratio["max"] if known else None,
                   bound_ratio_p99=ratio["p99"] if known else None,
                   condition_max=condition["max"], condition_median=condition["median"])
        raw = {"bound_max": _stats(bound)["max"], "bound_ratio": ratio["max"],
               "bound_ratio_p99": ratio["p99"]}
        out["raw"] = raw  # the statistics themselves, before the report drops unknown ones
    return out


def _same(x, y) -> bool:
    """Equal, with NaN equal to NaN (a tuple compares element by element)."""
    if isinstance(x, tuple) and isinstance(y, tuple):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


# --- real taps of real configs ---------------------------------------------------------------

CONFIGS = {
    "seed": preset("seed"),
    "squashed": preset("squashed"),
    "tf32_conv": preset("tf32_conv"),
    "realistic": preset("realistic"),
    "exact_integers": preset("exact"),
    "half_overflow": preset("half"),
    "float16_nan": ExperimentConfig(dtype="float16", init_scheme="normal", init_constant=100.0,
                                    activation="identity"),
    "bfloat16": ExperimentConfig(dtype="bfloat16", activation="tanh", init_constant=0.01),
    "float64_longdouble": ExperimentConfig(dtype="float64"),
    "float64_no_referee": ExperimentConfig(dtype="float64", activation="gelu",
                                           init_scheme="torch_default"),
    "subnormal": ExperimentConfig(activation="identity", init_scheme="constant_zero_bias",
                                  init_constant=1e-6, depth=10, widths=(16,) * 10),
    "emulate_a_bf16": ExperimentConfig(emulate_a="bf16", activation="silu"),
    "emulate_b_fp16": ExperimentConfig(emulate_b="fp16", activation="softplus",
                                       init_constant=0.05),
    "conv1d": ExperimentConfig(impl_b="conv1d", activation="leaky_relu",
                               init_scheme="normal", init_constant=0.1),
    "tensordot": ExperimentConfig(impl_a="tensordot", impl_b="matmul", activation="relu",
                                  init_scheme="torch_default"),
    "sigmoid_tiny": ExperimentConfig(activation="sigmoid", init_constant=1e-6),
    # Taps above FULL_COLLECT elements: the sampled brackets and the candidate copies.
    "large_taps": preset("realistic", depth=2, widths=(256, 256), batch=600, samples=1),
    "large_taps_tf32": preset("tf32_conv", depth=1, widths=(512,), batch=200, samples=1,
                              activation="tanh", init_constant=0.02),
    "large_taps_identical": ExperimentConfig(impl_b="linear", depth=1, widths=(512,),
                                             batch=160, samples=1, activation="relu",
                                             init_scheme="torch_default"),
    "float64_big_no_referee": ExperimentConfig(dtype="float64", init_scheme="torch_default",
                                               activation="tanh", depth=1, widths=(512,),
                                               batch=200, samples=1),
}


def _run_capturing(config, engine, monkeypatch):
    """The report, and per tap its inputs plus the inputs of its per-side chunks."""
    monkeypatch.setenv(tapstats.ENGINE_ENV, engine)
    captured = []
    real = tapstats.evaluate

    def spy(program, inputs, chosen):
        copy = {k: v.detach().clone() for k, v in inputs.items()}
        if "abs_a" in {s.name for s in program.series}:
            captured.append({"tap": copy, "sides": []})
        else:
            captured[-1]["sides"].append(copy)
        return real(program, inputs, chosen)

    monkeypatch.setattr(tapstats, "evaluate", spy)
    report = compare.run(config)
    monkeypatch.setattr(tapstats, "evaluate", real)
    return report, captured


def expected_sides(chunks: list[dict], gammas: tuple[float, float]) -> dict:
    """max(|X - exact| / (|W||x|+|b|)) / g per side and per gamma (worst case,
    probabilistic); None unless every error and magnitude is finite."""
    out = {}
    for side, ms in (("a", "magnitude_sum"), ("b", "magnitude_sum_b")):
        shares, known = [], bool(chunks)
        for c in chunks:
            error = _np(c[f"{side}_side_err_given"]) if f"{side}_side_err_given" in c else \
                _abs_diff(_np(c[side]), _np(c[f"exact_{side}"]))
            magnitude = _np(c[ms])
            if not (np.isfinite(error).all() and np.isfinite(magnitude).all()):
                known = False
                break
            shares.append(float(_ratio(error, magnitude).max()))
        for field, g in zip(("bound_ratio", "prob_bound_ratio"), gammas):
            ok = known and math.isfinite(g) and g > 0
            out[f"{side}_{field}"] = max(shares) / g if ok else None
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_engines_match_the_definitions_on_real_taps(name, monkeypatch):
    config = CONFIGS[name]
    reports = {}
    for engine in ENGINES:
        report, captured = _run_capturing(config, engine, monkeypatch)
        assert report.environment["metrics_engine"] == engine
        assert len(captured) == len(report.taps)
        for tap, got_inputs in zip(report.taps, captured):
            g = gamma(tap.fan_in + 1, UNIT_ROUNDOFF[config.dtype])
            want = expected_tap(got_inputs["tap"], config.dtype, g)
            if tap.stage == "pre" and "reference" in got_inputs["tap"]:
                g_prob = gamma_probabilistic(tap.fan_in + 1, UNIT_ROUNDOFF[config.dtype])
                want.update(expected_sides(got_inputs["sides"], (g, g_prob)))
            want.pop("raw", None)
            for field, value in want.items():
                got = getattr(tap, field)
                assert _same(got, value), (name, engine, tap.name, field, got, value)
        reports[engine] = report
    # The whole report, verdict included, is the same whichever engine ran.
    numba_report, torch_report = reports["numba"], reports["torch"]
    for x, y in [*zip(numba_report.taps, torch_report.taps),
                 (numba_report.summary, torch_report.summary)]:
        assert all(_same(u, v) for u, v in zip(dataclasses.astuple(x), dataclasses.astuple(y)))
    assert numba_report.verdict == torch_report.verdict


def test_the_configs_cover_the_edge_cases(monkeypatch):
    """The list above really has non-finite, NaN, subnormal and sampled taps in it."""
    monkeypatch.setenv(tapstats.ENGINE_ENV, "torch")
    half = compare.run(CONFIGS["half_overflow"])
    assert any(t.nonfinite_count for t in half.taps)
    nan = compare.run(CONFIGS["float16_nan"])
    assert any(t.diff_nan_count for t in nan.taps)
    report, captured = _run_capturing(CONFIGS["subnormal"], "torch", monkeypatch)
    tiny = torch.finfo(torch.float32).tiny
    assert any(((x.abs() < tiny) & (x != 0)).any() for inputs in captured
               for x in (inputs["tap"]["a"], inputs["tap"]["b"]))
    big = CONFIGS["large_taps"]
    assert big.rows * max(big.hidden_widths) > tapstats.FULL_COLLECT
    assert compare.run(CONFIGS["float64_longdouble"]).environment["referee"].startswith(
        "longdouble")


# --- synthetic edge cases, straight at the engines ----------------------------------------

def _hostile(dtype: torch.dtype, n: int, seed: int) -> dict:
    """Values with every special case: +-0, equal and opposite values, neighbours, inf,
    NaN, subnormals, and a wide spread of magnitudes."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, generator=g, dtype=torch.float64) * torch.exp(
        torch.randn(n, generator=g, dtype=torch.float64) * 3)
    a = base.to(dtype)
    b = (base * (1 + 1e-3 * torch.randn(n, generator=g, dtype=torch.float64))).to(dtype)
    b[: n // 10] = a[: n // 10]
    b[n // 10: n // 5] = -a[n // 10: n // 5]
    tiny = torch.finfo(dtype).tiny
    a[n // 5: n // 5 + 40] = tiny / 4
    b[n // 5 + 20: n // 5 + 60] = -tiny / 8
    a[n // 3: n // 3 + 7] = math.inf
    b[n // 3 + 3: n // 3 + 9] = -math.inf
    a[n // 2: n // 2 + 5] = math.nan
    b[n // 2 + 10] = math.nan
    a[n // 2 + 20: n // 2 + 30] = -0.0
    b[n // 2 + 25: n // 2 + 35] = 0.0
    reference = base.clone()
    reference[n // 4: n // 4 + 30] = 0.0
    reference[n // 4 + 40] = math.nan
    local_b = (base * (1 + 1e-6)).to(dtype)
    magnitude_sum = base.abs() * 3
    magnitude_sum[: 50] = 0.0
    magnitude_sum[60] = math.inf
    shape = (1, n // 8, 8)
    out = {"a": a, "b": b, "reference": reference, "local_b": local_b,
           "magnitude_sum": magnitude_sum}
    return {k: v.reshape(shape) for k, v in out.items()}


def _check_engines(inputs: dict, dtype_name: str, gamma: float, reference: str | None = "float64"):
    if reference is None:
        inputs = {k: v for k, v in inputs.items() if k != "reference"}
    program = tapstats.tap_program(dtype_name, reference=reference, local="local_b" in inputs,
                                   gamma=gamma)
    results = {engine: tapstats.evaluate(program, inputs, engine) for engine in ENGINES}
    for name, stats in results["numba"].items():
        other = results["torch"][name]
        assert all(_same(u, v) for u, v in zip(dataclasses.astuple(stats),
                                                dataclasses.astuple(other))), (name, stats, other)
    # And both equal the definitions, field by field (through the report's mapping).
    want = expected_tap(inputs, dtype_name, gamma)
    st = results["numba"]
    pairs = {"max_abs_diff": st["diff"].max, "mean_abs_diff": st["diff"].mean,
             "median_abs_diff": st["diff"].median, "p99_abs_diff": st["diff"].p99,
             "max_rel_diff": st["rel"].max, "median_rel_diff": st["rel"].median,
             "p99_ulp_diff": st["ulp"].p99, "mean_ulp_diff": st["ulp"].mean,
             "max_bits": st["bits"].max, "mean_bits": st["bits"].mean,
             "bits_histogram": st["bits"].histogram, "diff_nan_count": st["diff"].nan_count,
             "rms_value": st["abs_a"].rms, "b_rms_value": st["abs_b"].rms,
             "mean_abs_value": st["abs_a"].mean,
             "nonfinite_count": st["abs_a"].nan_count + st["abs_a"].inf_count}
    if reference is not None:
        pairs.update(a_median_rel_err_vs_ref=st["a_err"].median,
                     b_mean_rel_err_vs_ref=st["b_err"].mean,
                     ref_max_abs_value=st["abs_ref"].max)
    if "local_b" in inputs:
        pairs.update(bound_max=st["bound"].max, bound_ratio=st["bound_ratio"].max,
                     bound_ratio_p99=st["bound_ratio"].p99,
                     condition_median=st["condition"].median,
                     local_max_ulp_diff=st["local_ulp"].max)
    want.update(want.pop("raw", {}))
    for field, got in pairs.items():
        assert _same(got, want[field]), (dtype_name, field, got, want[field])
    return results["numba"]


@pytest.mark.parametrize("dtype_name", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("n", [200, 1000, 70000])
def test_hostile_values(dtype_name, n):
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "float64": torch.float64}[dtype_name]
    st = _check_engines(_hostile(dtype, n, seed=n), dtype_name, gamma=1e-4)
    if n >= 1000:
        assert st["diff"].nan_count > 0 and st["abs_a"].inf_count > 0


def test_finite_large_taps_take_the_fast_path_and_agree(monkeypatch):
    """All finite, above FULL_COLLECT: sums, brackets and candidates, no exact fallback."""
    g = torch.Generator().manual_seed(5)
    n = 3 * tapstats.FULL_COLLECT + 13 * 8
    base = torch.randn(n, generator=g, dtype=torch.float64)
    inputs = {"a": base.float(), "b": (base * (1 + 1e-7)).float(),
              "reference": base * (1 + 1e-9), "local_b": (base * (1 - 1e-7)).float(),
              "magnitude_sum": base.abs() + 1}
    inputs = {k: v.reshape(1, -1, 8) for k, v in inputs.items()}
    calls = []
    real = tapstats._stats_of_array
    monkeypatch.setattr(tapstats, "_stats_of_array",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    st = _check_engines(inputs, "float32", gamma=1e-5)
    assert st["ulp"].median >= 0
    # The torch engine summarises every series with _stats_of_array; the fused pass none.
    assert len(calls) == sum(1 for s in tapstats.tap_program(
        "float32", reference="float64", local=True).series if s.stats)


@pytest.mark.parametrize("case", ["missed_brackets", "overflowing_copies", "sampled_small"])
def test_exact_when_the_brackets_fail(case, monkeypatch):
    """A bracket that misses its rank, or holds more values than its room, still gives the
    exact order statistic (by the full-series path)."""
    if case == "missed_brackets":
        monkeypatch.setattr(tapstats, "BRACKET_SIGMAS", 0.0)
        monkeypatch.setattr(tapstats, "FULL_COLLECT", 256)
    elif case == "overflowing_copies":
        real = tapstats._brackets
        monkeypatch.setattr(tapstats, "_brackets",
                            lambda *a: real(*a)[:3] + (1,))
    else:
        monkeypatch.setattr(tapstats, "FULL_COLLECT", 256)
    g = torch.Generator().manual_seed(7)
    base = torch.randn(20000, generator=g, dtype=torch.float64) ** 3
    inputs = {"a": base.float(), "b": (base * (1 + 3e-7)).float(),
              "reference": base, "local_b": (base * (1 - 2e-7)).float(),
              "magnitude_sum": base.abs() * 2}
    _check_engines({k: v.reshape(1, -1, 8) for k, v in inputs.items()}, "float32", gamma=1e-5)


def test_vacuous_bound_and_no_reference():
    """gamma = inf (k u >= 1): the bound is inf, or NaN where |W||x|+|b| = 0."""
    inputs = _hostile(torch.bfloat16, 4000, seed=3)
    _check_engines(inputs, "bfloat16", gamma=math.inf, reference=None)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 136, 300, 1000, 4097, 65541])
def test_pairwise_sums_equal_numpy(n):
    """The kernel's sums are numpy's pairwise sums (the definition of a mean here)."""
    from explorer import kernels

    values = np.random.default_rng(n).standard_normal(n) * 10.0 ** (np.arange(n) % 7)
    assert kernels._pairwise(values, 0, n, False) == np.sum(values)
    assert kernels._pairwise(values, 0, n, True) == np.sum(values * values)


def test_task_tree_recombines_to_numpy_sum(monkeypatch):
    """Tasks (pairwise subtrees) summed separately and recombined give np.sum exactly."""
    monkeypatch.setattr(tapstats, "TASK_SIZE", 1000)
    tapstats._tasks.cache_clear()
    n = 123_457
    values = np.random.default_rng(1).standard_normal(n) ** 3
    starts, lengths, tree = tapstats._tasks(n)
    assert lengths.sum() == n and lengths.max() <= 1000
    from explorer import kernels

    sums = np.array([[kernels._pairwise(values, s, m, False)] for s, m in zip(starts, lengths)])
    assert tapstats._combine(tree, sums)[0] == np.sum(values)
    tapstats._tasks.cache_clear()


def test_engine_setting_is_checked(monkeypatch):
    monkeypatch.setenv(tapstats.ENGINE_ENV, "gpu")
    with pytest.raises(ValueError, match="EXPLORER_METRICS_ENGINE='gpu' is not one of auto"):
        tapstats.engine_setting()
    monkeypatch.setenv(tapstats.ENGINE_ENV, "torch")
    assert tapstats.choose_engine(10**9) == "torch"
    monkeypatch.setenv(tapstats.ENGINE_ENV, "")
    assert tapstats.engine_setting() == "auto"


def test_program_refuses_unknown_names():
    with pytest.raises(ValueError, match="series x: \\['nope'\\] is neither an input"):
        tapstats.Program(("a", "b"), (), (tapstats.Series("x", "abs", ("nope",)),))
    with pytest.raises(ValueError, match="unknown op 'sqrt'"):
        tapstats.Program(("a",), (), (tapstats.Series("x", "sqrt", ("a",)),))
