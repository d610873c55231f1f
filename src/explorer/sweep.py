"""Sweeps: one metric as a map over two settings ("for which settings does this matter?").

A sweep starts from a base ExperimentConfig, varies up to two axes, runs one full comparison
(``compare.run``) per cell and keeps one Summary metric per cell. Cells are independent and
cached by their (frozen, hashable) config, so changing only the metric, or re-running an
overlapping grid, costs nothing.

Axis syntax (CLI ``--x``/``--y``, the sweep page, ``parse_axis``): ``NAME=VALUES``

    init-constant=1e-4:10:9          9 log-spaced points from 1e-4 to 10 (START:STOP:COUNT)
    init-constant=0.001,0.1,1        an explicit list
    depth=1:8                        every whole number from 1 to 8 (START:STOP[:STEP])
    depth=1,2,4,8                    an explicit list
    activation=elu,sigmoid,tanh      any of the activations ("all" for every one)
    dtype=float32,float16            compute dtypes ("all" for every one)
    impls=linear/conv2d,linear/conv1d   implementation pairs A/B ("all" for every pair)
    emulate-b=none,tf32,bf16         operand rounding of B only
    emulate-a=none,tf32              operand rounding of A only
    emulate-both=none,tf32,bf16      the same rounding on both sides
    rows-per-call-b=1:64:x2,whole    B in calls of 1, 2, 4, ..., 64 rows, then the whole
                                     batch (A:B[:STEP] steps linearly; 0 = whole)
    rows-per-call-a=1,8,whole        the same for A
    threads-a=1,2 / threads-b=1:4    each side's thread count (0 or default = the run's)

Names accept ``-`` or ``_`` (``init_constant``). A cell whose config is not valid (say
``emulate-b=tf32`` with ``dtype=float16``: emulation rounds float32 operands) is kept as an
"invalid" cell carrying the config's own message, not an error for the whole sweep.

Metrics (``METRICS``) are Summary fields of the report; see ``METRICS`` for one line each.
A grid holds at most ``MAX_CELLS`` cells, and the cells still to compute at most
``EXPLORER_MAX_SWEEP_SECONDS`` estimated CPU seconds (default 120; see limits.TimeModel).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from explorer.config import (
    ACTIVATIONS,
    DTYPES,
    EAGER_IMPLEMENTATIONS,
    EMULATIONS,
    IMPLEMENTATIONS,
    MAX_DEPTH,
    MAX_INIT_CONSTANT,
    MAX_ROWS,
    MAX_THREADS,
    MIN_INIT_CONSTANT,
    ExperimentConfig,
)

if TYPE_CHECKING:  # pandas is imported only where a DataFrame is made
    import pandas as pd

MAX_CELLS = 400
MAX_AXIS_POINTS = 50
MAX_SPEC_LENGTH = 500

# Summary fields a sweep can map, with what they mean. All are >= 0 (log colour scales).
METRICS: dict[str, str] = {
    "max_rel_diff": "largest |A-B| / max(|A|,|B|) over every tap (relative difference)",
    "max_abs_diff": "largest |A-B| over every tap (absolute difference)",
    "max_ulp_diff": "largest distance between A and B in units in the last place, any tap",
    "max_bits": "largest log2(1 + ULP difference): bits of error, any tap",
    "max_bound_ratio": "largest local |A-B| / (2 x worst-case rounding bound) over the "
                       "affine layers; above 1 = not explained by rounding in the dtype",
    "logits_max_abs_diff": "largest |A-B| at the logits",
    "logits_max_rel_diff": "largest relative difference at the logits",
    "a_logits_max_rel_err_vs_ref": "A's largest relative error at the logits against the "
                                   "higher-precision reference",
    "b_logits_max_rel_err_vs_ref": "B's largest relative error at the logits against the "
                                   "higher-precision reference",
    "max_condition": "largest condition number (|W||x|+|b|)/|Wx+b| over the affine layers: "
                     "how strongly terms cancel",
    "argmax_flips": "rows whose predicted class (argmax of the logits) differs between A "
                    "and B",
    "argmax_margin_ratio": "smallest top-1 margin of A's logits / that row's largest |A-B|, "
                           "over rows that differ; above 2 no prediction can change",
}

# Verdict codes a cell can have besides the report's own (identical, rounding, ...).
INVALID = "invalid"  # the cell's config was refused; `message` says why
FAILED = "failed"  # the run itself raised (e.g. an operation missing for a dtype)
NOT_RUN = "not_run"  # the sweep was cancelled before this cell
NONFINITE = "nonfinite"  # the report's own verdict: inf/NaN, so the cell has no value

FRAME_COLUMNS = ("x_axis", "x", "x_index", "y_axis", "y", "y_index", "metric", "value",
                 "verdict", "message", "seconds", "cached")


# ---------------------------------------------------------------------------------------
# Axes

@dataclass(frozen=True)
class AxisPoint:
    label: str  # what a person reads: "1e-04", "elu", "linear/conv2d"
    changes: tuple[tuple[str, Any], ...]  # config fields this point sets
    number: float | None = None  # position on a numeric axis (init constant, depth)


@dataclass(frozen=True)
class Axis:
    name: str  # canonical: "init-constant"
    spec: str  # the text it was parsed from, canonical name first
    points: tuple[AxisPoint, ...]
    numeric: bool  # points have numbers (plot on a numeric, maybe log, axis)
    log_scale: bool

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.points)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for p in self.points for name, _ in p.changes)


# name -> (fields set, one-line help)
AXES: dict[str, tuple[tuple[str, ...], str]] = {
    "activation": (("activation",), "activation list, e.g. activation=elu,sigmoid,tanh"),
    "init-constant": (("init_constant",), "log grid START:STOP:COUNT (1e-4:10:9) or a list"),
    "depth": (("depth",), "whole-number range START:STOP[:STEP] (1:8) or a list"),
    "dtype": (("dtype",), "compute dtypes, e.g. dtype=float32,float16"),
    "impls": (("impl_a", "impl_b"), "A/B pairs, e.g. impls=linear/conv2d,linear/conv1d"),
    "emulate-a": (("emulate_a",), "A's operand rounding, e.g. emulate-a=none,tf32"),
    "emulate-b": (("emulate_b",), "B's operand rounding, e.g. emulate-b=none,tf32,bf16"),
    "emulate-both": (("emulate_a", "emulate_b"), "the same rounding on both sides"),
    "rows-per-call-a": (("rows_per_call_a",), "A's rows per kernel call: list or range, "
                        "e.g. 1:64:x2,whole (doubling) or 1,8,whole"),
    "rows-per-call-b": (("rows_per_call_b",), "B's rows per kernel call: list or range, "
                        "e.g. 1:64:x2,whole (doubling) or 1,8,whole"),
    "threads-a": (("threads_a",), "A's CPU threads, e.g. threads-a=1,2 (default = the run's)"),
    "threads-b": (("threads_b",), "B's CPU threads, e.g. threads-b=1,2 (default = the run's)"),
}
# impls=all pairs the eager implementations: a compiled one is named explicitly
# (impls=linear/linear_compiled), since its first run of each shape compiles for seconds.



def _axis_error(spec: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"axis {spec!r}: {problem}. {fix}")


def _split_list(spec: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        axis = AXES.get(spec.split("=", 1)[0].strip())
        takes = f" This axis takes: {axis[1]}." if axis else ""
        raise _axis_error(spec, "empty value in the list",
                          f"Separate values with single commas.{takes}")
    if len(set(items)) != len(items):
        dup = next(item for item in items if items.count(item) > 1)
        raise _axis_error(spec, f"{dup!r} appears twice", "List each value once.")
    return items


def _choices(spec: str, text: str, allowed: Sequence[str]) -> list[str]:
    if text.strip() == "all":
        return list(allowed)
    items = _split_list(spec, text)
    for item in items:
        if item not in allowed:
            raise _axis_error(spec, f"{item!r} is not one of {', '.join(allowed)}",
                              "Pick values from that list.")
    return items


def _number(spec: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _axis_error(spec, f"{text!r} is not a number",
                          f"Write the {what} like 1e-4 or 0.5.") from None
    if not math.isfinite(value):
        raise _axis_error(spec, f"{text!r} is not finite", f"Use a finite {what}.")
    return value


def _whole(spec: str, text: str, what: str, span: tuple[int, int] | None = None) -> int:
    """``span``: the values the axis allows, said when the text is not a number at all."""
    try:
        return int(text.strip())
    except ValueError:
        allowed = f"from {span[0]} to {span[1]}" if span else "like 1 or 8"
        raise _axis_error(spec, f"{text!r} is not a whole number",
                          f"Write the {what} as a whole number {allowed}.") from None


def _log_points(spec: str, text: str) -> list[float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise _axis_error(spec, "a range needs START:STOP:COUNT",
                          "For example init-constant=1e-4:10:9 (9 log-spaced points).")
    start, stop = _number(spec, parts[0], "start"), _number(spec, parts[1], "stop")
    count = _whole(spec, parts[2], "count", (2, MAX_AXIS_POINTS))
    if start <= 0 or stop <= 0:
        raise _axis_error(spec, "a log range needs positive START and STOP",
                          "Use e.g. 1e-4:10:9, or list negative constants explicitly.")
    if not 2 <= count <= MAX_AXIS_POINTS:
        raise _axis_error(spec, f"COUNT={count} must be from 2 to {MAX_AXIS_POINTS}",
                          "Use fewer points.")
    lo, hi = math.log10(start), math.log10(stop)
    values = [10 ** (lo + (hi - lo) * i / (count - 1)) for i in range(count)]
    # The ends exactly as written (10**log10(x) can be off by an ulp).
    values[0], values[-1] = start, stop
    return values


def _int_points(spec: str, text: str, low: int, high: int) -> list[int]:
    """Whole numbers from a list or START:STOP[:STEP], all within low..high.

    Bounds and the number of points are checked on the three numbers before any list is
    built, so depth=1:99999999999 costs nothing but a message.
    """
    within = f"Keep values within {low}..{high}, e.g. {low}:{min(high, low + 7)}."
    if ":" not in text:
        items = _split_list(spec, text)
        if len(items) > MAX_AXIS_POINTS:
            raise _axis_error(spec, f"{len(items)} values, at most {MAX_AXIS_POINTS}",
                              "List fewer values.")
        values = [_whole(spec, item, "value", (low, high)) for item in items]
        for value in values:
            if not low <= value <= high:
                raise _axis_error(spec, f"{value} is outside {low}..{high}", within)
        return values
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise _axis_error(spec, "a range needs START:STOP or START:STOP:STEP",
                          "For example depth=1:8 or depth=1:16:3.")
    start = _whole(spec, parts[0], "start", (low, high))
    stop = _whole(spec, parts[1], "stop", (low, high))
    step = _whole(spec, parts[2], "step") if len(parts) == 3 else 1
    if step < 1:
        raise _axis_error(spec, f"STEP={step} must be at least 1", "Use e.g. depth=1:8:2.")
    for what, value in (("START", start), ("STOP", stop)):
        if not low <= value <= high:
            raise _axis_error(spec, f"{what}={_short_int(value)} is outside {low}..{high}",
                              within)
    if stop < start:
        raise _axis_error(spec, f"STOP={stop} is below START={start}",
                          "Write the smaller number first, e.g. depth=1:8.")
    count = (stop - start) // step + 1
    if count > MAX_AXIS_POINTS:
        raise _axis_error(spec, f"{count} points, at most {MAX_AXIS_POINTS}",
                          "Use a shorter range or a larger STEP.")
    return list(range(start, stop + 1, step))


def _short_int(value: int) -> str:
    """A whole number for a message: long ones shortened (a URL can carry 400 digits)."""
    text = str(value)
    return text if len(text) <= 20 else f"{text[:8]}...({len(text)} digits)"


def _distinct(spec: str, values: Sequence[float]) -> None:
    if len(set(values)) != len(values):
        dup = next(v for v in values if list(values).count(v) > 1)
        raise _axis_error(spec, f"{dup:g} appears twice", "List each value once.")


def parse_axis(text: str) -> Axis:
    """``NAME=VALUES`` -> Axis; ValueError says what is wrong and how to write it."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"axis {text!r}: expected NAME=VALUES, e.g. init-constant=1e-4:10:9. "
                         f"Names: {', '.join(AXES)}.")
    if len(text) > MAX_SPEC_LENGTH:
        raise ValueError(f"axis {text[:40]!r}...: longer than {MAX_SPEC_LENGTH} characters. "
                         "Use a range instead of a long list.")
    raw_name, values = (part.strip() for part in text.split("=", 1))
    name = raw_name.lower().replace("_", "-")
    if name == "init":
        name = "init-constant"
    if name not in AXES:
        raise ValueError(f"axis {text!r}: unknown axis {raw_name!r}. Choose one of "
                         f"{', '.join(AXES)}.")
    spec = f"{name}={values}"
    numeric = log_scale = False
    points: list[AxisPoint]
    if name == "init-constant":
        numbers = (_log_points(spec, values) if ":" in values
                   else [_number(spec, item, "constant") for item in _split_list(spec, values)])
        for value in numbers:
            if not MIN_INIT_CONSTANT <= abs(value) <= MAX_INIT_CONSTANT:
                raise _axis_error(spec, f"{value:g} is outside {MIN_INIT_CONSTANT:g}.."
                                  f"{MAX_INIT_CONSTANT:g} in magnitude",
                                  "Keep the constants within that range.")
        _distinct(spec, numbers)
        digits = 3  # enough digits that no two labels coincide (1e-4:1.001e-4:3)
        while len({f"{v:.{digits}g}" for v in numbers}) < len(numbers) and digits < 17:
            digits += 1
        points = [AxisPoint(f"{v:.{digits}g}", (("init_constant", float(v)),), float(v))
                  for v in numbers]
        numeric, log_scale = True, all(v > 0 for v in numbers)
    elif name == "depth":
        depths = _int_points(spec, values, 1, MAX_DEPTH)
        _distinct(spec, depths)
        points = [AxisPoint(str(d), (("depth", d),), float(d)) for d in depths]
        numeric = True
    elif name == "activation":
        points = [AxisPoint(a, (("activation", a),)) for a in _choices(spec, values,
                                                                        ACTIVATIONS)]
    elif name == "dtype":
        points = [AxisPoint(d, (("dtype", d),)) for d in _choices(spec, values, DTYPES)]
    elif name == "impls":
        points = [AxisPoint(f"{a}/{b}", (("impl_a", a), ("impl_b", b)))
                  for a, b in _impl_pairs(spec, values)]
    elif name in ("rows-per-call-a", "rows-per-call-b"):
        field = AXES[name][0][0]
        points = [AxisPoint(WHOLE if n == 0 else str(n), ((field, n),))
                  for n in _rows_points(spec, values)]
    elif name in ("threads-a", "threads-b"):
        field = AXES[name][0][0]
        counts = _int_points(spec, values.replace("default", "0"), 0, MAX_THREADS)
        _distinct(spec, counts)
        points = [AxisPoint("default" if n == 0 else str(n), ((field, n),)) for n in counts]
    else:
        fields = AXES[name][0]
        points = [AxisPoint(e, tuple((f, e) for f in fields))
                  for e in _choices(spec, values, EMULATIONS)]
    if len(points) > MAX_AXIS_POINTS:
        raise _axis_error(spec, f"{len(points)} points, at most {MAX_AXIS_POINTS}",
                          "Use fewer values or a larger step.")
    return Axis(name, spec, tuple(points), numeric, log_scale)


