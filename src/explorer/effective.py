"""Effective precision: with how many significant bits did a side really multiply?

A float32 run can hide a narrower format: TF32 on Ampere GPUs (cuDNN convolutions by
default), bfloat16 on CPUs where oneDNN's fp32_precision is "bf16". The worst-case bound
gamma_(n+1) u (|W||x| + |b|) catches that only when the narrower format's error exceeds it,
and it cannot tell 11 bits from 8: it is loose enough to hold either at common fan-ins.

So the error's *statistics* decide. For one affine layer and one side X, with X's own
input x and the exact result R = W x + b from the referee:

    observed  = RMS over elements of |X(x) - R| / (|W||x| + |b|)

and for each candidate the same statistic of a simulation on the same layer and input.
The candidates:

- the compute dtype itself, in several summation orders: the CPU's own kernel (blocked),
  and plain left-to-right sums with the bias added first or last. Any summation order
  is still the compute dtype, and the orders differ a lot: where the bias dwarfs the
  products, a left-to-right sum rounds at the bias's size every step, n times the error
  of a blocked kernel;
- narrower operand formats (no wider than the compute dtype): x and W rounded to it (to
  nearest, ties to even), then the layer in the compute dtype with full-precision
  kernels: TF32 (11 bits, float32's range), float16 (11 bits, its own narrow range, where
  small values lose bits as subnormals), bfloat16 (8 bits).

The side's effective bits are those of the candidate whose statistic is nearest the
observed one on a log scale, if within FIT_TOLERANCE_BITS (a factor of 4); 11 and 8 bits
are 3 bits apart, float32 13 bits from TF32. A narrower format is a candidate only when
its simulation stands clearly apart from the compute dtype's largest simulated order
(more than the tolerance, and at least half their bits apart), and none is named for an
error far above the kernel's when the left-to-right sums could not be simulated on this
data (see choose and fit). None: no referee, or no candidate fits (then the report says
so).

Normalising by |W||x| + |b| per element makes every element count by how its rounding
compares with the size of its terms, so a few large elements cannot dominate. The
statistic is taken over at most SAMPLE_ROWS rows: it is a property of the arithmetic,
not of the data, and this keeps its cost small beside the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from explorer.precision import onednn_full_precision, round_to_tf32

SAMPLE_ROWS = 256
# Left-to-right sums run one vector add per term, so they are simulated on a corner of
# the sample (rows x output columns): enough elements for an RMS.
SEQUENTIAL_ROWS = 32
SEQUENTIAL_COLUMNS = 32
FIT_TOLERANCE_BITS = 2.0
# Significant bits (with the implicit one) of the formats an operand may have been
# rounded to, and what to call them.
CANDIDATE_BITS = (53, 24, 11, 8)
BITS_NAME = {53: "float64", 24: "float32", 11: "TF32 or float16", 8: "bfloat16"}
DTYPE_BITS = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}
FLOAT16_MIN_NORMAL = 2.0**-14


def candidates_for(dtype_name: str) -> tuple[int, ...]:
    """Formats no wider than the compute dtype, widest first."""
    return tuple(b for b in CANDIDATE_BITS if b <= DTYPE_BITS[dtype_name])


def round_to_bits(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Values of t rounded to ``bits`` significant bits (nearest, ties to even), in t's
    dtype. 24 via float32, 11 via TF32's significand, 8 via bfloat16. The exponent range
    of the intermediate format applies (TF32 and bfloat16 share float32's)."""
    if bits >= {torch.float64: 53, torch.float32: 24, torch.float16: 11,
                torch.bfloat16: 8}[t.dtype]:
        return t
    if bits == 24:
        return t.to(torch.float32).to(t.dtype)
    if bits == 11:
        return round_to_tf32(t.to(torch.float32)).to(t.dtype)
    if bits == 8:
        return t.to(torch.bfloat16).to(t.dtype)
    raise ValueError(f"bits={bits}: choose one of {CANDIDATE_BITS}")


