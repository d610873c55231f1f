"""Metrics: one numerical policy, written once, used by every comparison.

Policy (shared/DESIGN.md, "Metric definitions"):

* Differences are taken after upcasting to float64, which is exact for float32, float16 and
  bfloat16 values, so the difference itself adds no rounding for those dtypes.
* Equal elements differ by 0, including equal infinities (inf - inf would be NaN).
* Ratios follow ``safe_ratio``: 0 when the numerator is 0 (so 0/0 = 0), inf when only the
  denominator is 0 or when both are infinite, NaN only when an input is NaN.
* NaN results are counted and left out of statistics; infinities stay in (max = inf says
  "overflow" louder than any finite number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Bit widths and masks for the ordinal (ULP) mapping.
_INT_VIEW = {
    torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF),
    torch.float32: (torch.int32, 0x7FFFFFFF),
    torch.float16: (torch.int16, 0x7FFF),
    torch.bfloat16: (torch.int16, 0x7FFF),
}


def upcast(t: torch.Tensor) -> torch.Tensor:
    """Float64 on the CPU, contiguous in t's logical order: exact for every narrower float
    dtype. One copy at most, so a permuted layout (conv2d's (B, C, S, 1) seen as (B, S, C))
    is not copied again by the reshapes and matmuls that read it."""
    # Move first, then cast: some devices (MPS) have no float64 at all.
    return t.detach().cpu().to(torch.float64, memory_format=torch.contiguous_format)


def all_finite(t: torch.Tensor) -> bool:
    """No inf and no NaN: the smallest and largest value are finite (NaN propagates), two
    reductions without a mask the size of t."""
    if t.numel() == 0:
        return True
    if not t.is_floating_point():
        return True
    low, high = torch.aminmax(t.reshape(-1))
    return bool(torch.isfinite(low)) and bool(torch.isfinite(high))


def safe_ratio(numerator: torch.Tensor, denominator: torch.Tensor, *,
               finite: bool | None = None) -> torch.Tensor:
    """numerator / denominator for non-negative inputs, under the policy above.

    ``finite=True`` promises that the numerator holds no NaN or inf and the denominator no
    NaN (the caller checked once for many ratios); None checks here. Then only 0/x needs
    fixing (0/0 = NaN, 0/-x = -0), so that path skips the inf and NaN passes and gives the
    same values as the general one.
    """
    ratio = numerator / denominator  # torch: x/0 = inf, 0/0 = NaN, no warnings
    if finite is None:
        finite = all_finite(numerator) and all_finite(denominator)
    if finite:
        return ratio.masked_fill_(numerator == 0, 0.0)
    ratio = torch.where(numerator == 0, torch.zeros_like(ratio), ratio)
    both_inf = torch.isinf(numerator) & torch.isinf(denominator)
    ratio = torch.where(both_inf, torch.full_like(ratio, math.inf), ratio)
    either_nan = torch.isnan(numerator) | torch.isnan(denominator)
    return torch.where(either_nan, torch.full_like(ratio, math.nan), ratio)


def abs_diff(a: torch.Tensor, b: torch.Tensor, *, finite: bool | None = None
             ) -> torch.Tensor:
    """|a - b| in float64; 0 where a == b (also inf == inf); NaN where either is NaN.

    ``finite`` as in safe_ratio: for finite a == b, a - b is already +0.
    """
    a64, b64 = upcast(a), upcast(b)
    diff = (a64 - b64).abs_()
    if finite is None:
        finite = all_finite(a64) and all_finite(b64)
    if finite:
        return diff
    return torch.where(a64 == b64, torch.zeros_like(diff), diff)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| / max(|a|, |b|); 0 where a == b."""
    a64, b64 = upcast(a), upcast(b)
    return safe_ratio(abs_diff(a64, b64), torch.maximum(a64.abs(), b64.abs()))


def ordinal(t: torch.Tensor) -> torch.Tensor:
    """Bit patterns on a monotone integer line (int64): +0 and -0 both map to 0.

    IEEE floats are sign-magnitude: for negative values the integer view grows as the
    value falls, so it is mirrored (-(bits & magnitude)) to make the line monotone;
    consecutive floats are then consecutive integers, across zero as well.
    """
    if t.dtype not in _INT_VIEW:
        raise ValueError(f"ordinal needs a float dtype, got {t.dtype}")
    int_dtype, magnitude_mask = _INT_VIEW[t.dtype]
    bits = t.detach().cpu().contiguous().view(int_dtype).to(torch.int64)
    magnitude = bits & magnitude_mask
    return torch.where(bits < 0, -magnitude, magnitude)


def ulp_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|ord(a) - ord(b)| in a's dtype, as float64; NaN where either value is NaN.

    For float64 the ordinal difference can exceed int64 when the values have opposite
    signs; those few elements are computed in float64 (exact to 53 bits, plenty there).
    """
    if a.dtype != b.dtype:
        raise ValueError(f"ulp_diff needs one dtype, got {a.dtype} and {b.dtype}")
    if a.dtype not in _INT_VIEW:
        raise ValueError(f"ulp_diff needs a float dtype, got {a.dtype}")
    # The same numbers as |ordinal(a) - ordinal(b)|, in the narrow integer type: with equal
    # signs that is |mag(a) - mag(b)| (no overflow: both in [0, mask]); with opposite signs
    # mag(a) + mag(b), summed in float64 (exact below 2^53; for float64 values the sum of
    # two rounded magnitudes, as before). +0 and -0 have magnitude 0 either way.
    int_dtype, magnitude_mask = _INT_VIEW[a.dtype]
    a_cpu, b_cpu = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
    bits_a, bits_b = a_cpu.view(int_dtype), b_cpu.view(int_dtype)
    mag_a, mag_b = bits_a & magnitude_mask, bits_b & magnitude_mask
    diff = (mag_a - mag_b).abs_().to(torch.float64)
    opposite = (bits_a ^ bits_b) < 0
    if bool(opposite.any()):
        wide = mag_a.to(torch.float64) + mag_b.to(torch.float64)
        diff = torch.where(opposite, wide, diff)
    either_nan = torch.isnan(a_cpu) | torch.isnan(b_cpu)
    if bool(either_nan.any()):
        diff = diff.masked_fill_(either_nan, math.nan)
    return diff


# log2(1 + k) for small integers k, from the C library: most ULP counts are small integers
# (the numba kernels use the same table).
LOG2P1_TABLE_SIZE = 4096
_LOG2P1_TABLE = np.array([math.log2(1.0 + k) for k in range(LOG2P1_TABLE_SIZE)])


def bits_of_error(ulps: torch.Tensor) -> torch.Tensor:
    """log2(1 + ulp_diff): Herbie's bits of error (0 = identical, 24 = all of float32).

    log2 is the C library's (Python's math.log2), the one the numba kernels call: torch's
    and numpy's vectorised log2 differ from it in the last bit for about 1 value in 70,000,
    and the two metric engines must agree bit for bit. Small integer counts come from a
    table of those values; any other distinct value is computed once.
    """
    u = ulps.detach().cpu().to(torch.float64).reshape(-1).numpy()
    out = np.empty_like(u)
    with np.errstate(invalid="ignore"):
        small = (u >= 0) & (u < LOG2P1_TABLE_SIZE) & (np.floor(u) == u)
    out[small] = _LOG2P1_TABLE[u[small].astype(np.int64)]
    rest = ~small
    if rest.any():
        distinct, inverse = np.unique(1.0 + u[rest], return_inverse=True)
        logs = np.fromiter(map(math.log2, distinct.tolist()), dtype=np.float64,
                           count=distinct.size)
        out[rest] = logs[inverse]
    return torch.from_numpy(out.reshape(ulps.shape))


def err_vs_reference(values: torch.Tensor, reference: torch.Tensor, *,
                     finite: bool | None = None,
                     abs_reference: torch.Tensor | None = None) -> torch.Tensor:
    """|A - R| / |R|, and |A - R| where R == 0 (a relative error of 0 would be meaningless).

    ``reference`` may be wider than float64 (numpy longdouble handed over as a float64
    difference already); here both are float64 tensors.
    """
    a64, r64 = upcast(values), upcast(reference)
    diff = abs_diff(a64, r64, finite=finite)
    relative = safe_ratio(diff, r64.abs() if abs_reference is None else abs_reference,
                          finite=finite)
    return torch.where(r64 == 0, diff, relative)


def headroom_bits(max_abs_value: float, dtype: torch.dtype) -> float:
    """log2(finfo.max / max|A|): doublings left before overflow (inf when all zero)."""
    if math.isnan(max_abs_value):
        return math.nan
    if max_abs_value == 0:
        return math.inf
    if math.isinf(max_abs_value):
        return -math.inf
    return math.log2(torch.finfo(dtype).max / max_abs_value)


@dataclass(frozen=True)
class Stats:
    """max / mean / median / p99 over the non-NaN values; NaNs counted in nan_count."""

    max: float
    mean: float
    median: float
    p99: float
    count: int
    nan_count: int


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolated quantiles (numpy's default), one partition, inf-safe."""
    n = values.size
    positions = [q * (n - 1) for q in qs]
    kth = sorted({int(math.floor(p)) for p in positions} | {int(math.ceil(p)) for p in positions})
    if values.dtype == np.float64 and not np.signbit(values).any():
        # Non-negative doubles (every metric here; +inf included) order exactly like their
        # bit patterns, and numpy partitions int64 about a third faster than float64.
        part = np.partition(values.view(np.int64), kth).view(np.float64)
    else:
        part = np.partition(values, kth)
    out = []
    for p in positions:
        lo, hi = part[int(math.floor(p))], part[int(math.ceil(p))]
        frac = p - math.floor(p)
        if lo == hi or frac == 0:
            out.append(float(lo))
        elif math.isinf(hi):
            out.append(float(hi))
        else:
            out.append(float(lo + (hi - lo) * frac))
    return out