WHOLE = "whole"  # rows per call: the whole batch in one call (0)


def _rows_points(spec: str, text: str) -> list[int]:
    """Rows per call from items: N, 'whole' (0), A:B[:STEP] or A:B:xF (multiply by F).

    Every range is checked and counted from its own numbers, and the total against
    MAX_AXIS_POINTS, before any list is built.
    """
    within = f"Keep rows per call within 1..{MAX_ROWS}, e.g. 1:64:x2,whole."
    items = _split_list(spec, text)
    if len(items) > MAX_AXIS_POINTS:
        raise _axis_error(spec, f"{len(items)} values, at most {MAX_AXIS_POINTS}",
                          "List fewer values.")
    plans: list[tuple[int, int, int, bool]] = []  # (start, stop, step or factor, geometric)
    total = 0
    for item in items:
        if item in (WHOLE, "0"):
            plans.append((0, 0, 1, False))
            total += 1
            continue
        parts = item.split(":")
        if len(parts) > 3:
            raise _axis_error(spec, f"{item!r} is not N, whole, A:B, A:B:STEP or A:B:xF",
                              "For example 1:64:x2,whole.")
        start = _whole(spec, parts[0], "start" if len(parts) > 1 else "value",
                       (1, MAX_ROWS))
        stop = _whole(spec, parts[1], "stop", (1, MAX_ROWS)) if len(parts) > 1 else start
        for what, value in (("value" if len(parts) == 1 else "START", start),
                            ("STOP", stop)):
            if not 1 <= value <= MAX_ROWS:
                raise _axis_error(spec, f"{what}={_short_int(value)} is outside "
                                  f"1..{MAX_ROWS}", within)
        if stop < start:
            raise _axis_error(spec, f"STOP={stop} is below START={start}",
                              "Write the smaller number first, e.g. 1:64:x2.")
        geometric = len(parts) == 3 and parts[2].strip().lower().startswith("x")
        step = 1
        if len(parts) == 3:
            step = _whole(spec, parts[2].strip()[1:] if geometric else parts[2], "step")
            if step < (2 if geometric else 1):
                raise _axis_error(spec, f"{parts[2]!r}: a step must be at least 1 and a "
                                  "factor at least x2", "Use e.g. 1:64:x2 or 8:64:8.")
        if geometric:
            count, value = 1, start
            while value * step <= stop:  # at most log2(MAX_ROWS) turns
                value, count = value * step, count + 1
        else:
            count = (stop - start) // step + 1
        total += count
        if total > MAX_AXIS_POINTS:
            raise _axis_error(spec, f"{total} points or more, at most {MAX_AXIS_POINTS}",
                              "Use shorter ranges, a larger step or a factor like x2.")
        plans.append((start, stop, step, geometric))
    values: list[int] = []
    for start, stop, step, geometric in plans:
        if geometric:
            value = start
            while value <= stop:
                values.append(value)
                value *= step
        else:
            values.extend(range(start, stop + 1, step))
    _distinct(spec, values)
    return values


