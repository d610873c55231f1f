"""Plotly figures from a Report: one function per chart, no Streamlit.

Conventions shared by every figure:
- a fixed colour per side: A blue, B orange, the float64 reference grey, A-vs-B
  differences purple. A maximum is a thick line with round markers; a typical value
  (mean, median, p99) a thinner, lighter line with diamonds, drawn on top so it stays
  visible where it meets the maximum. Dashes mean one thing only: a pinned baseline, in
  the same colours; horizontal guides (unit roundoff, the bound) are dotted;
- log y axes wherever values span decades, labelled at whole decades only (no 2, 3, 5
  minor labels). A value of exactly 0 cannot sit on a log axis,
  so it is drawn as a hollow marker on a floor below the smallest positive value, and its
  hover says "0 (identical)"; non-finite values are listed in a note, never dropped
  silently;
- hover shows the exact value with its unit and the tap's width and fan-in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from explorer.precision import UNIT_ROUNDOFF
from explorer.report import Report, TapMetrics

COLORS = {"a": "#1f6fb4", "b": "#e8710a", "ref": "#7f7f7f", "diff": "#6a3d9a",
          "guide": "#b22222"}
# The lighter shade of each colour, for typical values (mean, median, p99).
LIGHT = {COLORS["a"]: "#7fb2e0", COLORS["b"]: "#f4a862", COLORS["ref"]: "#b0b0b0",
         COLORS["diff"]: "#a98bcf"}
# Notes under a title wrap at about this many characters (a chart is ~400 px wide at
# 1280 px with the sidebar open).
NOTE_LINE_CHARS = 60
PINNED_LEGEND = "pinned (dashed)"
# A legend entry gets half a chart's width: at 1280 px about 17 characters show. Which side
# is which implementation is in the settings line and the hover; the colours are A's and B's.
LEGEND_CHARS = 17
SHORT_DTYPES = {"float32": "float32", "float64": "float64", "float16": "fp16",
                "bfloat16": "bf16"}
# plotly_white's look, without its defaults for the trace types these charts never draw:
# assigning the whole template validates and copies ~7 KB of settings per figure, about
# 15 ms each and a third of the CPU a page spends building its six figures.
TEMPLATE = go.layout.Template(
    layout=pio.templates["plotly_white"].layout,
    data={kind: getattr(pio.templates["plotly_white"].data, kind) for kind in ("scatter", "bar")})
STAGES = ("both", "pre", "post")
FLOAT32_U = 2.0**-24
TF32_U = 2.0**-11
# Draw the overflow line when the data come within this factor of it (2^20, about 1e6).
OVERFLOW_LINE_WITHIN = 2.0**20
DTYPE_MAX = {"float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max),
             "float16": float(np.finfo(np.float16).max), "bfloat16": 3.3895313892515355e38}
FONT_SIZE = 15
HEIGHT = 400


@dataclass(frozen=True)
class Series:
    """One line on a chart: a value per tap, with how to label it."""

    name: str
    taps: tuple[TapMetrics, ...]
    values: tuple[float | None, ...]
    color: str
    label: str  # what the value is, for the hover: "max |A-B|"
    unit: Callable[[float], str]  # value -> unit text for the hover
    symbol: str = "circle"  # marker shape; zeros get its "-open" form
    width: int = 3  # line width; markers scale with it
    pinned: bool = False  # a pinned baseline: dashed, translucent
    # A statistic of A against B (or of a bound): meaningless at a tap where either side
    # holds inf/NaN (two equal infinities "differ" by 0), so such taps are not drawn.
    needs_finite: bool = False


class FigureSpec:
    """A figure as plain data: its traces and layout as dicts, made into a go.Figure once,
    by ``figure()``. plotly's incremental calls (add_trace, update_layout, update_yaxes)
    each walk and validate the figure: building the six charts that way cost ~130 ms of
    the GIL per page view, four times one validation of the finished dicts, and a burst of
    visitors queues on exactly that."""

    def __init__(self) -> None:
        self.data: list[dict] = []
        self.layout: dict = {}
        self.xaxis: dict = {}
        self.yaxis: dict = {}
        self.notes: list[str] = []  # the subtitle's parts, in order

    def add(self, trace: dict) -> dict:
        self.data.append(trace)
        return trace

    def figure(self) -> go.Figure:
        layout = {**self.layout, "xaxis": self.xaxis, "yaxis": self.yaxis}
        if self.notes:
            layout["title"] = {**layout.get("title", {}), "subtitle": {
                "text": "<br>".join(_wrap("; ".join(self.notes))),
                "font": {"size": 12, "color": "#555"}}}
        return go.Figure({"data": self.data, "layout": layout})


# ---------------------------------------------------------------------------------------
# Small helpers.


def select_taps(report: Report, stage: str = "both") -> tuple[TapMetrics, ...]:
    """The report's taps in network order, filtered to "pre", "post" or "both"."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: choose one of {', '.join(STAGES)}")
    return tuple(t for t in report.taps if stage == "both" or t.stage == stage)


