"""Budgets: refuse work before allocating anything, and the server's admission settings.

A hosted demo runs on a small box (1-3 GB RAM, 1-2 cores) shared by everyone with the link,
so the defaults keep one run within a few hundred MB and a few seconds, a sweep within a
minute of CPU, and the server within 1 GB. Raise them for a bigger machine with environment
variables (see README, "Limits" and "Deploy"); ``SETTINGS`` lists each with its range.

A setting that is not a usable number (``abc``, ``inf``, ``nan``, ``-1``, or past its
range) never stops the app or the CLI: the default is used and ``setting_problems()`` says
what was wrong, for the page and the CLI to show.

Estimates (``estimate``) are calibrated over-estimates of what a run costs on a CPU:

- memory: the peak resident-set increase of one run, modelled from the arrays it keeps
  while it measures one layer (``MemoryModel``), so a change to what the run keeps is a
  change to one coefficient. ``tests/test_limits.py`` checks, for a narrow, a wide and a
  wide-input run of each of float32/float16/bfloat16, that the estimate is at least 1.1x
  and at most 1.5x the median peak of five processes; other shapes are priced at up to
  ~1.8x their measured median, never under it (benchmarks/memory_refit/README.md).
- time: CPU seconds of one run from a fixed cost per run and per tap, one per activation
  element (the metric passes) and one per floating-point operation (``TimeModel``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.config import ExperimentConfig

MB = 2**20


def _physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: a generous fixed ceiling
        return float(1 << 40)


# ---------------------------------------------------------------------------------------
# Settings from the environment

@dataclass(frozen=True)
class Setting:
    name: str
    default: float
    low: float
    high: float
    meaning: str
    whole: bool = False  # a count: must be a whole number
    unit: str = ""  # "bytes" prints as MB in messages

    def show(self, value: float) -> str:
        if self.unit == "bytes":
            return _fmt_bytes(value)
        return f"{value:.0f}" if self.whole else f"{value:g}"


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("EXPLORER_MAX_BYTES", 256 * MB, 1 * MB, _physical_memory(),
            "the estimated peak memory of one run", unit="bytes"),
    Setting("EXPLORER_MAX_FLOPS", 5e10, 1e6, 1e16,
            "the estimated floating-point operations of one run"),
    Setting("EXPLORER_MAX_SWEEP_SECONDS", 120.0, 1.0, 86400.0,
            "the estimated CPU seconds of the cells a sweep still has to compute"),
    Setting("EXPLORER_MAX_CALLS", 50_000, 1, 1e9,
            "the affine-layer kernel calls of one run (rows per call splits each layer)",
            whole=True),
    Setting("EXPLORER_MAX_SWEEP_CALLS", 1_000_000, 1, 1e10,
            "the kernel calls of the cells a sweep still has to compute", whole=True),
    Setting("EXPLORER_MAX_CONCURRENT_RUNS", 2, 1, 64,
            "how many runs compute at once in the app", whole=True),
    Setting("EXPLORER_MAX_RUNNING_BYTES", 384 * MB, 1 * MB, _physical_memory(),
            "the estimated memory of all runs computing at once in the app", unit="bytes"),
    Setting("EXPLORER_MAX_QUEUED_RUNS", 16, 0, 10_000,
            "how many runs may wait for their turn before the app answers 'busy'",
            whole=True),
)}


def read_setting(name: str) -> tuple[float, str | None]:
    """(value, problem): the environment's value, or the default and why it was not used."""
    setting = SETTINGS[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return setting.default, None
    try:
        value = float(text)
        if math.isinf(value) and "inf" not in text.lower():
            value = math.copysign(setting.high * 2, value)  # too many digits: out of range
        reason = ("is not finite" if not math.isfinite(value)
                  else "is not a whole number" if setting.whole and value != int(value)
                  else f"is below the minimum {setting.show(setting.low)}"
                  if value < setting.low
                  else f"is above the maximum {setting.show(setting.high)}"
                  if value > setting.high else None)
    except ValueError:
        reason = "is not a number"
    if reason is None:
        return value, None
    shown = text if len(text) <= 40 else text[:40] + "..."
    return setting.default, (
        f"environment variable {name}={shown!r} {reason}: it sets {setting.meaning} and must "
        f"be a {'whole ' if setting.whole else ''}number from {setting.show(setting.low)} "
        f"to {setting.show(setting.high)}. Using the default {setting.show(setting.default)}"
        f" instead; fix or unset it.")


def setting(name: str) -> float:
    """The value in force (the default when the environment's is unusable)."""
    return read_setting(name)[0]


def setting_problems() -> list[str]:
    """One message per EXPLORER_MAX_* variable that is set but unusable."""
    return [problem for name in SETTINGS if (problem := read_setting(name)[1])]


@dataclass(frozen=True)
class Budget:
    max_bytes: float
    max_flops: float


def current_budget() -> Budget:
    return Budget(max_bytes=setting("EXPLORER_MAX_BYTES"),
                  max_flops=setting("EXPLORER_MAX_FLOPS"))


# ---------------------------------------------------------------------------------------
# Estimates

DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}