def _impl_pairs(spec: str, text: str) -> list[tuple[str, str]]:
    if text.strip() == "all":
        return [(a, b) for i, a in enumerate(EAGER_IMPLEMENTATIONS)
                for b in EAGER_IMPLEMENTATIONS[i + 1:]]
    pairs = []
    for item in _split_list(spec, text):
        parts = item.split("/")
        if len(parts) != 2:
            raise _axis_error(spec, f"{item!r} is not a pair A/B",
                              "Write pairs like linear/conv2d.")
        for impl in parts:
            if impl not in IMPLEMENTATIONS:
                raise _axis_error(spec, f"{impl!r} is not one of {', '.join(IMPLEMENTATIONS)}",
                                  "Write pairs like linear/conv2d.")
        pairs.append((parts[0], parts[1]))
    return pairs


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not available: choose one of "
                         f"{', '.join(METRICS)}.")
    return metric


# ---------------------------------------------------------------------------------------
# Cells and their cache

@dataclass(frozen=True)
class CellOutcome:
    """What a sweep keeps of one run: every metric (so switching metric is free)."""

    values: tuple[tuple[str, float | None], ...]
    verdict: str
    seconds: float
    note: str = ""  # for a cell without values: why (e.g. "overflow to inf at layer 3 (pre)")

    def value(self, metric: str) -> float | None:
        return dict(self.values)[metric]


