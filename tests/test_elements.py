"""elements: the worst elements of a tap, checked against the forum's networks written in
plain torch in this very run (nn.Linear on (B, S, C), a 1x1 nn.Conv2d on (B, C, S, 1),
float64 for the reference), and ULPs counted here with numpy's integer view."""

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from explorer import preset, run
from explorer.elements import MAX_ELEMENTS, rank_worst, worst_elements, worst_per_row
from explorer.precision import torch_state

SEED = preset("seed")


def _ordinal(values: np.ndarray) -> np.ndarray:
    """float32 bit patterns on a monotone integer line (two's complement of sign-magnitude)."""
    bits = values.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _forum_taps(layer: int, stage: str):
    """A, B and the float64 reference at one tap of the forum's networks, plus A's input."""
    torch.manual_seed(SEED.seed)
    x = torch.randn(SEED.batch, SEED.samples, SEED.input_dim)
    sizes = SEED.layer_sizes
    linears, convs = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        linear, conv = nn.Linear(fan_in, fan_out), nn.Conv2d(fan_in, fan_out, 1)
        for module in (linear, conv):
            nn.init.constant_(module.weight, 1.0)
            nn.init.constant_(module.bias, 1.0)
        linears.append(linear)
        convs.append(conv)
    elu = nn.ELU()
    with torch_state(), torch.no_grad():  # the thread count a default run uses
        h_a, h_b = x, x.permute(0, 2, 1).unsqueeze(3)  # (B, S, C) and (B, C, S, 1)
        h_ref = x.double()
        for i in range(layer):
            x_a = h_a
            pre_a, pre_b = linears[i](h_a), convs[i](h_b)
            w64 = linears[i].weight.double()
            pre_ref = h_ref @ w64.T + linears[i].bias.double()
            if i + 1 < layer or stage == "post":
                h_a, h_b, h_ref = elu(pre_a), elu(pre_b), elu(pre_ref)
        a = (h_a if stage == "post" else pre_a).numpy()
        b_native = h_b if stage == "post" else pre_b
        b = b_native.squeeze(3).permute(0, 2, 1).contiguous().numpy()
        ref = (h_ref if stage == "post" else pre_ref).numpy()
        w = linears[layer - 1].weight.double()
        magnitude = (x_a.double().abs() @ w.abs().T + 1.0).numpy()
        condition = magnitude / np.abs(pre_a.double().numpy())
    return a, b, ref, condition


@pytest.mark.parametrize("layer,stage", [(1, "pre"), (2, "post"), (4, "pre")])
def test_worst_rows_match_an_independent_computation(layer, stage):
    a, b, ref, condition = _forum_taps(layer, stage)
    ulps = np.abs(_ordinal(a) - _ordinal(b)).astype(np.float64)
    rel = np.abs(a.astype(np.float64) - b) / np.maximum(np.abs(a), np.abs(b))
    rel[a == b] = 0.0
    width = a.shape[-1]
    # Each row's worst unit, then the rows in order (ties: larger relative, lower index).
    flat_u, flat_r = ulps.reshape(-1, width), rel.reshape(-1, width)
    heads = []
    for r in range(flat_u.shape[0]):
        best = max(range(width), key=lambda c: (flat_u[r, c], flat_r[r, c], -c))
        heads.append(r * width + best)
    heads.sort(key=lambda i: (-ulps.reshape(-1)[i], -rel.reshape(-1)[i], i))

    result = worst_elements(SEED, layer, stage, k=8, per_row=True)
    assert result.elements == a.size and result.referee == "float64"
    assert [r.rank for r in result.rows] == list(range(1, 9))
    for row, index in zip(result.rows, heads[:8]):
        r, c = divmod(index, width)
        assert (row.batch, row.sample, row.unit) == (*divmod(r, SEED.samples), c)
        position = (row.batch, row.sample, row.unit)
        assert row.a == float(a[position]) and row.b == float(b[position])  # bit for bit
        assert row.ulps == ulps[position]
        assert math.isclose(row.reference, ref[position], rel_tol=1e-12)
        assert math.isclose(row.condition, condition[position], rel_tol=1e-9)
        assert math.isclose(row.abs_diff, abs(float(a[position]) - float(b[position])))
        err_a = abs(float(a[position]) - ref[position]) / abs(ref[position])
        assert math.isclose(row.a_rel_err, err_a, rel_tol=1e-9, abs_tol=1e-300)
    # Distinct rows, worst first.
    assert len({(r.batch, r.sample) for r in result.rows}) == 8
    assert [r.ulps for r in result.rows] == sorted((r.ulps for r in result.rows), reverse=True)