# One run evaluates each affine layer about six times: network A, network B, B on A's input
# (the local difference), the float64 reference (counted twice: float64 is ~2x the work),
# and |W||x| for the rounding bound.
FORWARD_EQUIVALENTS = 6


@dataclass(frozen=True)
class MemoryModel:
    """Bytes a run holds at its peak, per element of what it is measuring.

    While compare.run measures layer l (rows R, fan-in n, fan-out m) it holds, per output
    element: A's, B's and local B's outputs in the compute dtype, the float64 reference and
    |W||x|+|b|, and the metric temporaries (float64 copies of A and B, |A|, |B|, |A-B|, the
    ratio, ULP distances, sort buffers for the quantiles); per input element: A's and B's
    inputs, the reference's float64 input and |x| for the bound. Per parameter: the float64
    master copy, each network's copy and the reference's; per parameter of the largest
    layer, the copies made while measuring it (|W| in float64 for the bound, the layer's
    weight in the compute dtype, kernels' reordered weights).

    Per row, whatever a run keeps for every row regardless of width; what narrow layers (up
    to NARROW_WIDTH) cost beyond wide ones; with several samples per row, float32 runs copy
    activations between hidden layers (the per-field comments say more).

    The coefficients are fitted, per metric engine (explorer.tapstats) and dtype, by a
    linear program (benchmarks/memory_refit/refit.py) to the peak RSS increase of 714 runs
    of 33 layer shapes, each in a fresh process after a warm-up with the kernels loaded, as
    a server has them (depth 1-16, widths 4-2048, up to 4096 classes, 16-65536 rows, up to
    4.7M parameters, one or several samples; probe in tests/test_limits.py). Every run is
    priced at or above its largest measured peak and at least 1.05x its median, at most
    1.32-1.42x its median; on 48 shape-dtypes never fitted, 0.86-1.46x
    (benchmarks/memory_refit/evaluate.py prints the figures for any limits.py); an audit's
    42 others were 0.81-1.46x under the fit it saw, and its lowest (a narrow float32 layer
    into 150 classes) is 0.77x under this one. numba's
    fits also keep each memory test's case inside its window. A run's peak moves from
    process to process (in steps of one activation, also with one thread and glibc's
    default malloc: where the heap places tap-sized blocks). The fit is of the worst case,
    where the effective-bits probe simulates every candidate format (an emulated side, or
    a side whose error its compute dtype's own simulations do not explain); plain runs of
    the held-out shapes peaked about the same.
    """

    per_output_element: float  # bytes
    per_input_element: float
    per_parameter: float
    per_largest_layer_parameter: float
    fixed: float = 4 * MB  # kernels' and the allocator's first buffers
    per_row: float = 0.0
    # Layer 1's input element, when it costs other than per_input_element: the network
    # input's copies still held while layer 1 is measured. Kept below the input floor's
    # 28 B, so inputs far wider than their layer stay priced by the floor.
    per_network_input_element: float | None = None
    # The last layer's output (rows x classes), when it costs other than a hidden layer's:
    # the logits have no post-activation tap, but feed the decisions and the outputs.
    per_class_element: float | None = None
    # Every layer's output (rows x the sum of widths and classes): what a run keeps, or
    # leaves fragmented, per tap; depth adds little else (8 and 16 layers of 16 peak alike).
    per_tap_element: float = 0.0
    # Per row, per unit of the widest hidden layer up to NARROW_WIDTH: what narrow layers
    # cost per element beyond what wide ones do (fitted; small or zero in most models).
    per_narrow_row_element: float = 0.0
    # With more than one sample, per row, per unit of the widest hidden layer fed by another
    # hidden layer: the float32 runs' extra copies of (B, S, C) activations between hidden
    # layers, which one sample (or one hidden layer) does not make. Measured (before the
    # refit of 2026-11-29 23:00 UTC, which fitted 20 bytes): 64-32x3-4 at 32768 rows peaked
    # 119-131 MB with one sample and 151-167 MB with 2, 8 or 32; 256-512-512-4 at 2048 rows
    # 117 MB against 147-164; 1024-1024-4 the same either way.
    per_multi_sample_element: float = 0.0
    # While a layer is measured, per element of its output and of its input over the
    # effective-bits fit's sample (min(rows, SAMPLED_ROWS) rows): the simulated candidates'
    # outputs, errors and rounded inputs. 16-16-4096 at 287 rows peaked at 116-121 MB and
    # 32-32-2048 at 592 rows at 84-87, with the same number of logits.
    per_sampled_output_element: float = 0.0
    per_sampled_input_element: float = 0.0
    # Per parameter of the layer being measured, when it is not the first: each candidate
    # rounds that layer's weights (the first layer's candidates are simulated once for both
    # sides, later layers' once per side).
    per_later_layer_parameter: float = 0.0

    def peak_bytes(self, sizes: Sequence[int], rows: int, samples: int = 1) -> float:
        pairs = list(zip(sizes[:-1], sizes[1:]))
        last = len(pairs) - 1
        first_input = (self.per_input_element if self.per_network_input_element is None
                       else self.per_network_input_element)
        per_class = (self.per_output_element if self.per_class_element is None
                     else self.per_class_element)
        sampled = min(rows, SAMPLED_ROWS)
        layer = max(rows * ((per_class if i == last else self.per_output_element) * fan_out
                            + (first_input if i == 0 else self.per_input_element) * fan_in)
                    + sampled * (self.per_sampled_output_element * fan_out
                                 + self.per_sampled_input_element * fan_in)
                    + self.per_later_layer_parameter * (fan_in * fan_out + fan_out) * (i > 0)
                    for i, (fan_in, fan_out) in enumerate(pairs))
        per_row = (self.per_row + self.per_tap_element * sum(sizes[1:])
                   + self.per_narrow_row_element * min(max(sizes[1:-1], default=0), NARROW_WIDTH))
        if samples > 1:
            per_row += self.per_multi_sample_element * max(sizes[2:-1], default=0)
        per_layer = [fan_in * fan_out + fan_out for fan_in, fan_out in pairs]
        return (layer + rows * per_row + self.per_parameter * sum(per_layer)
                + self.per_largest_layer_parameter * max(per_layer) + self.fixed)


