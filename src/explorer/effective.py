"""Effective precision: with how many significant bits did a side really multiply?

A float32 run can hide a narrower format: TF32 on Ampere GPUs (cuDNN convolutions by
default), bfloat16 on CPUs where oneDNN's fp32_precision is "bf16". The worst-case bound
gamma_(n+1) u (|W||x| + |b|) catches that only when the narrower format's error exceeds it,
and it cannot tell 11 bits from 8: it is loose enough to hold either at common fan-ins.

So the error's *statistics* decide. For one affine layer and one side X, with X's own
input x and the exact result R = W x + b from the referee:

    observed  = RMS over elements of |X(x) - R| / (|W||x| + |b|)

and for each candidate format c (53 float64, 24 float32, 11 TF32 or float16, 8 bfloat16,
no wider than the compute dtype) the same statistic of a simulation: the operands x and W
rounded to c (to nearest, ties to even), then the layer computed in the compute dtype on
the CPU with full-precision kernels. The side's effective bits are the candidate whose
statistic is nearest the observed one on a log scale, if within FIT_TOLERANCE_BITS
(a factor of 4); candidates 11 and 8 are 3 bits apart, float32 13 bits from TF32. None:
no referee, or no candidate fits (then the report says so).

Normalising by |W||x| + |b| per element makes every element count by how its rounding
compares with the size of its terms, so a few large elements cannot dominate. The
statistic is taken over at most SAMPLE_ROWS rows: it is a property of the arithmetic,
not of the data, and this keeps its cost small beside the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from explorer.precision import onednn_full_precision, round_to_tf32

SAMPLE_ROWS = 256
FIT_TOLERANCE_BITS = 2.0
# Significand bits (with the implicit one) of the formats an operand may have been
# rounded to, and what to call them.
CANDIDATE_BITS = (53, 24, 11, 8)
BITS_NAME = {53: "float64", 24: "float32", 11: "TF32 or float16", 8: "bfloat16"}
DTYPE_BITS = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}


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
    """RMS of error / magnitude over elements with a positive, finite magnitude and a
    finite error; None when there are none (float64 in, float)."""
    keep = (magnitude > 0) & torch.isfinite(magnitude) & torch.isfinite(error)
    if not bool(keep.any()):
        return None
    scaled = error[keep] / magnitude[keep]
    return float(torch.sqrt((scaled * scaled).mean()))


def simulate(x_rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, bits: int,
             dtype: torch.dtype) -> torch.Tensor:
    """The layer with its operands rounded to ``bits`` bits, computed in ``dtype`` on the
    CPU with full-precision oneDNN kernels. x_rows (rows, fan_in); weight (out, in)."""
    x = round_to_bits(x_rows.detach().to(device="cpu", dtype=dtype), bits)
    w = round_to_bits(weight.detach().to(device="cpu", dtype=dtype), bits)
    b = bias.detach().to(device="cpu", dtype=dtype)
    with onednn_full_precision():
        return torch.nn.functional.linear(x, w, b)


@dataclass(frozen=True)
class Fit:
    bits: int | None  # the candidate that explains the observed error; None: none fits
    observed: float | None  # RMS of |X - R| / (|W||x| + |b|)
    candidates: tuple[tuple[int, float | None], ...]  # (bits, the same for a simulation)

    def describe(self) -> str:
        if self.observed is None:
            return "no elements to measure"
        sims = ", ".join(f"{b} bits {v:.2g}" for b, v in self.candidates if v is not None)
        return f"observed {self.observed:.2g}; simulated {sims}"


def choose(observed: float | None, candidates: dict[int, float | None]) -> int | None:
    """The candidate that explains ``observed``: the nearest on a log2 scale, within
    FIT_TOLERANCE_BITS, the wider one on a tie; the compute dtype (the widest candidate)
    whenever the observed error is no larger than its simulation's, or clearly (more than
    the tolerance) below the next narrower format's. None when nothing fits."""
    ordered = [(bits, candidates[bits]) for bits in sorted(candidates, reverse=True)
               if candidates[bits] is not None]
    if observed is None or not ordered:
        return None
    widest, widest_value = ordered[0]
    if observed <= widest_value:  # includes an exact result (0): it fits every format
        return widest
    tiny = 1e-300

    def distance(value: float) -> float:
        return abs(math.log2(max(observed, tiny)) - math.log2(max(value, tiny)))

    best, best_value = min(ordered, key=lambda item: (distance(item[1]), -item[0]))
    best_distance = distance(best_value)
    if len(ordered) > 1 and observed < ordered[1][1] * 2.0 ** -FIT_TOLERANCE_BITS:
        # Worse than the compute dtype's simulation (another summation order), yet far
        # better than any narrower format: still the compute dtype.
        return widest
    return best if best_distance <= FIT_TOLERANCE_BITS else None


def fit(observed_error: torch.Tensor, magnitude: torch.Tensor,
        simulated_errors: dict[int, torch.Tensor]) -> Fit:
    """observed_error, magnitude and each simulated error: float64 (rows, width)."""
    observed = scaled_error_rms(observed_error, magnitude)
    candidates = {bits: scaled_error_rms(error, magnitude)
                  for bits, error in simulated_errors.items()}
    return Fit(choose(observed, candidates), observed, tuple(candidates.items()))