def scaled_error_rms(error: torch.Tensor, magnitude: torch.Tensor) -> float | None:
    """RMS of error / magnitude over elements with a positive, finite magnitude; inf when
    any of their errors is not finite; None when there are none (float64 in, float)."""
    measurable = (magnitude > 0) & torch.isfinite(magnitude)
    if not bool(measurable.any()):
        return None
    if not bool(torch.isfinite(error[measurable]).all()):
        return math.inf  # this way of computing overflows (or makes NaN) where R is finite
    scaled = error[measurable] / magnitude[measurable]
    return float(torch.sqrt((scaled * scaled).mean()))


# Operands are rounded this many elements at a time: a layer's weights (up to 4096 x 4096)
# would otherwise hold the rounding's temporaries, several times the weights' size, at once.
ROUND_BLOCK_ELEMENTS = 1 << 18


def _in_blocks(t: torch.Tensor, rounded: Callable[[torch.Tensor], torch.Tensor]
               ) -> torch.Tensor:
    """rounded(t) for a 2-D t, computed block of rows by block of rows into one array
    (rounding is elementwise, so the values are the same)."""
    if t.numel() <= ROUND_BLOCK_ELEMENTS:
        return rounded(t)
    out = torch.empty(t.shape, dtype=t.dtype)
    step = max(1, ROUND_BLOCK_ELEMENTS // max(int(t.shape[1]), 1))
    for start in range(0, t.shape[0], step):
        out[start:start + step] = rounded(t[start:start + step])
    return out


def simulate(x_rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, bits: int,
             dtype: torch.dtype, operand_format: str | None = None) -> torch.Tensor:
    """The layer with its operands rounded to ``bits`` bits (or, with operand_format
    "float16", to float16 itself, range included), computed in ``dtype`` on the CPU with
    full-precision oneDNN kernels. x_rows (rows, fan_in); weight (out, in)."""
    x = x_rows.detach().to(device="cpu", dtype=dtype)
    w = weight.detach().to(device="cpu", dtype=dtype)
    if operand_format == "float16":
        x, w = (_in_blocks(t, lambda v: v.to(torch.float16).to(dtype)) for t in (x, w))
    elif bits < DTYPE_BITS[str(dtype).removeprefix("torch.")]:
        x, w = (_in_blocks(t, lambda v: round_to_bits(v, bits)) for t in (x, w))
    b = bias.detach().to(device="cpu", dtype=dtype)
    with onednn_full_precision():
        return torch.nn.functional.linear(x, w, b)


def simulate_sequential(x_rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                        dtype: torch.dtype, bias_first: bool) -> torch.Tensor:
    """The layer as plain left-to-right sums in ``dtype`` (each product and each partial
    sum rounded), for the first SEQUENTIAL_ROWS rows and SEQUENTIAL_COLUMNS outputs:
    (rows, columns)."""
    x = x_rows[:SEQUENTIAL_ROWS].detach().to(device="cpu", dtype=dtype)
    w = weight[:SEQUENTIAL_COLUMNS].detach().to(device="cpu", dtype=dtype)
    b = bias[:SEQUENTIAL_COLUMNS].detach().to(device="cpu", dtype=dtype)
    products = x[:, None, :] * w[None, :, :]  # (rows, columns, fan_in), each rounded
    total = b.expand(products.shape[:2]).clone() if bias_first else products[..., 0].clone()
    for k in range(0 if bias_first else 1, products.shape[-1]):
        total += products[..., k]
    return total if bias_first else total + b


@dataclass(frozen=True)
class Candidate:
    """One way the layer could have been computed, and its error statistic."""

    name: str  # "float32 kernel", "float32 left-to-right, bias first", "TF32", ...
    bits: int
    statistic: float | None  # RMS of |sim - R| / (|W||x| + |b|); inf: it overflows


def candidates(x_rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               dtype_name: str, error_of: Callable[[torch.Tensor], torch.Tensor],
               magnitude: torch.Tensor, observed: float | None = None) -> list[Candidate]:
    """Every candidate's statistic. ``error_of(values)`` gives |values - exact| (float64)
    for values covering the first rows and columns of the sample; ``magnitude`` is
    |W||x| + |b| over the whole sample (rows, width).

    With ``observed`` (the side's own statistic), the compute dtype's candidates come first
    and the rest are skipped as soon as one of them is at least ``observed``: fit() then
    names the compute dtype whatever the narrower formats give (see choose), so the answer
    is the same and a plain run pays for one simulation instead of six."""
    dtype = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
             "bfloat16": torch.bfloat16}[dtype_name]
    compute_bits = DTYPE_BITS[dtype_name]

    def statistic(values: torch.Tensor) -> float | None:
        rows, columns = values.shape
        return scaled_error_rms(error_of(values), magnitude[:rows, :columns])

    def explained() -> bool:
        values = [c.statistic for c in found if c.statistic is not None]
        return observed is not None and bool(values) and observed <= max(values)

    found = [Candidate(f"{dtype_name} kernel", compute_bits,
                       statistic(simulate(x_rows, weight, bias, compute_bits, dtype)))]
    if explained():
        return found
    if dtype_name in ("float32", "float64"):
        # Half-precision GEMMs accumulate in float32, so only the wide dtypes get these.
        for bias_first in (True, False):
            order = "bias first" if bias_first else "bias last"
            found.append(Candidate(
                f"{dtype_name} left-to-right, {order}", compute_bits,
                statistic(simulate_sequential(x_rows, weight, bias, dtype, bias_first))))
            if explained():
                return found
    for bits in candidates_for(dtype_name)[1:]:
        name = {53: "float64", 24: "float32", 11: "TF32", 8: "bfloat16"}[bits]
        found.append(Candidate(name, bits, statistic(simulate(x_rows, weight, bias, bits,
                                                              dtype))))
        if bits == 11 and dtype_name in ("float32", "float64"):
            found.append(Candidate("float16", 11, statistic(simulate(
                x_rows, weight, bias, 11, dtype, operand_format="float16"))))
    return found


