"""Metric functions against hand-computed values and the edge cases of the numerical policy."""

import math

import pytest
import torch

from explorer import metrics

inf, nan = math.inf, math.nan


def f32(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_abs_diff_policy():
    a = f32(1.0, inf, inf, nan, 0.0, -0.0, 2.0)
    b = f32(1.5, inf, 5.0, 1.0, -0.0, 0.0, -inf)
    got = metrics.abs_diff(a, b).tolist()
    assert got[0] == 0.5
    assert got[1] == 0.0  # inf == inf: no difference, not inf - inf = NaN
    assert got[2] == inf
    assert math.isnan(got[3])
    assert got[4] == 0.0 and got[5] == 0.0  # +0 == -0
    assert got[6] == inf


def test_rel_diff_zero_over_zero_is_zero_and_x_over_zero():
    a = f32(0.0, 0.0, 2.0, 3.0, inf, nan)
    b = f32(0.0, 1e-30, 1.0, 3.0, 1.0, nan)
    got = metrics.rel_diff(a, b).tolist()
    assert got[0] == 0.0  # 0/0 -> 0 by policy
    assert got[1] == 1.0  # |0 - x| / |x| = 1
    assert got[2] == 0.5  # |2 - 1| / max(2, 1)
    assert got[3] == 0.0
    assert got[4] == inf  # inf vs finite: as different as can be
    assert math.isnan(got[5])


def test_safe_ratio_denominator_zero_gives_inf():
    num = torch.tensor([1.0, 0.0, inf], dtype=torch.float64)
    den = torch.tensor([0.0, 0.0, inf], dtype=torch.float64)
    assert metrics.safe_ratio(num, den).tolist() == [inf, 0.0, inf]


def test_ordinal_is_monotone_across_zero_for_float32():
    tiny = 2.0**-149  # smallest float32 subnormal
    values = f32(-1.0, -tiny, -0.0, 0.0, tiny, 1.0)
    ords = metrics.ordinal(values).tolist()
    assert ords[2] == ords[3] == 0
    assert ords[1] == -1 and ords[4] == 1
    assert ords[5] == 0x3F800000 and ords[0] == -0x3F800000
    assert ords == sorted(ords)


def test_ulp_diff_hand_values_float32():
    one = 1.0
    next_after_one = float(torch.nextafter(f32(1.0), f32(2.0)))
    tiny = 2.0**-149
    a = f32(one, tiny, -tiny, 1.0, inf, nan)
    b = f32(next_after_one, -tiny, tiny, 1.0, float(torch.finfo(torch.float32).max), 1.0)
    got = metrics.ulp_diff(a, b).tolist()
    assert got[0] == 1.0
    assert got[1] == 2.0  # straddling zero: tiny -> 0 -> -tiny
    assert got[2] == 2.0
    assert got[3] == 0.0
    assert got[4] == 1.0  # inf is one step above the largest finite float
    assert math.isnan(got[5])


def test_ulp_diff_straddling_zero_between_normals():
    # 1.0 and -1.0 are 2 * 0x3F800000 steps apart on the ordinal line.
    got = metrics.ulp_diff(f32(1.0), f32(-1.0)).item()
    assert got == 2 * 0x3F800000


def test_ulp_diff_float16_and_bfloat16():
    h = torch.tensor([1.0, 65504.0], dtype=torch.float16)
    h_next = torch.tensor([1.0 + 2**-10, inf], dtype=torch.float16)
    assert metrics.ulp_diff(h, h_next).tolist() == [1.0, 1.0]
    bf = torch.tensor([1.0, 0.0], dtype=torch.bfloat16)
    bf_next = torch.tensor([1.0 + 2**-7, 2.0**-133], dtype=torch.bfloat16)  # smallest subnormal
    assert metrics.ulp_diff(bf, bf_next).tolist() == [1.0, 1.0]


def test_ulp_diff_float64_opposite_signs_does_not_overflow():
    big = torch.tensor([1e308], dtype=torch.float64)
    got = metrics.ulp_diff(big, -big).item()
    assert got == pytest.approx(2 * float(metrics.ordinal(big).item()), rel=1e-15)
    assert got > 2**63  # wider than int64: computed in float64, not wrapped


def test_ulp_diff_requires_one_dtype():
    with pytest.raises(ValueError, match="one dtype"):
        metrics.ulp_diff(f32(1.0), torch.tensor([1.0], dtype=torch.float64))


def test_bits_of_error():
    ulps = torch.tensor([0.0, 1.0, 3.0, 2.0**24 - 1], dtype=torch.float64)
    assert metrics.bits_of_error(ulps).tolist() == [0.0, 1.0, 2.0, 24.0]


def test_err_vs_reference_uses_absolute_error_where_reference_is_zero():
    a = torch.tensor([1.1, 0.5, 2.0, 0.0], dtype=torch.float64)
    r = torch.tensor([1.0, 0.0, 2.0, 0.0], dtype=torch.float64)
    got = metrics.err_vs_reference(a, r).tolist()
    assert got[0] == pytest.approx(0.1)
    assert got[1] == 0.5  # |A - 0|, not inf
    assert got[2] == 0.0 and got[3] == 0.0


def test_headroom_bits():
    f32max = float(torch.finfo(torch.float32).max)
    assert metrics.headroom_bits(f32max / 8, torch.float32) == pytest.approx(3.0)
    assert metrics.headroom_bits(0.0, torch.float32) == inf
    assert metrics.headroom_bits(inf, torch.float32) == -inf
    assert math.isnan(metrics.headroom_bits(nan, torch.float32))


def test_summarize_hand_values_and_invariants():
    s = metrics.summarize(torch.tensor([4.0, 1.0, 3.0, 2.0, nan]))
    assert (s.max, s.mean, s.median, s.count, s.nan_count) == (4.0, 2.5, 2.5, 4, 1)
    assert s.p99 == pytest.approx(3.97)  # numpy's linear interpolation: 3 + 0.97
    assert s.median <= s.p99 <= s.max


def test_summarize_matches_numpy_percentile():
    import numpy as np

    values = torch.randn(1001, generator=torch.Generator().manual_seed(0)).abs()
    s = metrics.summarize(values)
    assert s.median == pytest.approx(float(np.percentile(values.numpy(), 50)), rel=1e-12)
    assert s.p99 == pytest.approx(float(np.percentile(values.numpy(), 99)), rel=1e-12)


def test_summarize_with_infinity_and_all_nan():
    s = metrics.summarize(torch.tensor([1.0, inf, 2.0]))
    assert s.max == inf and s.mean == inf and s.median == 2.0
    empty = metrics.summarize(torch.tensor([nan, nan]))
    assert empty.count == 0 and empty.nan_count == 2 and math.isnan(empty.max)


def test_rms_is_scaled_against_overflow():
    assert metrics.rms(torch.tensor([3.0, 4.0], dtype=torch.float64)) == pytest.approx(
        math.sqrt(12.5))
    huge = torch.tensor([1e300, 1e300], dtype=torch.float64)
    assert metrics.rms(huge) == pytest.approx(1e300)
    assert metrics.rms(torch.zeros(3)) == 0.0


def test_histogram_of_bits():
    bits = torch.tensor([0.0, 0.5, 1.0, 2.9, 40.0, nan])
    assert metrics.histogram_of_bits(bits, 3) == (2, 1, 1, 1)


def test_tolerance_reports_what_would_have_been_needed():
    a = f32(1.0, 100.0)
    b = f32(1.0 + 2**-18, 100.0)  # exactly representable: a difference of 2^-18 = 3.8e-6
    tol = metrics.tolerance(a, b, "float32")
    assert tol.passes_default  # 3.8e-6 <= 1e-5 + 1.3e-6 * 1
    assert tol.needed_atol == 2**-18
    assert tol.needed_rtol == 2**-18
    far = metrics.tolerance(f32(1.0), f32(2.0), "float32")
    assert not far.passes_default and far.needed_atol == 1.0
    with_nan = metrics.tolerance(f32(nan), f32(nan), "float32")
    assert not with_nan.passes_default and math.isnan(with_nan.needed_atol)