def cache_key(config: ExperimentConfig) -> tuple[ExperimentConfig, int]:
    """What decides a cell's numbers: the config, and the thread count it computes with
    (threads=0 means the process default; the CPU ISA and torch build are fixed for the
    process's life, and so is the cache)."""
    from explorer.precision import threads_in_effect

    return config, threads_in_effect(config.threads)


class _CellCache:
    """A small thread-safe LRU of CellOutcome keyed by ``cache_key``."""

    def __init__(self, capacity: int = 2048):
        self.capacity = capacity
        self._items: OrderedDict[tuple[ExperimentConfig, int], CellOutcome] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, config: ExperimentConfig) -> CellOutcome | None:
        key = cache_key(config)
        with self._lock:
            outcome = self._items.get(key)
            if outcome is not None:
                self._items.move_to_end(key)
            return outcome

    def put(self, config: ExperimentConfig, outcome: CellOutcome) -> None:
        key = cache_key(config)
        with self._lock:
            self._items[key] = outcome
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __contains__(self, config: ExperimentConfig) -> bool:
        key = cache_key(config)
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


CACHE = _CellCache()


def run_cell(config: ExperimentConfig, run: Runner | None = None
             ) -> tuple[CellOutcome, bool]:
    """One comparison, reduced to the sweep metrics; (outcome, came from the cache).

    ``run`` computes a report (default compare.run; the app passes one that waits for its
    turn on a shared server and stops when the browser has gone).
    """
    cached = CACHE.get(config)
    if cached is not None:
        return cached, True
    if run is None:
        from explorer.compare import run

    report = run(config)
    s = report.summary
    if report.verdict.code == NONFINITE:
        # Past an overflow the maxima are inf, or 0 where both sides overflowed alike: no
        # number describes such a cell, so it has none, and says what happened instead.
        values = tuple((name, None) for name in METRICS)
        first = report.tap(s.first_nonfinite_layer, s.first_nonfinite_stage)
        infinite = any(math.isinf(v) for v in (first.max_abs_value, first.b_max_abs_value))
        where = f"layer {s.first_nonfinite_layer} ({s.first_nonfinite_stage})"
        note = f"overflow to inf at {where}" if infinite else f"NaN from {where}"
    else:
        values = tuple((name, getattr(s, name)) for name in METRICS)
        note = ""
    outcome = CellOutcome(values, report.verdict.code, report.elapsed_seconds, note)
    CACHE.put(config, outcome)
    return outcome, False