@dataclass(frozen=True)
class Fit:
    bits: int | None  # the candidate that explains the observed error; None: none fits
    observed: float | None  # RMS of |X - R| / (|W||x| + |b|)
    candidates: tuple[Candidate, ...]
    format: str | None = None  # how to name it: "TF32 or float16", "float16", ...

    def describe(self) -> str:
        if self.observed is None:
            return "no elements to measure"
        sims = ", ".join(f"{c.name} {c.statistic:.2g}" for c in self.candidates
                         if c.statistic is not None)
        verdict = (f"behaves as {self.bits} bits ({self.format})" if self.bits
                   else "no candidate fits")
        return f"observed {self.observed:.2g}; simulated {sims}: {verdict}"


def choose(observed: float | None, candidates: dict[int, float | None], *,
           orders_known: bool = True) -> int | None:
    """The candidate that explains ``observed``: the nearest on a log2 scale, within
    FIT_TOLERANCE_BITS, the wider one on a tie; the compute dtype (the widest candidate)
    whenever the observed error is no larger than its simulation's, or clearly (more than
    the tolerance) below the next narrower format's. A narrower format whose simulation
    lands within the tolerance of the compute dtype's, or within half their bits apart, is
    never named: nothing tells the two apart. Without ``orders_known`` (no summation order
    but the kernel's could be simulated on this data), an error more than the tolerance
    above the compute dtype's simulation could be that dtype in another order: nothing is
    named. None when nothing fits."""
    ordered = [(bits, candidates[bits]) for bits in sorted(candidates, reverse=True)
               if candidates[bits] is not None]
    if observed is None or not ordered:
        return None
    widest, widest_value = ordered[0]
    if observed <= widest_value:  # includes an exact result (0): it fits every format
        return widest
    tiny = 1e-300

    def log_gap(value: float, other: float) -> float:
        return abs(math.log2(max(value, tiny)) - math.log2(max(other, tiny)))

    def distance(value: float) -> float:
        return log_gap(observed, value)

    # Operands exact in the narrower format too (saturated activations, constant
    # weights) make its simulation differ from the compute dtype's only by the kernel's
    # summation order: such a format says nothing about how the side rounded its operands.
    # Where most operands are exact, the gap is small (3-16x seen) where a real narrower
    # format puts it at 2^(bits apart), 8192x for TF32 against float32, and another
    # summation order of the compute dtype can cover a small gap: a format is named only
    # when its simulation is at least half the bits apart (on a log scale) from the
    # compute dtype's largest simulated order, and more than the tolerance.
    ordered = [ordered[0], *((bits, value) for bits, value in ordered[1:]
                             if log_gap(value, widest_value)
                             > max(FIT_TOLERANCE_BITS, (widest - bits) / 2))]

    if not orders_known and distance(widest_value) > FIT_TOLERANCE_BITS:
        return None
    best, best_value = min(ordered, key=lambda item: (distance(item[1]), -item[0]))
    best_distance = distance(best_value)
    if len(ordered) > 1 and observed < ordered[1][1] * 2.0 ** -FIT_TOLERANCE_BITS:
        # Worse than the compute dtype's simulation (another summation order), yet far
        # better than any narrower format: still the compute dtype.
        return widest
    return best if best_distance <= FIT_TOLERANCE_BITS else None


