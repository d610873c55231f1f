"""The benchmark runs (tiny sizes), and the speed paths give the same numbers as the plain ones.

No test here asserts a time: timings belong to `python -m explorer.bench`, not to CI.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from explorer import bench, metrics

FIGURE_KEYS = {"name", "target", "measured", "unit", "met", "note", "details"}


def test_tiny_bench_produces_every_figure(capsys, monkeypatch):
    monkeypatch.delenv("EXPLORER_MAX_FLOPS", raising=False)
    assert bench.main(["--tiny", "--format", "json"]) == 0
    assert "EXPLORER_MAX_FLOPS" not in os.environ  # the budget is restored
    out = capsys.readouterr().out
    data = json.loads(out, parse_constant=lambda token: pytest.fail(f"bare {token} in JSON"))
    assert data["tiny"] is True and set(data["environment"]) >= {"torch_version", "threads"}
    names = [f["name"] for f in data["figures"]]
    assert names[:5] == ["compare_seed", "compare_large", "compare_large_process",
                         "scaling_depth", "scaling_rows"]
    assert {"compare_large_process", "memory_seed", "memory_large", "sweep_3x3",
            "app_warm_rerun", "browser_cold_start"} <= set(names)
    for figure in data["figures"]:
        assert set(figure) == FIGURE_KEYS
        assert figure["target"] and figure["unit"]
        if figure["met"] is None:  # skipped, and says why
            assert figure["measured"] is None and "skipped" in figure["note"]
        else:
            assert math.isfinite(figure["measured"]) and isinstance(figure["met"], bool)
            if not figure["name"].startswith("scaling_"):  # a fitted exponent may dip < 0
                assert figure["measured"] >= 0             # at tiny, noisy sizes
    browser = next(f for f in data["figures"] if f["name"] == "browser_cold_start")
    assert browser["note"] == "skipped in --tiny mode"
    scaling = next(f for f in data["figures"] if f["name"] == "scaling_rows")
    assert [p["size"] for p in scaling["details"]["points"]] == [16, 32, 64, 128]


def test_table_format_names_target_measured_met(capsys):
    assert bench.main(["--tiny", "--format", "table", "--only", "sweep"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:4] == ["figure", "target", "measured", "met"]
    assert "sweep_3x3" in out and "<= 1 s at seed size" in out


def test_bad_section_is_one_line_exit_2(capsys):
    assert bench.main(["--only", "compare,nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only 'compare,nope': choose from compare")


def test_network_bytes_counts_three_networks():
    from explorer.config import preset

    need = bench.network_bytes(preset("seed"))
    assert need["float32_layer"] == 80 * 256 * 4  # rows x widest width (the input, 256)
    parameters = 256 * 64 + 64 + 64 * 128 + 128 + 128 * 256 + 256 + 256 * 4 + 4
    assert need["parameters"] == parameters * (4 + 4 + 8)
    assert need["parameter_copies"] == parameters * (8 + 4 + 4 + 8)  # with the float64 master
    assert need["activations"] == 80 * (2 * (64 + 128 + 256) + 4) * 16


# --- speed paths: the same values as the general ones ---------------------------------

def _tricky(dtype: torch.dtype, n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Pairs with equal values, +-0, opposite signs, neighbours and far-apart values."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, generator=g, dtype=torch.float64) * 10).to(dtype)
    b = a.clone()
    b[: n // 4] = (a[: n // 4].double() * (1 + 1e-3 * torch.randn(n // 4, generator=g,
                                                                   dtype=torch.float64))).to(dtype)
    b[n // 4: n // 2] = -a[n // 4: n // 2]
    b[n // 2: n // 2 + 50] = 0.0
    a[n // 2 + 50: n // 2 + 100] = -0.0
    neighbours = slice(n // 2 + 100, n // 2 + 150)  # one ULP apart: next bit pattern
    int_dtype = {torch.float64: torch.int64, torch.float32: torch.int32}.get(dtype, torch.int16)
    b[neighbours] = (a[neighbours].view(int_dtype) + 1).view(dtype)
    return a, b


def _same(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Bit for bit, NaN equal to NaN and +0 different from -0."""
    return x.dtype == y.dtype and torch.equal(x.view(torch.int64), y.view(torch.int64))