def tap_order(*reports: Report | None) -> list[str]:
    """Tap names of every report, in network order (L1 pre, L1 post, L2 pre, ...)."""
    taps = {(t.layer, t.stage != "pre", t.name) for r in reports if r is not None
            for t in r.taps}
    return [name for _, _, name in sorted(taps)]


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for people: 3 significant digits, scientific when tiny or huge."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if 1e-2 <= abs(value) < 1e5:
        if value == int(value) or abs(value) >= 10**digits:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{max(digits - 1, 1)}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _exact(value: float) -> str:
    return f"{value:.9g}"


def _u_multiple(value: float) -> str:
    return f"relative: {value / FLOAT32_U:.4g} x float32 u (2^-24)"


def _plain(unit: str) -> Callable[[float], str]:
    return lambda value: unit


def _finite_positive(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v) and v > 0]


def _floor_for(series: Sequence[Series], extra: Sequence[float] = ()) -> float:
    """Where zeros are drawn: a decade below the smallest positive value on the chart."""
    positive = _finite_positive([v for s in series for v in s.values]) + list(extra)
    if not positive:
        return 1e-12
    return 10.0 ** (math.floor(math.log10(min(positive))) - 1)


def _base_layout(fig: FigureSpec, title: str, y_title: str, log_y: bool = True,
                 x_title: str = "") -> None:
    """Shared look; the legend sits below, two entries per row, and the figure grows with it
    so a pinned run's extra entries never cover the axis; the top margin grows with the
    lines of notes under the title."""
    entries = sum(1 for trace in fig.data if trace.get("showlegend") is not False)
    rows = math.ceil(entries / 2)
    # The legend starts below the tick labels, which take two lines ("L3" over "pre").
    bottom = 76 + 26 * rows + (22 if x_title else 0)
    subtitle_lines = len(_wrap("; ".join(fig.notes))) if fig.notes else 0
    top = 58 + 19 * subtitle_lines
    height = HEIGHT + 26 * rows + top - 60
    fig.layout.update(
        template=TEMPLATE, height=height, title={"text": title, "x": 0.01},
        font={"size": FONT_SIZE}, hovermode="closest",
        margin={"l": 70, "r": 20, "t": top, "b": bottom},
        legend={"orientation": "h", "yanchor": "top", "xanchor": "left", "x": 0,
                "y": -(56 + (22 if x_title else 0)) / (height - top - bottom),
                "entrywidth": 0.5, "entrywidthmode": "fraction", "font": {"size": 13},
                # Not "grouped" (the default once a legendgroup exists, i.e. with a pin):
                # it put every entry on its own row, past the room made for the legend.
                "traceorder": "normal"},
    )
    fig.xaxis.update(title={"text": x_title or None, "font": {"size": 13}})
    fig.yaxis.update(title={"text": y_title, "font": {"size": 13}},
                     type="log" if log_y else "linear", exponentformat="power")
    if log_y:
        fig.yaxis.update(decade_axis([v for trace in fig.data for v in trace.get("y") or ()
                                      if isinstance(v, (int, float))]))


def decade_axis(values: Sequence[float | None]) -> dict:
    """Log-axis settings that label whole decades only and show every value.

    The range runs from the decade at or below the smallest positive value to the decade
    at or above the largest (at least one decade apart, so two labels always show), with
    a little room at both ends; beyond about seven decades every 2nd, 3rd, ... is labelled.
    """
    positive = _finite_positive(values)
    if not positive:
        return {}
    low = math.floor(math.log10(min(positive)))
    high = math.ceil(math.log10(max(positive)))
    high = max(high, low + 1)
    step = max(1, math.ceil((high - low) / 7))
    return {"range": [low - 0.15, high + 0.15], "dtick": step, "minor": {"showgrid": False}}