NARROW_WIDTH = 32
# effective.SAMPLE_ROWS: the rows the effective-bits fit simulates (tests hold them equal;
# limits does not import torch, so refit.py can load it alone).
SAMPLED_ROWS = 256


# Calibrated on torch 2.13 CPU (oneDNN/MKL, x86-64, 2 threads, one malloc arena: see
# explorer/allocator.py); see README, "Limits". float64 compute is not fitted: float32's
# arrays plus the longdouble referee's 16-byte values, taken as 1.5x.
# The per-run budget (check_budget, max_rows) prices every run with the larger of the two
# engines' models: whether the numba kernels have loaded yet (a server loads them in the
# background) must not decide what may run.
BUDGET_ENGINES = ("numba", "torch")

MEMORY_MODELS: dict[str, dict[str, MemoryModel]] = {
    # float32/float16/bfloat16: fitted by benchmarks/memory_refit/refit.py (a linear program,
    # to a tenth of a byte) to its 714 runs: each priced at 1.05x its median peak or more,
    # and at its largest peak or more. numba's fits also keep each case the memory tests
    # measure (tests/test_limits.py, kernels loaded) inside the window its test needs, with
    # and without the AVX2 cap (test_cases.jsonl: five processes each, ten for the narrow,
    # wide and wide-input cases).
    "numba": {
        "float32": MemoryModel(79.0, 41.8, 38.1, 0.0, fixed=0, per_class_element=70.0,
                               per_network_input_element=11.6, per_tap_element=1.7,
                               per_narrow_row_element=19.3, per_multi_sample_element=14.5,
                               per_sampled_output_element=41.0,
                               per_later_layer_parameter=21.8),
        "float16": MemoryModel(88.8, 44.8, 28.2, 0.0, fixed=0, per_class_element=91.5,
                               per_network_input_element=16.6, per_tap_element=3.1,
                               per_narrow_row_element=7.7, per_multi_sample_element=4.4,
                               per_sampled_output_element=26.2,
                               per_later_layer_parameter=18.6),
        "bfloat16": MemoryModel(103.1, 21.5, 24.5, 0.0, fixed=0, per_class_element=94.2,
                               per_network_input_element=15.2, per_tap_element=2.1,
                               per_narrow_row_element=7.2, per_multi_sample_element=6.6,
                               per_sampled_output_element=28.8,
                               per_later_layer_parameter=30.6),
        "float64": MemoryModel(222, 0, 56, 128, fixed=3 * MB, per_row=3168),
    },
    "torch": {
        # No multi-sample runs were measured with torch's engine: those copies are the
        # networks', so it takes numba's term.
        "float32": MemoryModel(157.2, 20.1, 32.4, 0.0, fixed=0, per_class_element=138.3,
                               per_network_input_element=14.3, per_tap_element=1.2,
                               per_multi_sample_element=14.5,
                               per_sampled_input_element=52.2,
                               per_later_layer_parameter=36.6),
        "float16": MemoryModel(146.3, 16.4, 24.8, 0.0, fixed=0, per_class_element=118.3,
                               per_network_input_element=10.3, per_tap_element=2.6,
                               per_narrow_row_element=24.7, per_multi_sample_element=4.4,
                               per_sampled_output_element=4.6,
                               per_later_layer_parameter=25.1),
        "bfloat16": MemoryModel(151.3, 28.5, 26.5, 0.3, fixed=0, per_class_element=131.2,
                               per_network_input_element=19.1, per_tap_element=1.7,
                               per_multi_sample_element=6.6,
                               per_sampled_output_element=4.5,
                               per_later_layer_parameter=19.5),
        "float64": MemoryModel(321, 0, 62, 72, fixed=3 * MB, per_row=1482),
    },
}