def test_the_worst_element_is_the_reports_maximum():
    report = run(SEED)
    for tap in report.taps:
        top = worst_elements(SEED, tap.layer, tap.stage, k=1).rows[0]
        assert top.ulps == tap.max_ulp_diff, tap.name
        if tap.stage == "pre":
            assert top.condition <= tap.condition_max * (1 + 1e-12)


def test_each_listed_element_is_within_its_rounding_bound():
    # The forum's point, element by element: at L1 pre (both sides fed the same x) the
    # difference is bounded by 2 gamma_(n+1) (|W||x| + |b|) = 2 gamma cond |A|, so a large
    # relative difference needs a large condition number: the rows that cancel.
    u, n = 2.0**-24, SEED.input_dim
    gamma = (n + 1) * u / (1 - (n + 1) * u)
    rows = worst_elements(SEED, 1, "pre", k=10, per_row=True).rows
    for row in rows:
        assert row.condition >= 1 - 1e-6  # |sum| <= sum of |terms| (A is rounded)
        assert row.abs_diff <= 2 * gamma * row.condition * abs(row.a)
    assert rows[0].rel_diff > 100 * u  # the worst row is far from one rounding...
    assert rows[0].condition > rows[0].rel_diff / (2 * gamma)  # ...and it cancels


def test_rank_worst_orders_by_ulps_then_relative_then_position():
    ulps = np.array([0.0, 5.0, 5.0, math.nan, 3.0, 5.0])
    rel = np.array([0.0, 0.1, 0.2, math.nan, 0.5, 0.1])
    assert list(rank_worst(ulps, rel, 4)) == [3, 2, 1, 5]  # NaN first; ties by position
    assert list(rank_worst(ulps, rel, 10)) == [3, 2, 1, 5, 4, 0]
    assert list(rank_worst(np.zeros(5), np.zeros(5), 2)) == [0, 1]  # identical: by position


def test_worst_per_row_takes_each_rows_worst_unit():
    ulps = np.array([1.0, 7.0, 7.0,   2.0, 2.0, 0.0])
    rel = np.array([0.9, 0.1, 0.3,   0.2, 0.2, 0.0])
    assert list(worst_per_row(ulps, rel, 3)) == [2, 3]


def test_identical_implementations_have_zero_ulps_everywhere():
    exact = preset("exact")
    result = worst_elements(exact, 1, "pre", k=3)
    assert all(r.ulps == 0 and r.abs_diff == 0 and r.rel_diff == 0 for r in result.rows)
    assert [(r.batch, r.sample, r.unit) for r in result.rows] == [(0, 0, 0), (0, 0, 1),
                                                                  (0, 0, 2)]


def test_float16_overflow_rows_are_listed_not_a_crash():
    # Past float16's 65504 both sides hold inf; equal infinities are 0 ULPs apart (the
    # metric policy), so the rows listed are the finite ones still differing, if any.
    half = preset("half")
    report = run(half)
    bad = next(t for t in report.taps if t.nonfinite_count)
    result = worst_elements(half, bad.layer, bad.stage, k=3)
    assert len(result.rows) == 3
    for row in result.rows:
        both_inf = math.isinf(row.a) and row.a == row.b
        assert not both_inf or row.ulps == 0
    assert result.rows[0].ulps == bad.max_ulp_diff
    frame = result.to_frame()
    assert list(frame.columns)[:4] == ["rank", "batch", "sample", "unit"]


@pytest.mark.parametrize("layer,stage,k,message", [
    (0, "pre", 5, "layer=0 is not a layer of this network: choose 1 to 4"),
    (5, "pre", 5, "choose 1 to 4 (depth 3 + the logits layer)"),
    (4, "post", 5, "layer 4 makes the logits and has no post tap"),
    (1, "middle", 5, "stage='middle': choose pre"),
    (1, "pre", 0, f"k=0: ask for 1 to {MAX_ELEMENTS} elements"),
    (1, "pre", MAX_ELEMENTS + 1, "ask for 1 to"),
])
def test_bad_requests_say_what_is_allowed(layer, stage, k, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        worst_elements(SEED, layer, stage, k=k)