def _wrap(text: str, width: int = NOTE_LINE_CHARS) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _note(fig: FigureSpec, lines: Sequence[str]) -> None:
    """Notes go under the title, where they cannot cover data, wrapped to the chart."""
    fig.notes.extend(lines)


def _add_series(fig: FigureSpec, series: Sequence[Series], log_y: bool = True,
                notes: list[str] | None = None) -> None:
    """Draw each series; zeros on a floor (hollow), non-finite values listed in notes."""
    floor = _floor_for(series)
    notes = notes if notes is not None else []
    nonfinite: dict[str, set[str]] = {}
    any_zero = False
    for s in series:
        ys, hover, symbols = [], [], []
        for tap, value in zip(s.taps, s.values):
            where = f"{tap.name} (width {tap.width}, fan-in {tap.fan_in})"
            prefix = "pinned run, " if s.pinned else ""
            if s.needs_finite and (tap.nonfinite_count or tap.b_nonfinite_count):
                ys.append(None)
                hover.append(f"{prefix}{where}<br>{s.label}: not drawn, A or B holds "
                             f"inf/NaN here ({tap.nonfinite_count} in A, "
                             f"{tap.b_nonfinite_count} in B)")
                symbols.append(s.symbol)
                nonfinite.setdefault(tap.name, set()).add("inf/NaN in A or B")
            elif value is None:
                ys.append(None)
                hover.append(f"{prefix}{where}<br>{s.label}: not applicable")
                symbols.append(s.symbol)
            elif not math.isfinite(value):
                ys.append(None)
                hover.append(f"{prefix}{where}<br>{s.label} = {value}")
                symbols.append(s.symbol)
                nonfinite.setdefault(tap.name, set()).add(str(value))
            elif value == 0 and log_y:
                any_zero = True
                ys.append(floor)
                hover.append(f"{prefix}{where}<br>{s.label} = 0 (identical), drawn at "
                             f"{floor:.0e}")
                symbols.append(s.symbol + "-open")
            else:
                ys.append(value)
                hover.append(f"{prefix}{where}<br>{s.label} = {_exact(value)}"
                             f"<br>{s.unit(value)}")
                symbols.append(s.symbol)
        fig.add(dict(
            type="scatter", x=[t.name for t in s.taps], y=ys, name=s.name,
            mode="lines+markers",
            line={"color": s.color, "dash": "dash" if s.pinned else "solid",
                  "width": 2 if s.pinned else s.width},
            marker={"color": s.color, "size": 3 * s.width, "symbol": symbols,
                    "line": {"color": s.color, "width": 2}},
            opacity=0.55 if s.pinned else 1.0, hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>", connectgaps=False,
            # A pinned run's lines share one legend entry (added below), so the legend
            # does not double and clicking it hides or shows the whole baseline.
            showlegend=not s.pinned, legendgroup="pinned" if s.pinned else None,
        ))
    if any(s.pinned for s in series):
        fig.add(dict(
            type="scatter", x=[None], y=[None], name=PINNED_LEGEND, mode="lines",
            legendgroup="pinned", line={"color": COLORS["ref"], "dash": "dash", "width": 2},
            hoverinfo="skip"))
    if nonfinite:
        kinds = "/".join(sorted(set().union(*nonfinite.values())))
        names = list(nonfinite)
        taps = names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}" \
            if len(names) > 3 else ", ".join(names)
        notes.append(f"{kinds} at {taps}: not drawn")
    if any_zero:
        notes.insert(0, f"hollow markers at {floor:.0e}: exactly 0 (identical)")
    _note(fig, notes)


def _guide(fig: FigureSpec, categories: Sequence[str], y: float, name: str, hover: str,
           color: str = COLORS["guide"], dash: str = "dot") -> None:
    """A horizontal reference line across the chart, in the legend, with its own hover."""
    if not categories:
        return
    fig.add(dict(
        type="scatter", x=[categories[0], categories[-1]], y=[y, y], name=name, mode="lines",
        line={"color": color, "dash": dash, "width": 2}, hovertext=[hover, hover],
        hovertemplate="%{hovertext}<extra></extra>",
    ))