@dataclass(frozen=True)
class TimeModel:
    """CPU seconds of one run: fixed + per tap + per activation element + per operation.

    The per-element term is what makes narrow networks cost more CPU per counted operation:
    every tap's metric passes are O(elements), while the operations are O(elements x fan-in).
    """

    per_run: float
    per_tap: float
    per_element: float
    per_flop: float

    def seconds(self, taps: int, elements: float, flops: float) -> float:
        return (self.per_run + self.per_tap * taps + self.per_element * elements
                + self.per_flop * flops)


# Fitted to CPU seconds (process time, both threads) of 13 configs on the project's 2-core
# machine at load average ~5 (other jobs running; OpenMP's waiting threads then burn CPU,
# so these are pessimistic): per tap ~4 ms of small-tensor work, ~0.5 us per activation
# element (A's and B's taps counted) for the metric passes, and the GEMMs. Narrow and deep
# networks are priced by the element and tap terms, which the old operation count left
# out (a 126-cell sweep of narrow networks "within budget" took 247 CPU-s).
TIME_MODELS: dict[str, TimeModel] = {
    "float32": TimeModel(0.005, 0.004, 5e-7, 2e-10),
    "float16": TimeModel(0.005, 0.004, 7e-7, 8e-10),  # CPU float16 GEMMs are slow
    "bfloat16": TimeModel(0.005, 0.004, 5e-7, 4e-10),
    "float64": TimeModel(0.005, 0.004, 5e-7, 2e-9),  # longdouble referee: numpy loops
}