# ---------------------------------------------------------------------------------------
# The grid

@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    elapsed: float  # seconds since the sweep started
    remaining: float  # estimated seconds left (mean time of computed cells x cells to go)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def describe(self) -> str:
        return (f"{self.done}/{self.total} cells, {self.elapsed:.1f} s elapsed, "
                f"about {self.remaining:.1f} s left")


@dataclass(frozen=True)
class SweepResult:
    # One dict per cell with the keys FRAME_COLUMNS, y-major; ``frame`` is the same as a
    # DataFrame, made on first use (pandas takes a while to import, and a terminal table
    # or JSON does not need it).
    rows: tuple[dict[str, Any], ...] = dataclasses.field(compare=False)
    x: Axis
    y: Axis | None
    metric: str
    base: ExperimentConfig
    done: int
    total: int
    elapsed: float
    cancelled: bool
    message: str  # one line: what ran, what was skipped or cancelled

    @functools.cached_property
    def frame(self) -> "pd.DataFrame":
        """Tidy: one row per cell, the columns FRAME_COLUMNS."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(FRAME_COLUMNS))

    def grid(self) -> "pd.DataFrame":
        """The metric as a table: rows = y labels, columns = x labels (NaN where missing)."""
        table = self.frame.pivot(index="y_index", columns="x_index", values="value")
        table.index = [self.frame.loc[self.frame.y_index == i, "y"].iloc[0]
                       for i in table.index]
        table.columns = [self.frame.loc[self.frame.x_index == i, "x"].iloc[0]
                         for i in table.columns]
        return table


BASE_LABEL = "base"


def cell_configs(base: ExperimentConfig, x: Axis, y: Axis | None
                 ) -> list[tuple[int, int, ExperimentConfig | None, str]]:
    """Every cell as (x_index, y_index, config or None, message), y-major order."""
    y_points = y.points if y is not None else (AxisPoint(BASE_LABEL, ()),)
    cells = []
    for j, yp in enumerate(y_points):
        for i, xp in enumerate(x.points):
            changes = dict(yp.changes) | dict(xp.changes)
            if "depth" in changes and base.widths:
                changes["widths"] = ()  # explicit widths belong to the base's depth
            try:
                cells.append((i, j, base.replace(**changes), ""))
            except ValueError as err:
                cells.append((i, j, None, str(err)))
    return cells


def check_work(cells: Sequence[tuple[int, int, ExperimentConfig | None, str]]) -> None:
    """Refuse a sweep whose uncached cells would take more than the sweep budget.

    The budget is in estimated CPU seconds (limits.TimeModel: a fixed cost per run and per
    tap, one per activation element, one per operation), so a grid of narrow, deep networks
    is priced by what it really costs and not by its few operations.
    """
    from explorer.limits import estimate, over_budget_figures, setting

    budget = setting("EXPLORER_MAX_SWEEP_SECONDS")
    todo = [c for _, _, c, _ in cells if c is not None and c not in CACHE]
    _check_calls(todo)
    seconds = sum(estimate(c).seconds for c in todo)
    if seconds > budget:
        need, limit = over_budget_figures(seconds, budget, "{:.0f}".format, "{:.2f}".format,
                                          rough_limit="{:g}".format)
        raise ValueError(
            f"this sweep needs about {need} CPU seconds for {len(todo)} cells, over "
            f"the {limit} s sweep budget. Use fewer points or a smaller base network "
            "(rows, widths, depth); a server admin can raise the limit with "
            "EXPLORER_MAX_SWEEP_SECONDS.")


def _check_calls(todo: Sequence[ExperimentConfig]) -> None:
    """Kernel calls of all cells still to compute: rows per call makes one call per chunk,
    each costing microseconds whatever its size."""
    from explorer.limits import kernel_calls, setting

    budget = setting("EXPLORER_MAX_SWEEP_CALLS")
    calls = sum(kernel_calls(c) for c in todo)
    if calls > budget:
        raise ValueError(
            f"this sweep makes about {calls:,} kernel calls for {len(todo)} cells, over the "
            f"{budget:,.0f} sweep budget (small rows per call on many rows). Use larger rows "
            "per call, fewer points or fewer rows; a server admin can raise the limit with "
            "EXPLORER_MAX_SWEEP_CALLS.")


def check_axes(x: Axis, y: Axis | None) -> None:
    if y is None:
        cells = len(x.points)
    else:
        overlap = x.fields & y.fields
        if overlap:
            raise ValueError(f"the x axis ({x.name}) and the y axis ({y.name}) both set "
                             f"{', '.join(sorted(overlap))}. Choose two different settings.")
        cells = len(x.points) * len(y.points)
    if cells > MAX_CELLS:
        raise ValueError(f"the grid has {cells} cells ({len(x.points)} x "
                         f"{len(y.points) if y else 1}), more than the {MAX_CELLS} allowed. "
                         "Use fewer points on an axis.")


ProgressCallback = Callable[[Progress], "bool | None"]
Runner = Callable[[ExperimentConfig], Any]  # config -> Report


def sweep(base: ExperimentConfig, x: Axis | str, y: Axis | str | None = None,
          metric: str = "max_rel_diff", *, progress: ProgressCallback | None = None,
          cancel: threading.Event | None = None, cached_only: bool = False,
          run: Runner | None = None) -> SweepResult:
    """Run every cell of the grid; ``progress`` is called after each cell.

    Cancel by returning False from ``progress``, by setting ``cancel``, or by a ``run``
    that raises compare.Cancelled: the cells done so far are kept, the rest are marked
    "not_run", and the result says it was cancelled. ``run`` computes one cell's report
    (default compare.run). ``cached_only``: compute nothing; cells already in the cache are
    filled and the others are "not_run" (what a cancelled sweep had finished, without
    running it again).
    """
    from explorer.compare import Cancelled

    x = parse_axis(x) if isinstance(x, str) else x
    y = parse_axis(y) if isinstance(y, str) else y
    check_metric(metric)
    check_axes(x, y)
    cells = cell_configs(base, x, y)
    if not cached_only:
        check_work(cells)
    total = len(cells)
    to_compute = sum(1 for _, _, config, _ in cells if config is not None and config not in CACHE)
    started = time.perf_counter()
    computed_seconds = 0.0
    computed = 0
    rows: list[dict[str, Any]] = []
    cancelled = False
    y_axis = y.name if y else ""
    y_labels = y.labels if y else (BASE_LABEL,)

    def row(i: int, j: int, value: float, verdict: str, message: str, seconds: float,
            cached: bool) -> dict[str, Any]:
        return {"x_axis": x.name, "x": x.labels[i], "x_index": i, "y_axis": y_axis,
                "y": y_labels[j], "y_index": j, "metric": metric, "value": value,
                "verdict": verdict, "message": message, "seconds": seconds, "cached": cached}

    for n, (i, j, config, message) in enumerate(cells):
        if (cancelled and not cached_only) or (cancel is not None and cancel.is_set()):
            cancelled = True
            rows.append(row(i, j, math.nan, NOT_RUN, "not run: the sweep was cancelled",
                            0.0, False))
            continue
        if config is None:
            rows.append(row(i, j, math.nan, INVALID, message, 0.0, False))
        elif cached_only and config not in CACHE:
            cancelled = True  # only this cell: the cached ones after it are still filled
            rows.append(row(i, j, math.nan, NOT_RUN, "not run: the sweep was cancelled",
                            0.0, False))
        else:
            cell_started = time.perf_counter()
            try:
                outcome, cached = run_cell(config, run)
            except Cancelled:
                cancelled = True
                rows.append(row(i, j, math.nan, NOT_RUN, "not run: the sweep was cancelled",
                                0.0, False))
                continue
            except ValueError as err:  # e.g. a device that is not there
                rows.append(row(i, j, math.nan, INVALID, str(err), 0.0, False))
            except RuntimeError as err:  # e.g. an operation torch lacks for a dtype
                rows.append(row(i, j, math.nan, FAILED, f"the run failed: {err}", 0.0, False))
            else:
                value = outcome.value(metric)
                note = outcome.note or (
                    "" if value is not None else f"{metric} is not available for this cell")
                rows.append(row(i, j, math.nan if value is None else float(value),
                                outcome.verdict, note, outcome.seconds, cached))
                if not cached:
                    computed += 1
                    computed_seconds += time.perf_counter() - cell_started
        done = n + 1
        if progress is not None:
            left = max(to_compute - computed, 0)
            per_cell = computed_seconds / computed if computed else 0.0
            report = Progress(done, total, time.perf_counter() - started, per_cell * left)
            if progress(report) is False:
                cancelled = done < total
    elapsed = time.perf_counter() - started
    done = sum(1 for r in rows if r["verdict"] != NOT_RUN)
    invalid = sum(1 for r in rows if r["verdict"] == INVALID)
    # Cells from the cache take no time here: say so, with what their runs took.
    from_cache = [r for r in rows if r["cached"]]
    timing = f"{elapsed:.1f} s"
    if from_cache:
        runs = sum(r["seconds"] for r in from_cache)
        timing += (f"; {'all' if len(from_cache) == done else len(from_cache)} from the "
                   f"cache, whose runs took {runs:.1f} s")
    message = (f"cancelled after {done} of {total} cells ({timing})" if cancelled
               else f"{total} cells in {timing}")
    if invalid:
        message += f"; {invalid} invalid (see their messages)"
    return SweepResult(tuple(rows), x, y, metric, base, done, total, elapsed, cancelled,
                       message)


def result_to_dict(result: SweepResult) -> dict[str, Any]:
    """Strict-JSON-ready (non-finite floats as strings, via report.jsonable)."""
    from explorer.report import jsonable

    records = [dict(r) for r in result.rows]
    return jsonable({
        "x_axis": result.x.spec,
        "y_axis": result.y.spec if result.y else None,
        "metric": result.metric,
        "metric_meaning": METRICS[result.metric],
        "base_config": result.base.to_dict(),
        "done": result.done,
        "total": result.total,
        "cancelled": result.cancelled,
        "elapsed_seconds": result.elapsed,
        "message": result.message,
        "cells": [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                  for r in records],
    })


def axis_help() -> str:
    return "; ".join(f"{name}: {help_}" for name, (_, help_) in AXES.items())


def cell_label(verdict: str, message: str) -> str | None:
    """The word a cell without a number shows; None for a cell that has one."""
    if verdict == NONFINITE:
        return "overflow" if message.startswith("overflow") else "NaN"
    return {INVALID: "invalid", NOT_RUN: "-", FAILED: "failed"}.get(verdict)


def _cell_text(value: float, verdict: str, message: str = "") -> str:
    if verdict == NONFINITE:
        return cell_label(verdict, message)
    if verdict == INVALID:
        return "invalid"
    if verdict == NOT_RUN:
        return "-"
    if verdict == FAILED:
        return "failed"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return "0" if value == 0 else f"{value:.3g}"


def format_table(result: SweepResult) -> str:
    """The grid for a terminal: y down, x across, then the messages of odd cells."""
    x_labels = result.x.labels
    y_labels = result.y.labels if result.y else (BASE_LABEL,)
    cells = {(r["x_index"], r["y_index"]): _cell_text(r["value"], r["verdict"], r["message"])
             for r in result.rows}
    corner = f"{result.y.name if result.y else ''} \\ {result.x.name}"
    rows = [(corner, *x_labels)]
    for j, y_label in enumerate(y_labels):
        rows.append((y_label, *(cells[(i, j)] for i in range(len(x_labels)))))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = [f"{result.metric}: {METRICS[result.metric]}",
             f"base: {describe_base(result.base)}", ""]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    notes = [r for r in result.rows if r["message"] != "" and r["verdict"] != NOT_RUN]
    if notes:
        lines.append("")
        seen: set[str] = set()
        for r in notes:
            if r["message"] not in seen:
                seen.add(r["message"])
                lines.append(f"{r['y']} / {r['x']}: {r['message']}")
    lines += ["", result.message]
    return "\n".join(lines)


def describe_base(config: ExperimentConfig) -> str:
    from explorer.sides import emulation_words, settings_words

    variants = settings_words(config)
    return (f"A={config.impl_a} B={config.impl_b}{' (' + variants + ')' if variants else ''}, "
            f"{config.activation}, init "
            f"{config.init_scheme} {config.init_constant:g}, layers "
            f"{'-'.join(str(n) for n in config.layer_sizes)}, rows {config.rows}, "
            f"{config.dtype}{emulation_words(config)}")