def _with_baseline(build: Callable[[Report, bool], list[Series]], report: Report,
                   baseline: Report | None) -> list[Series]:
    series = build(report, False)
    if baseline is not None:
        series += build(baseline, True)
    return series


def _series(report_taps: Sequence[TapMetrics], pinned: bool, name: str, label: str,
            get: Callable[[TapMetrics], float | None], color: str,
            unit: Callable[[float], str], typical: bool = False, symbol: str = "circle",
            width: int = 3, needs_finite: bool = False) -> Series:
    """One line. ``typical`` (a mean, median or p99 beside a maximum): thinner, lighter,
    diamonds, so where it meets the maximum both stay visible."""
    taps = tuple(report_taps)
    if typical:
        color, symbol, width = LIGHT.get(color, color), "diamond", 2
    return Series(name=("pinned: " if pinned else "") + name, taps=taps,
                  values=tuple(get(t) for t in taps), color=color, label=label, unit=unit,
                  symbol=symbol, width=width, pinned=pinned, needs_finite=needs_finite)


def _categories(fig: FigureSpec, report: Report, baseline: Report | None,
                stage: str) -> list[str]:
    names = [n for n in tap_order(report, baseline)
             if stage == "both" or n.endswith(" " + stage)]
    fig.xaxis.update(type="category", categoryorder="array", categoryarray=names,
                     tickmode="array", tickvals=names, ticktext=tap_tick_labels(names),
                     tickangle=0)
    return names


def tap_tick_labels(names: Sequence[str], most: int = 10) -> list[str]:
    """Tap names on two short lines ("L3" over "pre"), upright: rotated ones ran into the
    legend. With more than 14 taps only layers are named ("L3", at its first tap), and
    past ``most`` layers every 2nd, 3rd, ... (half a chart holds about ten)."""
    if len(names) <= 14:
        return [n.replace(" ", "<br>") for n in names]
    layers = list(dict.fromkeys(n.split(" ")[0] for n in names))
    step = math.ceil(len(layers) / most)
    named = set(layers[::step])
    labels, seen = [], set()
    for n in names:
        layer = n.split(" ")[0]
        labels.append(layer if layer in named and layer not in seen else "")
        seen.add(layer)
    return labels


# ---------------------------------------------------------------------------------------
# The charts.


def abs_diff_figure(report: Report, stage: str = "both", baseline: Report | None = None
                    ) -> go.Figure:
    """max and mean |A - B| per tap (each network fed its own previous layer)."""
    def build(r: Report, pinned: bool) -> list[Series]:
        taps = select_taps(r, stage)
        unit = _plain("absolute, in the activations' units")
        return [
            _series(taps, pinned, "max |A-B|", "max |A-B|", lambda t: t.max_abs_diff,
                    COLORS["diff"], unit, needs_finite=True),
            _series(taps, pinned, "mean |A-B|", "mean |A-B|", lambda t: t.mean_abs_diff,
                    COLORS["diff"], unit, typical=True, needs_finite=True),
        ]

    fig = FigureSpec()
    _categories(fig, report, baseline, stage)
    _add_series(fig, _with_baseline(build, report, baseline))
    _base_layout(fig, "Absolute difference |A - B| by layer", "|A - B| (log scale)")
    return fig.figure()