@dataclass(frozen=True)
class Estimate:
    parameters: int
    activation_elements: int  # every tap of one network: rows * sum of widths * 2
    flops: float
    bytes: float  # peak memory above the start, kernels_bytes and first_run_bytes included
    seconds: float  # CPU seconds on a machine like the one the models were measured on
    kernels_bytes: float = 0.0  # loading the numba kernels, when this run would do it
    first_run_bytes: float = 0.0  # the process's first run: libraries' one-off state


# Loading the numba metric kernels from their cache, once per process: numba's import and
# the kernels. Measured on this machine: +114 MB in one install (again in 4 processes on
# 2026-11-29, 22:30 UTC, with two other jobs running), +131-140 MB in others, +154 MB while
# another job ran (numba's import alone 51-92 MB). Priced above the highest, so it covers
# the load; it is one process's one-off cost, not part of a run's model. The app
# loads the kernels in the background after its first page; the CLI loads them in the
# first run with AUTO_LOAD_ELEMENTS tap elements, whose estimate then includes this.
# Compiling them into an empty cache costs more, once per machine (README, "Deploy": warm
# the cache at build time). (The load's ~1 s is left out of the time estimate: a sweep
# sums its cells' estimates, and only one of them would load.)
KERNEL_LOAD_BYTES = 160 * MB


# The first run in a process also builds state that stays for the process's life (torch's
# and oneDNN's thread pools and primitive caches, MKL's buffers, the machine probes): a
# 2-row forum run raised the peak by 55 MB on its own. A thin float16 run (32-16x6-4,
# 45056 rows) peaked at 98-106 MB after a warm-up run and at 150-161 MB as a process's
# first run here (4 processes each, kernels loaded before both), and at 170-187 MB as a
# first run in a CI run on a fresh clone: up to ~80 MB of one-off state. The models are
# fitted after a warm-up run, so the first run adds this, as the kernels' load does: for
# admission and the CLI, never for the budget, which must refuse the same settings in
# every process.
FIRST_RUN_BYTES = 88 * MB
_process = {"ran": False}


def note_run_started() -> None:
    """Called by every computation that runs the networks (compare.run, worst_elements)."""
    _process["ran"] = True


# CPU seconds per affine-layer call beyond the first per layer: Python and dispatch of a
# small eager call (a compiled layer's guards cost about 0.1 ms). Only rows per call adds
# calls, so a sweep over rows per call is priced by what the splitting really costs.
SECONDS_PER_EXTRA_CALL = {"eager": 2e-5, "compiled": 1e-4}


def estimate(config: "ExperimentConfig", engine: str | None = None) -> Estimate:
    """What one run costs: memory as measured by ``engine`` (by default the metric engine
    the run would take now, so admission counts what runs), operations and CPU seconds."""
    base = estimate_for(config.layer_sizes, config.rows, config.dtype, engine,
                        tf32_emulated="tf32" in (config.emulate_a, config.emulate_b),
                        samples=config.samples)
    compiled = "linear_compiled" in (config.impl_a, config.impl_b)
    extra_calls = kernel_calls(config) - (3 * (config.depth + 1) - 1)
    if extra_calls <= 0:
        return base
    per_call = SECONDS_PER_EXTRA_CALL["compiled" if compiled else "eager"]
    return replace(base, seconds=base.seconds + per_call * extra_calls)


