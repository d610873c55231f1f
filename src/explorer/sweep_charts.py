"""Plotly figures from a SweepResult: a heatmap and a line per row. No Streamlit.

Same conventions as explorer.charts: log scales where values span decades; a value of
exactly 0 (bit-identical) cannot sit on a log scale, so it is drawn at a floor below the
smallest positive value and its hover says "0 (identical)"; invalid, failed and not-run
cells are blank on the map and their hover says why; nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.charts import decade_axis, fmt
from explorer.sweep import BASE_LABEL, INVALID, NONFINITE, NOT_RUN, SweepResult, cell_label

FONT_SIZE = 15
# Cells whose run overflowed (inf/NaN) have no value: a colour outside the scale marks them.
NONFINITE_COLOR = "#b22222"
HEIGHT = 460
# Colour per row of the line chart (Plotly's qualitative "D3" set, A blue first).
ROW_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf")


def _floor(values: np.ndarray) -> float:
    """Where zeros are drawn: a decade below the smallest positive finite value."""
    positive = values[np.isfinite(values) & (values > 0)]
    return float(positive.min()) / 10 if positive.size else 1e-12


def _cell_hover(value: float, verdict: str, message: str) -> str:
    if verdict == INVALID:
        return f"invalid: {message}"
    if verdict == NOT_RUN:
        return "not run (sweep cancelled)"
    if verdict == NONFINITE:
        return f"no value: {message}" if message else "no value: inf/NaN"
    if math.isnan(value):
        return f"n/a ({verdict}): {message}" if message else f"n/a ({verdict})"
    text = "0 (identical)" if value == 0 else fmt(value)
    return f"{text} [{verdict}]"


def _matrix(result: SweepResult) -> tuple[np.ndarray, list[list[str]], list[str], list[str]]:
    """values (rows = y, columns = x), hover text, x labels, y labels."""
    x_labels = list(result.x.labels)
    y_labels = list(result.y.labels) if result.y else [BASE_LABEL]
    values = np.full((len(y_labels), len(x_labels)), np.nan)
    hover = [["" for _ in x_labels] for _ in y_labels]
    for row in result.frame.itertuples():
        values[row.y_index, row.x_index] = row.value
        hover[row.y_index][row.x_index] = _cell_hover(row.value, row.verdict, row.message)
    return values, hover, x_labels, y_labels


def _nonfinite_labels(result: SweepResult) -> dict[tuple[int, int], str]:
    """(y, x) -> "overflow" or "NaN" for the cells whose run went non-finite."""
    return {(r.y_index, r.x_index): cell_label(r.verdict, r.message)
            for r in result.frame.itertuples() if r.verdict == NONFINITE}


def heatmap_figure(result: SweepResult) -> go.Figure:
    """The metric over the grid, colour on a log10 scale (zeros at a floor, marked)."""
    values, hover, x_labels, y_labels = _matrix(result)
    floor = _floor(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.where(values == 0, floor, values)
        z = np.where(np.isfinite(shown) & (shown > 0), np.log10(shown), np.nan)
    inf_cells = np.isinf(values)
    if inf_cells.any():  # overflow: draw at the top of the scale; the hover says inf
        top = np.nanmax(z) if np.isfinite(z).any() else 0.0
        z = np.where(inf_cells, top, z)
    text = [[("0" if v == 0 else fmt(v, 2)) if np.isfinite(v) or np.isinf(v) else ""
             for v in row] for row in values]
    broken = _nonfinite_labels(result)
    hovertemplate = (f"{result.x.name} %{{x}}<br>{result.y.name if result.y else ''} "
                     f"%{{y}}<br>{result.metric}: %{{customdata}}<extra></extra>")
    # The colour scale spans whole decades: values that differ by a few percent (all
    # labelled 0.12) get nearly one colour, not the scale's two ends.
    finite = z[np.isfinite(z)]
    span = ({"zmin": math.floor(finite.min()), "zmax": max(math.ceil(finite.max()),
                                                          math.floor(finite.min()) + 1)}
            if finite.size else {})
    fig = go.Figure(go.Heatmap(
        z=z, x=x_labels, y=y_labels, text=text, customdata=hover, colorscale="Viridis",
        texttemplate="%{text}" if values.size <= 144 else None,
        hovertemplate=hovertemplate, colorbar=_log_colorbar(z), xgap=1, ygap=1, **span))
    if broken:
        # Overflowed cells: their own trace in one colour outside the scale, labelled.
        mark = np.full(values.shape, np.nan)
        labels = [["" for _ in x_labels] for _ in y_labels]
        for (j, i), label in broken.items():
            mark[j, i] = 1.0
            labels[j][i] = label
        fig.add_trace(go.Heatmap(
            z=mark, x=x_labels, y=y_labels, text=labels, customdata=hover,
            colorscale=[[0, NONFINITE_COLOR], [1, NONFINITE_COLOR]], showscale=False,
            texttemplate="%{text}", hovertemplate=hovertemplate, xgap=1, ygap=1,
            name="overflow / NaN"))
    fig.update_layout(
        title=f"{result.metric} by {result.x.name}"
              f"{' and ' + result.y.name if result.y else ''} (colour: log scale)",
        xaxis_title=result.x.name, yaxis_title=result.y.name if result.y else "",
        height=max(HEIGHT, 60 + 28 * len(y_labels)), font={"size": FONT_SIZE},
        margin={"l": 10, "r": 10, "t": 60, "b": 10})
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", autorange="reversed")
    _notes(fig, values, floor, len(broken))
    return fig


def _log_colorbar(z: np.ndarray) -> dict:
    """Ticks at whole decades, labelled as values (0.001, 1e-05), not as exponents."""
    finite = z[np.isfinite(z)]
    if not finite.size:
        return {"title": {"text": "value"}}
    low = math.floor(finite.min())
    high = max(math.ceil(finite.max()), low + 1)  # as the heatmap's colour span
    step = max(1, (high - low) // 8)
    ticks = list(range(low, high + 1, step))
    return {"title": {"text": "value"}, "tickvals": ticks,
            "ticktext": [f"{10.0 ** k:g}" for k in ticks]}


def lines_figure(result: SweepResult) -> go.Figure:
    """One line per y value: the metric against x (numeric axes keep their spacing)."""
    values, hover, x_labels, y_labels = _matrix(result)
    floor = _floor(values)
    numeric = result.x.numeric
    xs = [p.number for p in result.x.points] if numeric else x_labels
    fig = go.Figure()
    for j, label in enumerate(y_labels):
        row = values[j]
        shown = [floor if v == 0 else (v if np.isfinite(v) else None) for v in row]
        symbols = ["circle-open" if v == 0 else "circle" for v in row]
        fig.add_trace(go.Scatter(
            x=xs, y=shown, name=label, mode="lines+markers", customdata=hover[j],
            marker={"symbol": symbols, "size": 8, "color": ROW_COLORS[j % len(ROW_COLORS)]},
            line={"color": ROW_COLORS[j % len(ROW_COLORS)]}, connectgaps=False,
            hovertemplate=f"{label}<br>{result.x.name} %{{x}}<br>{result.metric}: "
                          f"%{{customdata}}<extra></extra>"))
    positive = values[np.isfinite(values) & (values > 0)]
    log_y = positive.size > 0
    fig.update_layout(
        title=f"{result.metric} against {result.x.name}, one line per "
              f"{result.y.name if result.y else 'sweep'}",
        xaxis_title=result.x.name, yaxis_title=result.metric, height=HEIGHT,
        font={"size": FONT_SIZE}, legend_title_text=result.y.name if result.y else "",
        margin={"l": 10, "r": 10, "t": 60, "b": 10})
    if log_y:  # labelled at whole decades only
        fig.update_yaxes(type="log", exponentformat="power",
                         **decade_axis([v for trace in fig.data for v in trace.y]))
    if numeric:
        fig.update_xaxes(type="log" if result.x.log_scale else "linear",
                         exponentformat="power",
                         **(decade_axis(xs) if result.x.log_scale else _whole_ticks(xs)))
    else:
        fig.update_xaxes(type="category")
    _notes(fig, values, floor, len(_nonfinite_labels(result)))
    return fig


def _whole_ticks(xs: Sequence[float]) -> dict:
    """Depths, thread counts and rows per call are whole numbers: tick at the swept values
    (no "depth 1.5"), unless there are too many to label."""
    if xs and len(xs) <= 20 and all(float(x).is_integer() for x in xs):
        return {"tickvals": list(xs), "ticktext": [str(int(x)) for x in xs]}
    return {}


def _notes(fig: go.Figure, values: np.ndarray, floor: float, nonfinite: int = 0) -> None:
    notes = []
    if nonfinite:
        notes.append(f"{nonfinite} cell(s) overflowed (inf/NaN): no value, shown in red")
    zeros = int((values == 0).sum())
    if zeros:
        notes.append(f"{zeros} cell(s) are exactly 0 (identical), drawn at {fmt(floor, 2)}")
    infinite = int(np.isinf(values).sum())
    if infinite:
        notes.append(f"{infinite} cell(s) are inf (overflow)")
    blank = int(np.isnan(values).sum()) - nonfinite
    if blank:
        notes.append(f"{blank} cell(s) have no value (invalid or n/a; hover for why)")
    if notes:
        fig.add_annotation(text="; ".join(notes), xref="paper", yref="paper", x=0, y=0,
                           yshift=-75, yanchor="top", showarrow=False, xanchor="left",
                           font={"size": FONT_SIZE - 3})
        fig.update_layout(margin={"b": 100})