def rel_diff_figure(report: Report, stage: str = "both", baseline: Report | None = None
                    ) -> go.Figure:
    """max and median |A - B| / max(|A|, |B|), with unit-roundoff guide lines."""
    def build(r: Report, pinned: bool) -> list[Series]:
        taps = select_taps(r, stage)
        return [
            _series(taps, pinned, "max relative", "max |A-B|/max(|A|,|B|)",
                    lambda t: t.max_rel_diff, COLORS["diff"], _u_multiple,
                    needs_finite=True),
            _series(taps, pinned, "median relative", "median |A-B|/max(|A|,|B|)",
                    lambda t: t.median_rel_diff, COLORS["diff"], _u_multiple, typical=True,
                    needs_finite=True),
        ]

    fig = FigureSpec()
    categories = _categories(fig, report, baseline, stage)
    _add_series(fig, _with_baseline(build, report, baseline))
    _guide(fig, categories, FLOAT32_U, "float32 u = 2^-24",
           f"float32 unit roundoff u = 2^-24 = {FLOAT32_U:.4g}: one rounding of a float32")
    # Legend entries get half a chart's width (LEGEND_CHARS); the hover says it in full.
    # float16 rounds like TF32 (both keep 11 significant bits): one line, named for the
    # dtype in use.
    half = report.config.dtype == "float16"
    _guide(fig, categories, TF32_U, "fp16 u = 2^-11" if half else "TF32 u = 2^-11",
           f"{'float16 and ' if half else ''}TF32 unit roundoff = 2^-11 = {TF32_U:.4g}: one "
           f"rounding to an 11-bit significand", color="#2e8b57")
    dtype = report.config.dtype
    if dtype not in ("float32",) and UNIT_ROUNDOFF[dtype] not in (FLOAT32_U, TF32_U):
        u = UNIT_ROUNDOFF[dtype]
        _guide(fig, categories, u, f"{SHORT_DTYPES[dtype]} u = {u:.2g}",
               f"{dtype} unit roundoff = {u:.4g}", color="#555555")
    _base_layout(fig, "Relative difference |A-B| / max(|A|,|B|)",
                        "relative difference (log scale)")
    return fig.figure()


def magnitude_figure(report: Report, stage: str = "both", baseline: Report | None = None
                     ) -> go.Figure:
    """max |A|, max |B| (and the reference's) per tap, with the dtype's overflow line."""
    def build(r: Report, pinned: bool) -> list[Series]:
        taps = select_taps(r, stage)
        cfg = r.config
        unit = _plain(f"absolute, {cfg.dtype}")
        series = [
            _series(taps, pinned, "max |A|", "max |A|",
                    lambda t: t.max_abs_value, COLORS["a"], unit),
            _series(taps, pinned, "max |B|", "max |B|",
                    lambda t: t.b_max_abs_value, COLORS["b"], unit, symbol="diamond",
                    width=2),
        ]
        if any(t.ref_max_abs_value is not None for t in taps):
            series.append(_series(taps, pinned, "max |reference|", "max |float64 reference|",
                                  lambda t: t.ref_max_abs_value, COLORS["ref"],
                                  _plain("absolute, float64"), symbol="x-thin",
                                  width=1))
        return series

    fig = FigureSpec()
    categories = _categories(fig, report, baseline, stage)
    _add_series(fig, _with_baseline(build, report, baseline))
    dtype = report.config.dtype
    top = DTYPE_MAX[dtype]
    largest = max(_finite_positive([v for t in report.taps
                                    for v in (t.max_abs_value, t.b_max_abs_value)]),
                  default=0.0)
    # The overflow line only where it is near the data: drawn at 3.4e38 under values of
    # ~1e8 it would flatten every line to the bottom; then a note gives the headroom.
    if largest == 0 or top / largest > OVERFLOW_LINE_WITHIN:
        headroom = math.log2(top / largest) if largest else math.inf
        _note(fig, [f"{dtype} overflows at {top:.3g}: "
                    + (f"{headroom:.0f} doublings above the largest value here"
                       if math.isfinite(headroom) else "all values are zero")])
    else:
        _guide(fig, categories, top, f"overflow {top:.3g}",
               f"largest finite {dtype} = {top:.6g}: values above overflow to inf")
    _base_layout(fig, "Magnitudes: max |A|, max |B| by layer",
                        "max |value| (log scale)")
    return fig.figure()