def _ordinal_ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The definition: |ordinal(a) - ordinal(b)|, with the float64 opposite-sign rule."""
    oa, ob = metrics.ordinal(a), metrics.ordinal(b)
    diff = (oa - ob).abs().to(torch.float64)
    if a.dtype == torch.float64:
        opposite = (oa > 0) & (ob < 0) | (oa < 0) & (ob > 0)
        diff = torch.where(opposite, oa.double().abs() + ob.double().abs(), diff)
    nan = torch.isnan(a) | torch.isnan(b)
    return torch.where(nan, torch.full_like(diff, math.nan), diff)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_ulp_diff_equals_the_ordinal_definition(dtype):
    a, b = _tricky(dtype)
    assert _same(metrics.ulp_diff(a, b), _ordinal_ulps(a, b))
    a[:3] = torch.tensor([math.nan, math.inf, -math.inf], dtype=dtype)
    b[3] = math.nan
    assert _same(metrics.ulp_diff(a, b), _ordinal_ulps(a, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_finite_paths_equal_general_paths(dtype):
    a, b = _tricky(dtype)
    a64, b64 = metrics.upcast(a), metrics.upcast(b)
    diff_fast = metrics.abs_diff(a64, b64, finite=True)
    assert _same(diff_fast, metrics.abs_diff(a64, b64, finite=False))
    denominator = torch.maximum(a64.abs(), b64.abs())
    assert _same(metrics.safe_ratio(diff_fast, denominator, finite=True),
                 metrics.safe_ratio(diff_fast, denominator, finite=False))
    # An infinite denominator is allowed on the fast path (only NaN is not).
    denominator[:5] = math.inf
    assert _same(metrics.safe_ratio(diff_fast, denominator, finite=True),
                 metrics.safe_ratio(diff_fast, denominator, finite=False))
    assert metrics.rms(a64.abs()) == metrics.rms(a64)
    assert metrics.tolerance(a64, b64, "float32", diff=diff_fast, abs_a=a64.abs(),
                             finite=True) == metrics.tolerance(a64, b64, "float32")
    r = b64 * (1 + 1e-9)
    r[:7] = 0.0
    assert _same(metrics.err_vs_reference(a64, r, finite=True, abs_reference=r.abs()),
                 metrics.err_vs_reference(a64, r, finite=False))


def test_summarize_without_quantiles_keeps_max_and_mean():
    values = torch.tensor([3.0, math.nan, 1.0, 2.0], dtype=torch.float64)
    full, quick = metrics.summarize(values), metrics.summarize(values, quantiles=False)
    assert (quick.max, quick.mean, quick.count, quick.nan_count) == (
        full.max, full.mean, full.count, full.nan_count)
    assert full.median == 2.0 and math.isnan(quick.median) and math.isnan(quick.p99)
    clean = torch.rand(10001, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert metrics.summarize(clean, no_nan=True) == metrics.summarize(clean)


def _sorted_quantile(values, q):
    """The definition: linear interpolation between neighbours of the sorted values."""
    ordered = sorted(values.tolist())
    position = q * (len(ordered) - 1)
    lo, hi = ordered[math.floor(position)], ordered[math.ceil(position)]
    frac = position - math.floor(position)
    if lo == hi or frac == 0:
        return lo
    return hi if math.isinf(hi) else lo + (hi - lo) * frac


@pytest.mark.parametrize("case", ["nonnegative", "ties_and_zeros", "with_inf", "negative"])
def test_quantiles_integer_path_matches_sorting(case):
    rng = np.random.default_rng(3)
    values = np.abs(rng.standard_normal(5001)) * 1e-3
    if case == "ties_and_zeros":
        values = np.floor(values * 3e3)
        values[::3] = 0.0
    elif case == "with_inf":
        values[-80:] = math.inf
    elif case == "negative":
        values -= 1e-3
    got = metrics._quantiles(values.copy(), (0.5, 0.99))
    assert got == [_sorted_quantile(values, 0.5), _sorted_quantile(values, 0.99)]