def fit(observed_error: torch.Tensor, magnitude: torch.Tensor,
        found: list[Candidate]) -> Fit:
    """observed_error, magnitude: float64 (rows, width) over the sample."""
    observed = scaled_error_rms(observed_error, magnitude)
    compute_bits = max(c.bits for c in found)
    # The left-to-right sums are simulated on a corner of the sample. When they round
    # (almost) nothing there, far less than the kernel on the full sample (exact operands
    # in the corner: saturated activations, round weights), the corner says nothing about
    # how far another summation order of the compute dtype could go: they are left out,
    # and an error well above the kernel's then names no format (choose's orders_known).
    kernel = [c.statistic for c in found if c.name.endswith(" kernel")]
    sequential = [c for c in found if "left-to-right" in c.name and c.statistic is not None]
    orders_known = not (sequential and kernel and kernel[0] is not None and kernel[0] > 0
                        and all(c.statistic < kernel[0] * 2.0 ** -FIT_TOLERANCE_BITS
                                for c in sequential))
    usable = found if orders_known else [c for c in found if c not in sequential]
    # Per format, the candidate statistic nearest the observed one stands for it.
    by_bits: dict[int, float | None] = {}
    for bits in sorted({c.bits for c in usable}, reverse=True):
        values = [c.statistic for c in usable if c.bits == bits and c.statistic is not None]
        if not values:
            by_bits[bits] = None
        elif bits == compute_bits and observed is not None:
            # Any summation order is the compute dtype: everything between its best and
            # its worst simulated order fits it exactly.
            by_bits[bits] = min(max(observed, min(values)), max(values))
        else:
            by_bits[bits] = _nearest(observed, values)
    bits = choose(observed, by_bits, orders_known=orders_known)
    return Fit(bits, observed, tuple(found), _format_name(bits, observed, found))


def _nearest(observed: float | None, values: list[float]) -> float:
    if observed is None or observed <= 0:
        return min(values)
    return min(values, key=lambda v: abs(math.log2(max(v, 1e-300)) - math.log2(observed)))


def _format_name(bits: int | None, observed: float | None, found: list[Candidate]
                 ) -> str | None:
    """11 bits: "float16" when only float16's narrow range explains the error (small
    values lost bits as subnormals), "TF32" when float16's range overflows on this layer,
    else "TF32 or float16"."""
    if bits is None:
        return None
    stats = {c.name: c.statistic for c in found}
    tf32, fp16 = stats.get("TF32"), stats.get("float16")
    if bits == 11 and fp16 == math.inf and tf32 is not None and tf32 < math.inf:
        return "TF32"  # float16's range overflows on this layer: not float16
    if bits != 11 or observed is None or observed <= 0:
        return BITS_NAME[bits]
    if tf32 is not None and fp16 is not None and 0 < fp16 < math.inf and tf32 > 0:
        if abs(math.log2(fp16 / observed)) + 1 < abs(math.log2(tf32 / observed)):
            return "float16, whose small values lose bits as subnormals"
    return BITS_NAME[bits]