def bound_ratio_figure(report: Report, baseline: Report | None = None) -> go.Figure:
    """Per pre tap, shares of the worst-case rounding bound: A vs B fed the same input
    (local |A-B| / (2 bound)), and each side against the exact result for its own input
    (|X - exact| / bound). At or below 1: rounding in the compute dtype explains it. The
    hover adds the probabilistic bound's share (typical rounding) and the effective bits."""
    cfg = report.config

    def build(r: Report, pinned: bool) -> list[Series]:
        taps = select_taps(r, "pre")
        unit = _plain("share of 2 x bound; above 1: not float rounding")
        series = [
            _series(taps, pinned, "A vs B, max", "max local |A-B| / (2 bound)",
                    lambda t: t.bound_ratio, COLORS["diff"], unit),
            _series(taps, pinned, "A vs B, p99", "p99 local |A-B| / (2 bound)",
                    lambda t: t.bound_ratio_p99, COLORS["diff"], unit, typical=True),
        ]
        for side in ("a", "b"):
            def get(t: TapMetrics, side: str = side) -> float | None:
                return getattr(t, f"{side}_bound_ratio")

            def describe(value: float, side: str = side) -> str:
                return ("its own error vs the exact result for its input, as a share of "
                        "the bound; above 1: fewer bits than the dtype")
            series.append(_series(taps, pinned, f"{side.upper()} vs exact",
                                  f"max |{side.upper()} - exact| / bound", get,
                                  COLORS[side], describe, symbol="square", width=2))
        return series

    fig = FigureSpec()
    categories = _categories(fig, report, baseline, "pre")
    _add_series(fig, _with_baseline(build, report, baseline))
    # The hover of each side's points: the same error over the probabilistic bound, and
    # the operand format its statistics point to.
    for trace in fig.data:
        for side in ("a", "b"):
            if trace["name"] == f"{side.upper()} vs exact":
                extra = []
                for t in select_taps(report, "pre"):
                    typical = getattr(t, f"{side}_prob_bound_ratio")
                    bits = getattr(t, f"{side}_effective_bits")
                    name = getattr(t, f"{side}_effective_format")
                    extra.append(
                        (f"<br>over the probabilistic bound (typical rounding): "
                         f"{typical:.3g}" if typical is not None else "")
                        + (f"<br>behaves as {bits} bits ({name})" if bits else ""))
                trace["hovertext"] = [h + e for h, e in zip(trace["hovertext"], extra)]
    _guide(fig, categories, 1.0, "rounding bound",
           f"ratio 1: the worst case {cfg.dtype} rounding of any summation order")
    _base_layout(fig, "Share of the rounding bound used, per layer",
                        "share of the worst-case bound (log)")
    return fig.figure()


def reference_error_figure(report: Report, stage: str = "both",
                           baseline: Report | None = None) -> go.Figure:
    """|X - R| / |R| against the higher-precision reference, for A and for B."""
    def build(r: Report, pinned: bool) -> list[Series]:
        taps = select_taps(r, stage)
        unit = _u_multiple
        return [
            _series(taps, pinned, "A max", "A: max |A-R|/|R|",
                    lambda t: t.a_max_rel_err_vs_ref, COLORS["a"], unit),
            _series(taps, pinned, "B max", "B: max |B-R|/|R|",
                    lambda t: t.b_max_rel_err_vs_ref, COLORS["b"], unit),
            _series(taps, pinned, "A median", "A: median |A-R|/|R|",
                    lambda t: t.a_median_rel_err_vs_ref, COLORS["a"], unit, typical=True),
            _series(taps, pinned, "B median", "B: median |B-R|/|R|",
                    lambda t: t.b_median_rel_err_vs_ref, COLORS["b"], unit, typical=True),
        ]

    fig = FigureSpec()
    categories = _categories(fig, report, baseline, stage)
    notes: list[str] = []
    referee = report.environment.get("referee", "reference")
    if all(t.a_max_rel_err_vs_ref is None for t in report.taps):
        notes.append(f"No reference: {report.environment.get('referee_note', 'unavailable')}")
    _add_series(fig, _with_baseline(build, report, baseline), notes=notes)
    u = UNIT_ROUNDOFF[report.config.dtype]
    _guide(fig, categories, u, f"{SHORT_DTYPES[report.config.dtype]} u = {u:.2g}",
           f"{report.config.dtype} unit roundoff u = {u:.4g}")
    _base_layout(fig, f"Error against the {referee} reference: A and B",
                        "|X - R| / |R| (log scale)")
    return fig.figure()


