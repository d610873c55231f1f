"""Per-run budget: refuse a config before allocating anything if it would be too big.

A hosted demo runs on a small box (1-3 GB RAM, 1-2 cores) shared by everyone with the link,
so the defaults keep one run within a few hundred MB and a few seconds. Raise them for a
bigger machine with environment variables (see README, "Deploy"):

    EXPLORER_MAX_BYTES   estimated peak bytes of one run       (default 256 MB)
    EXPLORER_MAX_FLOPS   estimated floating-point operations    (default 5e10)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.config import ExperimentConfig

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_MAX_FLOPS = 5e10

DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}

# One run evaluates each affine layer about six times: network A, network B, B on A's input
# (the local difference), the float64 reference (counted twice: float64 is ~2x the work),
# and |W||x| for the rounding bound.
FORWARD_EQUIVALENTS = 6
# Per activation element of the widest layer, what lives at once: inputs and outputs of A,
# B and local B in the compute dtype, and about twelve float64 arrays (reference, bound,
# the metric temporaries).
FLOAT64_ARRAYS_PER_ELEMENT = 12


@dataclass(frozen=True)
class Budget:
    max_bytes: float
    max_flops: float


@dataclass(frozen=True)
class Estimate:
    parameters: int
    activation_elements: int  # every tap of one network: rows * sum of widths * 2
    flops: float
    bytes: float


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not a number. "
                         f"Set it to e.g. {default:g} or unset it.") from None
    if not value > 0:
        raise ValueError(f"environment variable {name}={text!r} must be positive.")
    return value


def current_budget() -> Budget:
    return Budget(max_bytes=_env_number("EXPLORER_MAX_BYTES", DEFAULT_MAX_BYTES),
                  max_flops=_env_number("EXPLORER_MAX_FLOPS", DEFAULT_MAX_FLOPS))


def estimate(config: "ExperimentConfig") -> Estimate:
    return estimate_for(config.layer_sizes, config.rows, config.dtype)


def estimate_for(sizes: Sequence[int], rows: int, dtype: str) -> Estimate:
    """The cost of a network with these layer sizes (input, hidden..., classes)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    parameters = sum(fan_in * fan_out + fan_out for fan_in, fan_out in pairs)
    activation_elements = rows * sum(sizes[1:]) * 2
    macs = rows * sum(fan_in * fan_out for fan_in, fan_out in pairs)
    flops = 2.0 * macs * FORWARD_EQUIVALENTS
    element_bytes = DTYPE_BYTES[dtype]
    widest = max(sizes)
    peak_layer = rows * widest * (6 * element_bytes + 8 * FLOAT64_ARRAYS_PER_ELEMENT)
    params_bytes = parameters * (3 * element_bytes + 2 * 8)
    return Estimate(parameters, activation_elements, flops, float(peak_layer + params_bytes))


def max_rows(sizes: Sequence[int], dtype: str, budget: Budget | None = None) -> int:
    """The most rows (batch * samples) these layer sizes can run within the budget; 0 if
    even the parameters alone are over it. Costs grow linearly in rows, so two estimates
    give the slope."""
    budget = budget or current_budget()
    one, two = estimate_for(sizes, 1, dtype), estimate_for(sizes, 2, dtype)
    byte_slope, fixed_bytes = two.bytes - one.bytes, 2 * one.bytes - two.bytes
    flop_slope = two.flops - one.flops
    by_bytes = (budget.max_bytes - fixed_bytes) // byte_slope
    by_flops = budget.max_flops // flop_slope if flop_slope else by_bytes
    return max(0, int(min(by_bytes, by_flops)))


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_budget(config: "ExperimentConfig", budget: Budget | None = None) -> None:
    """Raise ValueError saying what to lower when a config exceeds the budget."""
    budget = budget or current_budget()
    est = estimate(config)
    fix = ("Lower batch*samples (rows), the widths or the depth; a server admin can raise "
           "the limit with {var}.")
    if est.bytes > budget.max_bytes:
        raise ValueError(
            f"this run needs about {_fmt_bytes(est.bytes)} of memory, over the "
            f"{_fmt_bytes(budget.max_bytes)} budget (rows={config.rows}, widest layer="
            f"{max(config.layer_sizes)}). " + fix.format(var="EXPLORER_MAX_BYTES"))
    if est.flops > budget.max_flops:
        raise ValueError(
            f"this run needs about {est.flops:.2g} floating-point operations, over the "
            f"{budget.max_flops:.2g} budget (rows={config.rows}, "
            f"{est.parameters:,} parameters). " + fix.format(var="EXPLORER_MAX_FLOPS"))


# ---------------------------------------------------------------------------------------
# Kernel calls: a side that runs each layer in calls of a few rows (rows_per_call) makes
# one call per chunk, and each call costs microseconds of Python and dispatch whatever its
# size (a compiled layer about 0.1 ms, for its guards). Counted apart from the flops, which
# splitting does not change.

DEFAULT_MAX_KERNEL_CALLS = 50_000


def kernel_calls(config: "ExperimentConfig") -> int:
    """Affine-layer calls of one run: A's network, B's network, and B's layer on A's input
    (the local difference) at every layer after the first."""
    layers = config.depth + 1

    def per_layer(rows_per_call: int) -> int:
        if rows_per_call <= 0 or rows_per_call >= config.rows:
            return 1
        return -(-config.rows // rows_per_call)

    return layers * per_layer(config.rows_per_call_a) \
        + (2 * layers - 1) * per_layer(config.rows_per_call_b)


def check_kernel_calls(config: "ExperimentConfig") -> None:
    """Raise ValueError when rows per call would make too many kernel calls."""
    budget = _env_number("EXPLORER_MAX_CALLS", DEFAULT_MAX_KERNEL_CALLS)
    calls = kernel_calls(config)
    if calls > budget:
        raise ValueError(
            f"this run makes {calls:,} kernel calls (rows={config.rows} in calls of "
            f"rows_per_call_a={config.rows_per_call_a} / rows_per_call_b="
            f"{config.rows_per_call_b} rows, {config.depth + 1} layers), over the "
            f"{budget:,.0f} budget. Raise rows per call or lower batch*samples; a server "
            "admin can raise the limit with EXPLORER_MAX_CALLS.")