# What a run holds per element of its widest layer input (the input in the compute dtype
# for each side, its float64 copies for the referee and the bounds), measured on links
# whose input is far wider than the layer's output (8192-65536 rows, input_dim 512-4096,
# width 16 or 64; benchmarks/memory_refit/input_floor.jsonl, 2026-11-29 at 6d52758):
# 20.4-21.8 bytes for float32, 23.6-24.0 for float16 and bfloat16, and the memory test's
# wide-input case up to 25.6; priced at 28. The fitted models saw inputs at most 4x their
# layer's output and carry that cost in their per-output and per-row terms; past that they
# once priced a 2 GB run at 80 MB. A run's estimate is the larger of the model and this
# floor.
INPUT_FLOOR_BYTES = {"float32": 28, "float16": 28, "bfloat16": 28, "float64": 52}


# With a side emulating TF32, rounding the operands to TF32 makes integer temporaries the
# size of the input: 24.1-25.0 bytes per input element measured (either side; 16384 x 4096
# and 65536 x 512 into width 16). It was 76-92 before the rounding worked in int32 in place,
# when such a run had been priced at 38 and took 2.4x its estimate.
TF32_EMULATION_INPUT_BYTES = 30


def input_floor_bytes(sizes: Sequence[int], rows: int, dtype: str,
                      tf32_emulated: bool = False) -> float:
    per = max(INPUT_FLOOR_BYTES[dtype], TF32_EMULATION_INPUT_BYTES if tf32_emulated else 0)
    return rows * max(sizes[:-1]) * per + 4 * MB


