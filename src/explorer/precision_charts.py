"""Figures for hidden precision: each side against the exact result, run beside run.

No Streamlit. Same conventions as explorer.charts (log y, zeros drawn hollow on a floor,
hover with the exact value); one colour per run here, since the runs are what differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import plotly.graph_objects as go

from explorer.charts import TEMPLATE
from explorer.effective import BITS_NAME
from explorer.report import Report

RUN_COLORS = ("#1f6fb4", "#e8710a", "#2ca02c", "#6a3d9a")
FONT_SIZE = 15
HEIGHT = 420


def side_bound_figure(runs: Mapping[str, Report], side: str) -> go.Figure:
    """Per affine layer, one side's max |X(x) - exact(x)| / worst-case bound, one line per
    run; the hover carries the layer's effective bits and the probabilistic ratio."""
    fig = go.Figure()
    values = [getattr(t, f"{side}_bound_ratio") for r in runs.values() for t in r.taps
              if t.stage == "pre"]
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    floor = 10.0 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-6
    layers: list[str] = []
    for n, (label, report) in enumerate(runs.items()):
        pre = [t for t in report.taps if t.stage == "pre"]
        xs, ys, hover, symbols = [], [], [], []
        for t in pre:
            ratio = getattr(t, f"{side}_bound_ratio")
            bits = getattr(t, f"{side}_effective_bits")
            typical = getattr(t, f"{side}_prob_bound_ratio")
            xs.append(f"L{t.layer}")
            bits_text = f"{bits} bits ({BITS_NAME[bits]})" if bits else "no format fits"
            if ratio is None:
                ys.append(None)
                symbols.append("circle")
                hover.append(f"{label}, layer {t.layer}: unknown ({t.bound_note or 'no referee'})")
                continue
            ys.append(ratio if ratio > 0 else floor)
            symbols.append("circle" if ratio > 0 else "circle-open")
            hover.append(f"{label}, layer {t.layer} (fan-in {t.fan_in})<br>"
                         f"max error / worst-case bound = {ratio:.4g}<br>"
                         f"max error / probabilistic bound = "
                         f"{typical:.4g}<br>behaves as: {bits_text}" if typical is not None
                         else f"{label}, layer {t.layer}: {ratio:.4g}; {bits_text}")
        layers = layers or xs
        color = RUN_COLORS[n % len(RUN_COLORS)]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=label, mode="lines+markers", hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            line={"color": color, "width": 3},
            marker={"color": color, "size": 10, "symbol": symbols,
                    "line": {"color": color, "width": 2}}))
    if layers:
        fig.add_trace(go.Scatter(
            x=[layers[0], layers[-1]], y=[1, 1], mode="lines", name="worst-case bound",
            line={"color": "#b22222", "dash": "dot", "width": 2},
            hovertext=["1: the worst-case rounding bound of the compute dtype"] * 2,
            hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_layout(
        template=TEMPLATE, height=HEIGHT, font={"size": FONT_SIZE},
        title={"text": f"Side {side.upper()} against the exact result for its own input",
               "x": 0.01, "subtitle": {"text": "max error / worst-case float bound, per "
                                               "layer; above 1: fewer bits than the dtype",
                                       "font": {"size": 12, "color": "#555"}}},
        margin={"l": 70, "r": 20, "t": 90, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0})
    fig.update_yaxes(type="log", title_text="share of the bound", exponentformat="power",
                     dtick=1)
    fig.update_xaxes(title_text="affine layer")
    return fig
