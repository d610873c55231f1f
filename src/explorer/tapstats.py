"""Per-tap statistics: a declarative list of per-element metrics, two engines, one answer.

A tap's metrics are a small *program*: named input arrays (A, B, local B in the compute
dtype; the reference and |W||x|+|b| in float64) and a list of ``Series``, each one
element-wise operation of the numerical policy in ``explorer.metrics`` applied to inputs or
to earlier series, with the statistics wanted of it (max, mean, RMS, median, p99, a
histogram). ``tap_program`` writes the list for a tap; adding a metric is adding a line.

Two engines evaluate a program and give the same numbers, bit for bit:

* ``numba`` (``explorer.kernels``): one fused pass over the tap's arrays, block by block,
  computing every series and its statistics without materialising any of them. Means are
  summed in numpy's pairwise order (so they equal ``np.mean``); median and p99 are exact:
  a sample of the values brackets each wanted order statistic, the pass counts the values
  below, at and inside each bracket and copies out the few inside, and the order statistic
  is selected among those. When a bracket misses (or a NaN breaks the pairwise order of a
  mean), that one series is computed in full and handled exactly as below.
* ``torch`` (the fallback, always available): each series as a whole float64 array with
  the ``explorer.metrics`` functions, statistics with numpy (``np.mean``, the partition of
  ``metrics.quantiles``).

Which engine ran is recorded in the report's environment (``metrics_engine``). The choice
(``EXPLORER_METRICS_ENGINE``: auto, numba or torch) is made per run by ``choose_engine``:
auto takes numba when it is installed and loaded, loads it first for a run big enough to
repay the load, and otherwise uses torch; ``start_background_load`` lets a server load the
kernels while it answers its first requests with the fallback.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from explorer import metrics

# --- the program ------------------------------------------------------------------------

# Element-wise operations (the numerical policy of explorer.metrics; opcodes of kernels.py).
OPS = ("copy", "abs", "diff", "maxabs", "ratio", "err", "ulp", "log2p1", "tolfail", "scale")
STATS = ("max", "argmax", "mean", "rms", "hist", "median", "p99")
QUANTILES = {"median": 0.5, "p99": 0.99}


@dataclass(frozen=True)
class Series:
    """One per-element metric: ``op`` applied to ``args`` (input or earlier series names).

    op         value per element (float64; every series is >= 0 or NaN)
    copy       x
    abs        |x|
    diff       |x - y|, 0 where x == y (also inf == inf), NaN where either is NaN
    maxabs     max(|x|, |y|), NaN where either is NaN
    ratio      metrics.safe_ratio(x, y): 0 where x == 0, inf/inf = inf, NaN in -> NaN out
    err        err_vs_reference from (diff, r, |r|): diff where r == 0, else diff / |r|
    ulp        metrics.ulp_diff of two compute-dtype inputs
    log2p1     log2(1 + x) with the C library's log2
    tolfail    1 where not (x <= atol + rtol * y) (assert_close fails), else 0
    scale      c * x
    """

    name: str
    op: str
    args: tuple[str, ...]
    params: tuple[float, ...] = ()
    stats: tuple[str, ...] = ()


@dataclass(frozen=True)
class Program:
    narrow: tuple[str, ...]  # inputs in the compute dtype (their bits give ULPs)
    wide: tuple[str, ...]  # float64 inputs
    series: tuple[Series, ...]
    hist_bins: int = 1

    def __post_init__(self) -> None:
        known = set(self.narrow) | set(self.wide)
        for s in self.series:
            if s.op not in OPS:
                raise ValueError(f"series {s.name}: unknown op {s.op!r}; use one of {OPS}")
            bad = [st for st in s.stats if st not in STATS]
            if bad:
                raise ValueError(f"series {s.name}: unknown statistics {bad}; use {STATS}")
            missing = [a for a in s.args if a not in known]
            if missing:
                raise ValueError(f"series {s.name}: {missing} is neither an input nor an "
                                 "earlier series")
            if s.op == "ulp" and not all(a in self.narrow for a in s.args):
                raise ValueError(f"series {s.name}: ulp needs two compute-dtype inputs")
            known.add(s.name)


@dataclass(frozen=True)
class SeriesStats:
    """Statistics of one series over its non-NaN values (NaN when there are none, or when
    the statistic was not asked for). rms is over the finite values only."""

    max: float
    mean: float
    rms: float
    median: float
    p99: float
    count: int  # non-NaN values
    nan_count: int
    inf_count: int
    histogram: tuple[int, ...] = ()
    argmax: int | None = None  # flat index of the first largest value ("argmax" asked for)


# assert_close's defaults (atol, rtol) per dtype, from metrics.
def tap_program(dtype_name: str, *, reference: str | None, local: bool,
                gamma: float = math.nan) -> Program:
    """The metrics of one tap. reference: None, "float64" (the referee's values as an
    input) or "given" (errors vs the referee computed outside, e.g. in longdouble, as the
    inputs a_err_given/b_err_given). local: a pre tap with B's layer on A's input
    (input local_b) and |W||x|+|b| (input magnitude_sum); gamma = gamma_(n+1)."""
    rtol, atol = metrics.ASSERT_CLOSE_DEFAULTS[dtype_name]
    series = [
        Series("abs_a", "abs", ("a",), stats=("max", "mean", "rms")),
        Series("abs_b", "abs", ("b",), stats=("max", "mean", "rms")),
        Series("diff", "diff", ("a", "b"), stats=("max", "argmax", "mean", "median", "p99")),
        Series("maxabs", "maxabs", ("a", "b")),
        Series("rel", "ratio", ("diff", "maxabs"), stats=("max", "mean", "median", "p99")),
        Series("ulp", "ulp", ("a", "b"), stats=("max", "argmax", "mean", "median", "p99")),
        Series("bits", "log2p1", ("ulp",), stats=("max", "mean", "hist")),
        # assert_close(actual=B, expected=A): |B - A| <= atol + rtol |A|, and the rtol needed.
        Series("tol_fail", "tolfail", ("diff", "abs_a"), params=(atol, rtol), stats=("max",)),
        Series("tol_rtol", "ratio", ("diff", "abs_a"), stats=("max",)),
    ]
    wide: list[str] = []
    if reference == "float64":
        wide.append("reference")
        series += [
            Series("abs_ref", "abs", ("reference",), stats=("max",)),
            Series("a_ref_diff", "diff", ("a", "reference")),
            Series("a_err", "err", ("a_ref_diff", "reference", "abs_ref"),
                   stats=("max", "mean", "median")),
            Series("b_ref_diff", "diff", ("b", "reference")),
            Series("b_err", "err", ("b_ref_diff", "reference", "abs_ref"),
                   stats=("max", "mean", "median")),
        ]
    elif reference == "given":
        wide += ["reference", "a_err_given", "b_err_given"]
        series += [
            Series("abs_ref", "abs", ("reference",), stats=("max",)),
            Series("a_err", "copy", ("a_err_given",), stats=("max", "mean", "median")),
            Series("b_err", "copy", ("b_err_given",), stats=("max", "mean", "median")),
        ]
    narrow = ["a", "b"]
    if local:
        narrow.append("local_b")
        wide.append("magnitude_sum")
        series += [
            Series("local_diff", "diff", ("a", "local_b"), stats=("max",)),
            Series("local_maxabs", "maxabs", ("a", "local_b")),
            Series("local_rel", "ratio", ("local_diff", "local_maxabs"), stats=("max",)),
            Series("local_ulp", "ulp", ("a", "local_b"), stats=("max",)),
            Series("bound", "scale", ("magnitude_sum",), params=(gamma,), stats=("max",)),
            Series("two_bound", "scale", ("bound",), params=(2.0,)),
            Series("bound_ratio", "ratio", ("local_diff", "two_bound"), stats=("max", "p99")),
            Series("condition", "ratio", ("magnitude_sum", "abs_a"), stats=("max", "median")),
        ]
    return Program(tuple(narrow), tuple(wide), tuple(series),
                   hist_bins=HISTOGRAM_BITS[dtype_name] + 1)


def side_program(*, given_errors: bool) -> Program:
    """Per side X in (a, b): the largest |X - exact(x_X)| / (|W||x_X| + |b|), x_X the side's
    own input (the per-side bound ratios divide it by gamma). Inputs exact_a/exact_b (or the
    errors themselves, a_side_err_given/b_side_err_given, taken in longdouble),
    magnitude_sum (A's input) and magnitude_sum_b; the error and the magnitude are
    summarised too, so the caller can tell whether all were finite."""
    series: list[Series] = []
    wide = ["magnitude_sum", "magnitude_sum_b"]
    for side, ms in (("a", "magnitude_sum"), ("b", "magnitude_sum_b")):
        if given_errors:
            wide.append(f"{side}_side_err_given")
            series.append(Series(f"{side}_side_err", "copy", (f"{side}_side_err_given",),
                                 stats=("max",)))
        else:
            wide.append(f"exact_{side}")
            series.append(Series(f"{side}_side_err", "diff", (side, f"exact_{side}"),
                                 stats=("max",)))
        series += [
            Series(f"{side}_side_magnitude", "copy", (ms,), stats=("max",)),
            Series(f"{side}_side_share", "ratio", (f"{side}_side_err", f"{side}_side_magnitude"),
                   stats=("max",)),
        ]
    return Program(("a", "b"), tuple(wide), tuple(series))


HISTOGRAM_BITS = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}


# --- shared pieces ----------------------------------------------------------------------

def flat(t: torch.Tensor) -> torch.Tensor:
    """(B, S, C) in any layout -> contiguous 1-D on the CPU, logical order (no copy when the
    memory already is in that order)."""
    return t.detach().cpu().contiguous().reshape(-1)


_flat = flat


def element(t: torch.Tensor, index: int) -> torch.Tensor:
    """The element at flat ``index`` of t in logical (B, S, C) order, as a 1-element CPU
    tensor: the same element flat(t)[index] reads, without copying a permuted t whole."""
    position = tuple(int(k) for k in np.unravel_index(index, tuple(t.shape)))
    return t.detach()[position].reshape(1).cpu()


def _interpolate(q: float, count: int, order_stat) -> float:
    """numpy's linear quantile from order statistics (order_stat(k): k-th smallest)."""
    position = q * (count - 1)
    lo_rank, hi_rank = math.floor(position), math.ceil(position)
    lo, hi = order_stat(lo_rank), order_stat(hi_rank)
    frac = position - lo_rank
    if lo == hi or frac == 0:
        return float(lo)
    if math.isinf(hi):
        return float(hi)
    return float(lo + (hi - lo) * frac)


# --- the torch engine (fallback) ---------------------------------------------------------

def _torch_op(series: Series, values: Mapping[str, torch.Tensor],
              narrow_inputs: Mapping[str, torch.Tensor], finite: Mapping[str, bool]
              ) -> torch.Tensor:
    """One series over whole arrays. ``finite`` says which values are known to hold no inf
    or NaN, so the metrics functions may skip their fix-ups (same values either way)."""
    args = [values[a] for a in series.args]
    known = [finite.get(a, False) for a in series.args]
    op = series.op
    if op == "copy":
        return args[0]
    if op == "abs":
        return args[0].abs()
    if op == "diff":
        return metrics.abs_diff(args[0], args[1], finite=all(known))
    if op == "maxabs":
        return torch.maximum(args[0].abs(), args[1].abs())
    if op == "ratio":
        return metrics.safe_ratio(args[0], args[1], finite=all(known))
    if op == "err":
        diff, reference, abs_reference = args
        relative = metrics.safe_ratio(diff, abs_reference, finite=all(known))
        return torch.where(reference == 0, diff, relative)
    if op == "ulp":
        return metrics.ulp_diff(narrow_inputs[series.args[0]], narrow_inputs[series.args[1]])
    if op == "log2p1":
        return metrics.bits_of_error(args[0])
    if op == "tolfail":
        atol, rtol = series.params
        return (~(args[0] <= atol + rtol * args[1])).to(torch.float64)
    if op == "scale":
        return series.params[0] * args[0]
    raise AssertionError(op)


def _stays_finite(series: Series, finite: Mapping[str, bool]) -> bool:
    """Whether a series of finite arguments is finite too (ratios may divide by 0; a scale
    above 1 may overflow)."""
    if not all(finite.get(a, False) for a in series.args):
        return False
    if series.op in ("ratio", "err", "log2p1"):
        return series.op == "log2p1"
    if series.op == "scale":
        return abs(series.params[0]) <= 1.0
    return True


def _stats_of_array(values: np.ndarray, stats: Sequence[str], hist_bins: int,
                    wide: bool) -> SeriesStats:
    nan_mask = np.isnan(values)
    nan_count = int(nan_mask.sum())
    kept = values[~nan_mask] if nan_count else values
    count = int(kept.size)
    inf_count = int(np.count_nonzero(kept == math.inf))
    if count == 0:
        return SeriesStats(math.nan, math.nan, math.nan, math.nan, math.nan, 0, nan_count,
                           0, (0,) * hist_bins if "hist" in stats else (), None)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(kept.mean()) if "mean" in stats else math.nan
    rms = metrics.rms(torch.from_numpy(kept), wide=wide) if "rms" in stats else math.nan
    wanted = [QUANTILES[s] for s in ("median", "p99") if s in stats]
    found = dict(zip(wanted, metrics.quantiles(kept, tuple(wanted)))) if wanted else {}
    histogram: tuple[int, ...] = ()
    if "hist" in stats:
        index = np.clip(np.floor(kept), 0, hist_bins - 1).astype(np.int64)
        histogram = tuple(int(c) for c in np.bincount(index, minlength=hist_bins))
    argmax = None
    if "argmax" in stats:  # the first largest, NaN left out (as torch.argmax after a fill)
        argmax = int(np.argmax(np.where(nan_mask, -math.inf, values))) if nan_count else \
            int(np.argmax(values))
    return SeriesStats(float(kept.max()), mean, rms, found.get(0.5, math.nan),
                       found.get(0.99, math.nan), count, nan_count, inf_count, histogram,
                       argmax)


def evaluate_torch(program: Program, inputs: Mapping[str, torch.Tensor]
                   ) -> dict[str, SeriesStats]:
    """Every series as a whole float64 array (metrics functions), statistics with numpy."""
    narrow_inputs = {name: _flat(inputs[name]) for name in program.narrow}
    wide_compute = any(t.dtype == torch.float64 for t in narrow_inputs.values())
    values: dict[str, torch.Tensor] = {name: metrics.upcast(t) for name, t in
                                       narrow_inputs.items()}
    values.update({name: _flat(inputs[name]).to(torch.float64) for name in program.wide})
    finite = {name: metrics.all_finite(t) for name, t in values.items()}
    last_use = {}
    for index, s in enumerate(program.series):
        for a in s.args:
            last_use[a] = index
    out: dict[str, SeriesStats] = {}
    for index, s in enumerate(program.series):
        values[s.name] = _torch_op(s, values, narrow_inputs, finite)
        finite[s.name] = _stays_finite(s, finite)
        if s.stats:
            out[s.name] = _stats_of_array(values[s.name].numpy(), s.stats, program.hist_bins,
                                          wide_compute)
        # Drop what no later series reads: one layer-sized float64 array less at a time.
        for name in [*s.args, s.name]:
            if last_use.get(name, -1) <= index and name in values and \
                    name not in program.narrow and name not in program.wide:
                del values[name]
    return out


def values_at(program: Program, inputs: Mapping[str, torch.Tensor], index: int,
              names: Sequence[str]) -> dict[str, float]:
    """The named series at one element (flat index in (B, S, C) order), by the same
    definitions: the torch engine's operations on that single element."""
    one = {name: element(inputs[name], index) for name in (*program.narrow, *program.wide)}
    narrow_inputs = {name: one[name] for name in program.narrow}
    values: dict[str, torch.Tensor] = {name: metrics.upcast(t) for name, t in
                                       narrow_inputs.items()}
    values.update({name: one[name].to(torch.float64) for name in program.wide})
    wanted = set(names)
    out: dict[str, float] = {}
    for s in program.series:
        values[s.name] = _torch_op(s, values, narrow_inputs, {})
        if s.name in wanted:
            out[s.name] = float(values[s.name][0])
            if len(out) == len(wanted):
                break
    return out


# --- the numba engine ---------------------------------------------------------------------

PARALLEL_MIN_ELEMENTS = 1 << 18  # smaller taps run on one thread
TASK_SIZE = 16384  # elements per parallel task: a subtree of numpy's pairwise summation
FULL_COLLECT = 65536  # up to this many elements every value is a quantile candidate
SAMPLE_BLOCKS, SAMPLE_BLOCK = 1024, 64  # the sample that places the brackets
BRACKET_SIGMAS = 5.0  # half-width of a bracket in standard deviations of the sample rank


@functools.lru_cache(maxsize=64)
def _tasks(n: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Split [0, n) like numpy's pairwise summation until pieces are <= TASK_SIZE.

    Returns the pieces' starts and lengths and the tree (nested tuples of piece indices)
    that combines their sums in numpy's order.
    """
    starts: list[int] = []
    lengths: list[int] = []

    def split(start: int, length: int):
        if length <= TASK_SIZE:
            starts.append(start)
            lengths.append(length)
            return len(starts) - 1
        half = length // 2
        half -= half % 8
        return (split(start, half), split(start + half, length - half))

    tree = split(0, n)
    return np.array(starts, dtype=np.int64), np.array(lengths, dtype=np.int64), tree


def _combine(tree, sums: np.ndarray) -> np.ndarray:
    if isinstance(tree, int):
        return sums[tree]
    return _combine(tree[0], sums) + _combine(tree[1], sums)


@functools.lru_cache(maxsize=64)
def _sample_ranges(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed pseudo-random blocks (the same for every run, so a run is reproducible in
    time as well as in value; the values never depend on the sample)."""
    n_blocks = n // SAMPLE_BLOCK
    picked = np.sort(np.random.default_rng(20100).choice(n_blocks, size=min(
        SAMPLE_BLOCKS, n_blocks), replace=False))
    return (picked * SAMPLE_BLOCK).astype(np.int64), np.full(picked.size, SAMPLE_BLOCK,
                                                              dtype=np.int64)


@functools.lru_cache(maxsize=32)
def _compiled(program: Program) -> dict:
    """The program as the kernel's integer/float arrays."""
    # Rows of the kernel's scratch matrix: the (padded) narrow inputs, the (padded) wide
    # inputs, then one per series.
    narrow_slots, wide_slots = _slots(program)
    rows = {name: i for i, name in enumerate(program.narrow)}
    for i, name in enumerate(program.wide):
        rows[name] = narrow_slots + i
    base = narrow_slots + wide_slots
    n = len(program.series)
    ops = np.full((n, 4), -1, dtype=np.int64)
    params = np.zeros((n, 2))
    flags = np.zeros(n, dtype=np.int64)
    hist_slot = np.full(n, -1, dtype=np.int64)
    key_slot = np.full(n, -1, dtype=np.int64)
    n_hist = n_keys = 0
    quantile_series = []
    for s_index, s in enumerate(program.series):
        ops[s_index, 0] = OPS.index(s.op)
        for j, a in enumerate(s.args):
            ops[s_index, 1 + j] = rows[a]
        for j, p in enumerate(s.params):
            params[s_index, j] = p
        if s.stats:
            flags[s_index] |= 1
        if "mean" in s.stats:
            flags[s_index] |= 2
        if "rms" in s.stats:
            flags[s_index] |= 4
        if "hist" in s.stats:
            flags[s_index] |= 8
            hist_slot[s_index] = n_hist
            n_hist += 1
        if "argmax" in s.stats:
            flags[s_index] |= 16
        if any(q in s.stats for q in QUANTILES):
            key_slot[s_index] = n_keys
            n_keys += 1
            quantile_series.append(s_index)
        rows[s.name] = base + s_index
    return {"ops": ops, "params": params, "flags": flags, "hist_slot": hist_slot,
            "key_slot": key_slot, "n_keys": n_keys, "n_hist": n_hist,
            "quantile_series": tuple(quantile_series)}


_MAGNITUDE_MASKS = {torch.float32: 0x7FFFFFFF, torch.float16: 0x7FFF, torch.bfloat16: 0x7FFF,
                    torch.float64: 0x7FFFFFFFFFFFFFFF}
_BITS_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16,
              torch.bfloat16: torch.int16, torch.float64: torch.int64}
# Fixed tuple lengths and two value types (float32 values with int32 bits, float64 with
# int64) keep the compiled kernel variants to two per kernel; a program with more inputs
# simply gets its own variant.
NARROW_SLOTS, WIDE_SLOTS = 3, 7


def _slots(program: Program) -> tuple[int, int]:
    return max(len(program.narrow), NARROW_SLOTS), max(len(program.wide), WIDE_SLOTS)


def _kernel_inputs(program: Program, inputs: Mapping[str, torch.Tensor]):
    flats = [_flat(inputs[name]) for name in program.narrow]
    dtype = flats[0].dtype
    if any(f.dtype != dtype for f in flats):
        raise ValueError(f"compute-dtype inputs differ in dtype: {[f.dtype for f in flats]}")
    value_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    bits_dtype = torch.int64 if dtype == torch.float64 else torch.int32
    narrow = [f.to(value_dtype).numpy() for f in flats]
    # float16/bfloat16 bit patterns widened to int32 (sign-extended: the sign test and the
    # magnitude mask work the same); float32/float64 bits are plain views.
    bits = [f.view(_BITS_VIEW[dtype]).to(bits_dtype).numpy() for f in flats]
    wide = [_flat(inputs[name]).to(torch.float64).numpy() for name in program.wide]
    value_np = narrow[0].dtype
    narrow_slots, wide_slots = _slots(program)
    while len(narrow) < narrow_slots:
        narrow.append(np.empty(0, dtype=value_np))
        bits.append(np.empty(0, dtype=bits[0].dtype))
    while len(wide) < wide_slots:
        wide.append(np.empty(0))
    return tuple(narrow), tuple(bits), tuple(wide), dtype, int(flats[0].numel())


def _brackets(kernels, compiled: dict, args, n: int):
    """(series, lo key, hi key) per wanted quantile and the per-task candidate capacity."""
    quantile_series = compiled["quantile_series"]
    series_stats = compiled["stats"]
    task_start, task_len, _ = _tasks(n)
    if not quantile_series:
        return (np.zeros(0, dtype=np.int64),) * 3 + (1,)
    if n <= FULL_COLLECT:
        # Every value is a candidate: one bracket per series, without ends.
        q_series = np.array(quantile_series, dtype=np.int64)
        lo = np.full(q_series.size, -1, dtype=np.int64)
        hi = np.full(q_series.size, kernels.NO_UPPER, dtype=np.int64)
        return q_series, lo, hi, int(task_len.max())
    starts, lengths = _sample_ranges(n)
    sample = kernels.materialize(*args, compiled["ops"], compiled["params"],
                                 np.array(quantile_series, dtype=np.int64), starts, lengths)
    q_series, lo, hi, widest = [], [], [], 0.0
    for row, s_index in enumerate(quantile_series):
        values = sample[row]
        values = values[~np.isnan(values)]
        m = values.size
        wanted = [QUANTILES[q] for q in ("median", "p99") if q in series_stats[s_index]]
        if m < 2:
            q_series.append(s_index)
            lo.append(-1)
            hi.append(kernels.NO_UPPER)
            widest = 1.0
            continue
        keys = values.view(np.int64) & kernels.MAGNITUDE
        ends = []
        for q in wanted:
            position = q * (m - 1)
            half_width = BRACKET_SIGMAS * math.sqrt(m * q * (1 - q)) + 2
            ends.append((math.floor(position - half_width), math.ceil(position + half_width)))
        kth = sorted({k for pair in ends for k in pair if 0 <= k < m})
        ordered = np.partition(keys, kth) if kth else keys
        for low_rank, high_rank in ends:
            q_series.append(s_index)
            lo.append(int(ordered[low_rank]) if low_rank >= 0 else -1)
            hi.append(int(ordered[high_rank]) if high_rank < m else kernels.NO_UPPER)
            widest = max(widest, (min(high_rank, m) - max(low_rank, -1)) / m)
    cap = int(math.ceil(int(task_len.max()) * min(1.0, 2.0 * widest))) + 64
    return (np.array(q_series, dtype=np.int64), np.array(lo, dtype=np.int64),
            np.array(hi, dtype=np.int64), cap)


def evaluate_numba(program: Program, inputs: Mapping[str, torch.Tensor]
                   ) -> dict[str, SeriesStats]:
    """The fused pass (explorer.kernels); same numbers as evaluate_torch."""
    return _evaluate_numba(_load_kernels(), program, inputs)


def _evaluate_numba(kernels, program: Program, inputs: Mapping[str, torch.Tensor]
                    ) -> dict[str, SeriesStats]:
    compiled = dict(_compiled(program))
    compiled["stats"] = [s.stats for s in program.series]
    narrow, bits, wide, dtype, n = _kernel_inputs(program, inputs)
    args = (narrow, bits, wide)
    wide_compute = dtype == torch.float64
    # The ULP op needs the dtype's magnitude mask.
    ops = compiled["ops"].copy()
    for s_index, s in enumerate(program.series):
        if s.op == "ulp":
            ops[s_index, 3] = _MAGNITUDE_MASKS[dtype]
    compiled["ops"] = ops
    task_start, task_len, tree = _tasks(n)
    with _KERNEL_LOCK:
        _set_threads(n)
        bq_series, bq_lo, bq_hi, cap = _brackets(kernels, compiled, args, n)
        maxkey, argmax, sums, hist, bq_counts, cand = kernels.fused_pass(
            narrow, bits, wide, ops, compiled["params"], compiled["flags"],
            compiled["hist_slot"], compiled["key_slot"], compiled["n_keys"], task_start,
            task_len, program.hist_bins, compiled["n_hist"], bq_series, bq_lo, bq_hi, cap)
    n_series = len(program.series)
    total_max = maxkey.max(axis=0)
    total_sums = _combine(tree, sums)
    total_hist = hist.sum(axis=(0, 2))
    counts = bq_counts.sum(axis=0)  # (Q, 4)

    def values_of(s_index: int) -> np.ndarray:
        """The whole series, for the exact path (a missed bracket, inf or NaN)."""
        with _KERNEL_LOCK:
            _set_threads(n)
            return kernels.materialize(narrow, bits, wide, ops, compiled["params"],
                                       np.array([s_index], dtype=np.int64), task_start,
                                       task_len)[0]

    out: dict[str, SeriesStats] = {}
    for s_index, s in enumerate(program.series):
        if not s.stats:
            continue
        if total_max[s_index] >= kernels.INF_KEY:
            # inf or NaN somewhere: the numbers of the torch engine, from the whole series.
            out[s.name] = _stats_of_array(values_of(s_index), s.stats, program.hist_bins,
                                          wide_compute)
            continue
        largest = float(np.int64(total_max[s_index]).view(np.float64))
        mean = float(total_sums[s_index]) / n if "mean" in s.stats else math.nan
        rms = math.nan
        if "rms" in s.stats:
            if wide_compute:  # float64 squares may need scaling: see metrics.rms
                rms = metrics.rms(torch.from_numpy(values_of(s_index)), wide=True)
            else:
                rms = math.sqrt(float(total_sums[n_series + s_index]) / n)
        histogram = tuple(int(c) for c in total_hist[compiled["hist_slot"][s_index]]) \
            if "hist" in s.stats else ()
        wanted = {name: QUANTILES[name] for name in ("median", "p99") if name in s.stats}
        quantiles = _quantiles_from_brackets(
            wanted, n, [q for q in range(bq_series.size) if bq_series[q] == s_index],
            counts, bq_lo, bq_hi, bq_counts, cand, cap, kernels,
            lambda s_index=s_index: values_of(s_index)) if wanted else {}
        first = None
        if "argmax" in s.stats:  # tasks run in order: the first task holding the maximum
            holders = np.nonzero(maxkey[:, s_index] == total_max[s_index])[0]
            first = int(argmax[holders[0], s_index])
        out[s.name] = SeriesStats(largest, mean, rms, quantiles.get("median", math.nan),
                                  quantiles.get("p99", math.nan), n, 0, 0, histogram, first)
    return out


def _quantiles_from_brackets(wanted: dict[str, float], count: int, brackets: list[int],
                             counts, bq_lo, bq_hi, bq_counts, cand, cap, kernels, full
                             ) -> dict[str, float]:
    """Median/p99 (``wanted``: name -> q) from the brackets of one series.

    Each order statistic is found in a bracket whose counts cover its rank: equal to the
    bracket's lower or upper end, or selected among the copied-out values strictly inside
    (one partition per bracket for all ranks in it). A rank no bracket covers completely
    (outside every bracket, or inside one whose copies overflowed) is selected among all
    values, computed in full.
    """
    ranks = sorted({r for q in wanted.values() for r in
                    (math.floor(q * (count - 1)), math.ceil(q * (count - 1)))})
    found: dict[int, float] = {}
    inside_ranks: dict[int, list[int]] = {}
    for rank in ranks:
        for b in brackets:
            below, at_lo, inside, at_hi = (int(c) for c in counts[b])
            if bq_lo[b] == bq_hi[b]:
                at_hi = 0  # the kernel counted the values equal to both ends twice
            if rank < below or rank >= below + at_lo + inside + at_hi:
                continue
            if rank < below + at_lo:
                found[rank] = float(np.int64(bq_lo[b]).view(np.float64))
            elif rank >= below + at_lo + inside:
                found[rank] = float(np.int64(bq_hi[b]).view(np.float64))
            elif int(bq_counts[:, b, 2].max()) <= cap:  # every task kept all its copies
                inside_ranks.setdefault(b, []).append(rank)
            else:
                continue
            break
    for b, in_bracket in inside_ranks.items():
        below, at_lo = int(counts[b][0]), int(counts[b][1])
        keys = kernels.gather_candidates(cand[b], bq_counts[:, b, 2], cap).view(np.int64)
        local = [rank - below - at_lo for rank in in_bracket]
        ordered = np.partition(keys, local)
        for rank, j in zip(in_bracket, local):
            found[rank] = float(ordered[j].view(np.float64))
    missing = [rank for rank in ranks if rank not in found]
    if missing:  # no bracket holds these ranks: select among all values
        values = full()
        keys = values[~np.isnan(values)].view(np.int64) & kernels.MAGNITUDE
        ordered = np.partition(keys, missing)
        for rank in missing:
            found[rank] = float(ordered[rank].view(np.float64))
    return {name: _interpolate(q, count, found.__getitem__) for name, q in wanted.items()}


# --- engine choice and loading ----------------------------------------------------------------

ENGINE_ENV = "EXPLORER_METRICS_ENGINE"
ENGINE_CHOICES = ("auto", "numba", "torch")
# A run with at least this many tap elements (summed over taps) repays loading the kernels
# (about a second from numba's cache) before it starts.
AUTO_LOAD_ELEMENTS = 4_000_000

_KERNEL_LOCK = threading.Lock()  # numba's workqueue layer is not thread-safe; 2 cores anyway
_LOAD_LOCK = threading.Lock()
_state: dict[str, object] = {"kernels": None, "error": None, "loading": False}


def _set_threads(n: int) -> None:
    """The run's thread count (torch's, which torch_state set), or one thread for a small
    tap: starting the other threads costs more than they save, and on a busy machine a
    parallel step waits for the slowest thread to be scheduled."""
    import numba

    threads = torch.get_num_threads() if n >= PARALLEL_MIN_ELEMENTS else 1
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def numba_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        return False


def load_kernels():
    """Import explorer.kernels and compile (or load from numba's cache) the float32
    variants; raises ImportError when numba is missing. Later runs take the numba engine
    (unless EXPLORER_METRICS_ENGINE=torch)."""
    return _load_kernels()


def _load_kernels():
    with _LOAD_LOCK:
        if _state["kernels"] is not None:
            return _state["kernels"]
        from explorer import kernels

        _warm(kernels)
        _state["kernels"] = kernels
        return kernels


def _warm(kernels) -> None:
    """Run every kernel once on float32 tensors (the common case), so the first real run
    pays no compilation; float64 compiles (or loads from numba's cache) at first use."""
    a = torch.linspace(-1, 1, 2 * FULL_COLLECT).reshape(1, -1, 8)
    b = a * 1.5
    program = tap_program("float32", reference="float64", local=True, gamma=1e-6)
    inputs = {"a": a, "b": b, "reference": a.double(), "local_b": b,
              "magnitude_sum": a.double().abs()}
    # Larger than FULL_COLLECT, so the sample and the bracket kernels compile too.
    _evaluate_numba(kernels, program, inputs)


def start_background_load(delay: float = 0.0) -> None:
    """Load the kernels in a daemon thread (a server calls this at start); runs meanwhile
    use the torch engine. Does nothing without numba, when loaded or already loading, or
    when EXPLORER_METRICS_ENGINE=torch. ``delay`` seconds first: numba's compiler is Python
    and holds the GIL while it works, so a server lets its first page render before."""
    with _LOAD_LOCK:
        if _state["kernels"] is not None or _state["loading"] or not numba_available():
            return
        try:
            if engine_setting() == "torch":
                return
        except ValueError:
            return  # the run itself reports the bad setting
        _state["loading"] = True

    def load() -> None:
        try:
            if delay > 0:
                time.sleep(delay)
            _load_kernels()
        except Exception as err:  # noqa: BLE001 - recorded; the fallback keeps working
            _state["error"] = f"{type(err).__name__}: {err}"
        finally:
            _state["loading"] = False

    threading.Thread(target=load, name="explorer-kernels", daemon=True).start()


def engine_setting() -> str:
    text = os.environ.get(ENGINE_ENV, "").strip().lower() or "auto"
    if text not in ENGINE_CHOICES:
        raise ValueError(f"environment variable {ENGINE_ENV}={text!r} is not one of "
                         f"{', '.join(ENGINE_CHOICES)}. Unset it (auto) or pick one.")
    return text


def choose_engine(tap_elements: int) -> str:
    """'numba' or 'torch' for a run whose taps hold ``tap_elements`` elements in all: the
    engine likely_engine names, loading the kernels when that engine needs them."""
    setting = engine_setting()  # a bad setting raises: the run reports it
    engine = likely_engine(tap_elements)
    if engine == "numba" and _state["kernels"] is None:
        if setting == "numba":
            _load_kernels()  # raises ImportError when numba is missing: asked for, so say so
            return "numba"
        try:
            _load_kernels()
        except Exception as err:  # noqa: BLE001 - recorded; the fallback gives the numbers
            _state["error"] = f"{type(err).__name__}: {err}"
            return "torch"
    return engine


def kernels_loaded() -> bool:
    return _state["kernels"] is not None


def likely_engine(tap_elements: int) -> str:
    """The engine choose_engine would pick now, without loading anything: what the memory
    estimate prices (limits.MEMORY_MODELS). A bad setting counts as the torch fallback."""
    try:
        setting = engine_setting()
    except ValueError:
        return "torch"
    if setting == "torch":
        return "torch"
    if _state["kernels"] is not None or setting == "numba":
        return "numba"
    if tap_elements >= AUTO_LOAD_ELEMENTS and not _state["loading"] and numba_available():
        return "numba"
    return "torch"


def engine_note() -> str:
    """Why the engine in use is the one it is (the report's environment, next to it)."""
    try:
        setting = engine_setting()
    except ValueError:
        setting = "invalid"
    if setting == "torch":
        return f"torch forced by {ENGINE_ENV}=torch"
    if _state["kernels"] is not None:
        return "numba kernels loaded"
    if _state["error"]:
        return f"numba unavailable ({_state['error']})"
    if not numba_available():
        return "numba is not installed"
    return ("numba loading (runs meanwhile take torch)" if _state["loading"] else
            f"numba not loaded: runs under {AUTO_LOAD_ELEMENTS:,} tap elements take torch "
            f"until something loads it")


def evaluate(program: Program, inputs: Mapping[str, torch.Tensor], engine: str
             ) -> dict[str, SeriesStats]:
    if engine == "numba":
        return evaluate_numba(program, inputs)
    if engine == "torch":
        return evaluate_torch(program, inputs)
    raise ValueError(f"engine={engine!r}: use numba or torch")