def bits_histogram_figure(report: Report, layer: int, stage: str,
                          baseline: Report | None = None) -> go.Figure:
    """How many elements of one tap differ by 0, 1, 2, ... bits (log2(1 + ULPs)).

    Counts span decades, so the y axis is logarithmic and starts at 0.5: a bin holding a
    single element is still a visible bar. The x axis stops a little after the last
    non-empty bin (of either run); the note says where the dtype's bits end.
    """
    tap = report.tap(layer, stage)
    counts = list(tap.bits_histogram)
    total = sum(counts) or 1
    hover = []
    for k, c in enumerate(counts):
        share = f"{c} of {total} elements ({100 * c / total:.3g}%)"
        what = ("identical (0 ULPs)" if k == 0
                else f"{k} to {k + 1} bits apart ({2**k - 1:g} to {2 ** (k + 1) - 2:g} ULPs)")
        hover.append(f"{tap.name}: {share} {what}")
    fig = FigureSpec()
    fig.add(dict(type="bar", x=list(range(len(counts))), y=[c if c else None for c in counts],
                 base=None, name=f"{tap.name}, this run", marker={"color": COLORS["diff"]},
                 hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    if tap.nonfinite_count or tap.b_nonfinite_count:
        # Equal infinities are 0 ULPs apart and NaN pairs are left out: the bars here do
        # not describe a comparison, so the chart says that before any number.
        notes = [f"not a comparison: {tap.nonfinite_count} of A's and "
                 f"{tap.b_nonfinite_count} of B's elements are inf/NaN here (equal "
                 f"infinities count as 0 bits, NaN is left out); {total} elements counted"]
    else:
        notes = [f"{total} elements, mean {tap.mean_bits:.3g} bits, max {tap.max_bits:.3g}"]
    last_used = max((k for k, c in enumerate(counts) if c), default=0)
    highest = max(last_used, 0)
    if baseline is not None:
        try:
            base_tap = baseline.tap(layer, stage)
        except KeyError:
            notes.append(f"the pinned run has no tap {tap.name}")
        else:
            base_counts = list(base_tap.bits_histogram)
            base_total = sum(base_counts) or 1
            highest = max(highest, max((k for k, c in enumerate(base_counts) if c), default=0))
            fig.add(dict(
                type="scatter", x=list(range(len(base_counts))),
                y=[c if c else None for c in base_counts],
                name=f"pinned: {tap.name}", mode="lines+markers", legendgroup="pinned",
                line={"color": COLORS["diff"], "dash": "dash", "shape": "hvh"}, opacity=0.6,
                hovertext=[f"pinned run, {tap.name}: {c} of {base_total} elements at {k} "
                           f"bits" for k, c in enumerate(base_counts)],
                hovertemplate="%{hovertext}<extra></extra>"))
    bins = len(counts) - 1
    notes.append(f"empty bins not drawn; none above {highest} of {bins} bits"
                 if highest + 1 < bins else "empty bins not drawn")
    _note(fig, notes)
    _base_layout(fig, f"Bits of error at {tap.name}: log2(1 + ULPs)",
                 "elements (log scale)", x_title="bits of error (floor)")
    top = max(counts) if any(counts) else 1
    fig.yaxis.update(range=[math.log10(0.5), math.log10(top) + 0.25], dtick=1)
    right = min(bins, max(highest + 2, 8))
    fig.xaxis.update(dtick=2 if right > 20 else 1, range=[-0.6, right + 0.6])
    return fig.figure()


CHART_TITLES = {
    "abs_diff": "Absolute difference",
    "rel_diff": "Relative difference",
    "magnitude": "Activation magnitudes",
    "bound_ratio": "Share of the rounding bound",
    "reference_error": "Error vs the reference",
    "bits_histogram": "Bits of error",
}


def all_figures(report: Report, stage: str = "both", hist_tap: tuple[int, str] | None = None,
                baseline: Report | None = None) -> dict[str, go.Figure]:
    """Every chart in page order; the histogram is for hist_tap (default: the logits)."""
    last = report.taps[-1]
    layer, hist_stage = hist_tap or (last.layer, last.stage)
    return {
        "abs_diff": abs_diff_figure(report, stage, baseline),
        "rel_diff": rel_diff_figure(report, stage, baseline),
        "magnitude": magnitude_figure(report, stage, baseline),
        "bound_ratio": bound_ratio_figure(report, baseline),
        "reference_error": reference_error_figure(report, stage, baseline),
        "bits_histogram": bits_histogram_figure(report, layer, hist_stage, baseline),
    }