def estimate_for(sizes: Sequence[int], rows: int, dtype: str,
                 engine: str | None = None, tf32_emulated: bool = False,
                 samples: int = 1) -> Estimate:
    """The cost of a network with these layer sizes (input, hidden..., classes) for
    ``rows`` rows in all, of ``samples`` samples each, measured by ``engine`` ('numba' or
    'torch'; by default the one such a run would take now, with the kernels' one-off load
    when the run would do it, and the process's first-run state when no run has started
    yet)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    parameters = sum(fan_in * fan_out + fan_out for fan_in, fan_out in pairs)
    activation_elements = rows * sum(sizes[1:]) * 2
    macs = rows * sum(fan_in * fan_out for fan_in, fan_out in pairs)
    flops = 2.0 * macs * FORWARD_EQUIVALENTS
    taps = 2 * len(pairs) - 1
    kernels_bytes = first_run_bytes = 0.0
    if engine is None:
        from explorer import tapstats

        # Every tap's elements, as compare.run counts them to choose the engine.
        engine = tapstats.likely_engine(rows * (2 * sum(sizes[1:-1]) + sizes[-1]))
        if engine == "numba" and not tapstats.kernels_loaded():  # this run loads them
            kernels_bytes = KERNEL_LOAD_BYTES
        if not _process["ran"]:
            first_run_bytes = FIRST_RUN_BYTES
    return Estimate(parameters, activation_elements, flops,
                    max(MEMORY_MODELS[engine][dtype].peak_bytes(sizes, rows, samples),
                        input_floor_bytes(sizes, rows, dtype, tf32_emulated))
                    + kernels_bytes + first_run_bytes,
                    TIME_MODELS[dtype].seconds(taps, activation_elements, flops),
                    kernels_bytes, first_run_bytes)


def max_rows(sizes: Sequence[int], dtype: str, budget: Budget | None = None,
             samples: int = 1, tf32_emulated: bool = False) -> int:
    """The most rows (batch * samples) these layer sizes can run within the budget, with
    ``samples`` samples per row of the batch (one, or several: they cost differently) and,
    with ``tf32_emulated``, a side rounding its operands to TF32 (a higher input floor); 0
    if even one row is over it.

    Priced exactly as check_budget prices a config (the larger engine's estimate, the
    input floor included), by bisection: costs only grow with rows, but not along one line
    (the effective-bits sample stops growing at SAMPLED_ROWS rows, the input floor starts
    from zero, and which layer sets the peak can change), so a slope taken at two row
    counts offers rows the check refuses, or hides rows it accepts."""
    budget = budget or current_budget()

    def fits(rows: int) -> bool:
        for engine in BUDGET_ENGINES:
            cost = estimate_for(sizes, rows, dtype, engine=engine, samples=samples,
                                tf32_emulated=tf32_emulated)
            if cost.bytes > budget.max_bytes or cost.flops > budget.max_flops:
                return False
        return True

    if not fits(1):
        return 0
    low, high = 1, 2
    while fits(high):  # every per-row cost is positive, so this ends
        low, high = high, 2 * high
    while high - low > 1:  # fits(low), not fits(high)
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def over_budget_figures(need: float, limit: float, rough: Callable[[float], str],
                        exact: Callable[[float], str],
                        rough_limit: Callable[[float], str] | None = None) -> tuple[str, str]:
    """The two figures of a "needs X, over the Y budget" message: rounded (the limit by
    ``rough_limit`` when given), unless rounding makes them read alike ("256.0 MB, over the
    256.0 MB budget" reads as a mistake); then both ``exact``."""
    shown = rough(need), (rough_limit or rough)(limit)
    return shown if shown[0] != shown[1] else (exact(need), exact(limit))


def _exact_bytes(n: float) -> str:
    return f"{n:,.0f} bytes"


def check_budget(config: "ExperimentConfig", budget: Budget | None = None) -> None:
    """Raise ValueError saying what to lower when a config exceeds the budget.

    Priced with the larger of the engines' memory models (BUDGET_ENGINES), so a setting
    refused once is refused always, here and in the sidebar's ranges (max_rows).
    """
    budget = budget or current_budget()
    est = max((estimate(config, engine=e) for e in BUDGET_ENGINES), key=lambda e: e.bytes)
    fix = ("Lower batch*samples (rows), the widths or the depth; a server admin can raise "
           "the limit with {var}.")
    one_row = max(estimate_for(config.layer_sizes, 1, config.dtype, engine=e).bytes
                  for e in BUDGET_ENGINES)
    if one_row > budget.max_bytes:  # fewer rows cannot help: say what can
        need, limit = over_budget_figures(one_row, budget.max_bytes, _fmt_bytes, _exact_bytes)
        raise ValueError(
            f"this network needs about {need} of memory even for one row, "
            f"over the {limit} budget ({est.parameters:,} parameters, "
            f"widest layer={max(config.layer_sizes)}). Lower the widths or the depth; a "
            f"server admin can raise the limit with EXPLORER_MAX_BYTES.")
    if est.bytes > budget.max_bytes:
        need, limit = over_budget_figures(est.bytes, budget.max_bytes, _fmt_bytes,
                                          _exact_bytes)
        raise ValueError(
            f"this run needs about {need} of memory, over the "
            f"{limit} budget (rows={config.rows}, widest layer="
            f"{max(config.layer_sizes)}). " + fix.format(var="EXPLORER_MAX_BYTES"))
    if est.flops > budget.max_flops:
        need, limit = over_budget_figures(est.flops, budget.max_flops, "{:.2g}".format,
                                          "{:,.0f}".format)
        raise ValueError(
            f"this run needs about {need} floating-point operations, over the "
            f"{limit} budget (rows={config.rows}, "
            f"{est.parameters:,} parameters). " + fix.format(var="EXPLORER_MAX_FLOPS"))


# ---------------------------------------------------------------------------------------
# Kernel calls: a side that runs each layer in calls of a few rows (rows_per_call) makes
# one call per chunk, and each call costs microseconds of Python and dispatch whatever its
# size (a compiled layer about 0.1 ms, for its guards). Counted apart from the flops, which
# splitting does not change.

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
    budget = setting("EXPLORER_MAX_CALLS")
    calls = kernel_calls(config)
    if calls > budget:
        raise ValueError(
            f"this run makes {calls:,} kernel calls (rows={config.rows} in calls of "
            f"rows_per_call_a={config.rows_per_call_a} / rows_per_call_b="
            f"{config.rows_per_call_b} rows, {config.depth + 1} layers), over the "
            f"{budget:,.0f} budget. Raise rows per call or lower batch*samples; a server "
            "admin can raise the limit with EXPLORER_MAX_CALLS.")