_quantiles = quantiles  # the name older tests use


def summarize(values: torch.Tensor, quantiles: bool = True, *, no_nan: bool = False
              ) -> Stats:
    """Statistics of the non-NaN values; ``quantiles=False`` skips the O(n) selection for
    median and p99 (they are then NaN) when a caller needs only max and mean;
    ``no_nan=True`` promises there is no NaN (the caller checked), skipping that pass."""
    flat = values.detach().reshape(-1).to(device="cpu", dtype=torch.float64).numpy()
    if no_nan:
        nan_count = 0
    else:
        nan_mask = np.isnan(flat)
        nan_count = int(nan_mask.sum())
    kept = flat[~nan_mask] if nan_count else flat
    if kept.size == 0:
        return Stats(math.nan, math.nan, math.nan, math.nan, 0, nan_count)
    median, p99 = _quantiles(kept, (0.5, 0.99)) if quantiles else (math.nan, math.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(kept.mean())
    return Stats(float(kept.max()), mean, median, p99, int(kept.size), nan_count)


def rms(values: torch.Tensor, *, wide: bool | None = None) -> float:
    """Root mean square of the finite values: sqrt(mean(x^2)), numpy's pairwise mean.

    For values of float32, float16 or bfloat16 (``wide=False``) each square is exact in
    float64 and cannot overflow, so none is scaled. For float64 values (``wide``, the default
    when ``values`` is float64) they are scaled by 2^-e first, e the binary exponent of the
    largest: a power of two changes no rounding unless a square would overflow or underflow.
    """
    flat = values.detach().cpu().to(torch.float64).reshape(-1).numpy()
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return math.nan
    if wide is None:
        wide = values.dtype == torch.float64
    if not wide:
        return math.sqrt(float(np.mean(finite * finite)))
    largest = float(np.abs(finite).max())
    if largest == 0.0:
        return 0.0
    scale = math.ldexp(1.0, math.frexp(largest)[1])
    scaled = finite / scale
    return scale * math.sqrt(float(np.mean(scaled * scaled)))


def histogram_of_bits(bits: torch.Tensor, max_bits: int) -> tuple[int, ...]:
    """Counts of elements with floor(bits) = 0, 1, ..., max_bits (NaN left out)."""
    flat = bits.reshape(-1)
    nan_mask = torch.isnan(flat)
    if bool(nan_mask.any()):
        flat = flat[~nan_mask]
    idx = torch.clamp(torch.floor(flat), 0, max_bits).to(torch.int64)
    return tuple(int(c) for c in torch.bincount(idx, minlength=max_bits + 1).tolist())


# assert_close's default tolerances (torch.testing): rtol, atol per dtype.
ASSERT_CLOSE_DEFAULTS = {
    "float64": (1e-7, 1e-7),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}


@dataclass(frozen=True)
class Tolerance:
    """Would assert_close(B, A) pass with the dtype's defaults, and what would it need.

    needed_atol: smallest atol that passes with rtol = 0; needed_rtol: smallest rtol that
    passes with atol = 0 (Polygraphy reports the tolerance that *would* have been needed).
    """

    passes_default: bool
    needed_atol: float
    needed_rtol: float


def tolerance(a: torch.Tensor, b: torch.Tensor, dtype_name: str, *,
              diff: torch.Tensor | None = None, abs_a: torch.Tensor | None = None,
              finite: bool | None = None) -> Tolerance:
    """``diff`` (= abs_diff(a, b)), ``abs_a`` and ``finite`` may be passed when the caller
    already has them; the result is the same."""
    rtol, atol = ASSERT_CLOSE_DEFAULTS[dtype_name]
    a64, b64 = upcast(a), upcast(b)
    if diff is None:
        diff = abs_diff(a64, b64, finite=finite)
    if abs_a is None:
        abs_a = a64.abs()
    # assert_close(actual=B, expected=A): |B - A| <= atol + rtol * |A|. NaN never passes.
    ok = diff <= atol + rtol * abs_a
    has_nan = False if finite else bool(torch.isnan(diff).any())
    passes = bool(ok.all()) and not has_nan
    needed_atol = float(diff.max()) if diff.numel() else 0.0
    ratio = safe_ratio(diff, abs_a, finite=finite)
    needed_rtol = float(ratio.max()) if ratio.numel() else 0.0
    if has_nan:
        needed_atol = needed_rtol = math.nan
    return Tolerance(passes, needed_atol, needed_rtol)
