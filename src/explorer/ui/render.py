"""Rendering helpers shared by the pages: verdict, metric cards, charts, downloads.

Every piece of dynamic text goes through safe_text before it reaches Markdown, and no
call here uses unsafe_allow_html.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import plotly.graph_objects as go
import streamlit as st

from explorer import export, sides
from explorer.charts import fmt
from explorer.config import ExperimentConfig
from explorer.elements import WorstElements
from explorer.precision import UNIT_ROUNDOFF
from explorer.report import Report
from explorer.ui.state import Settings, differences, hist_key, named_list, parse_hist, safe_text

# Benign verdicts in blue, a broken bound in amber, inf/NaN in red.
_VERDICT_BOX = {"identical": st.success, "rounding": st.info, "magnitude": st.info,
                "cancellation": st.info, "reduced_precision": st.warning,
                "nonfinite": st.error}

# Headline cards without a frame: a frame's padding made the row ~30 px taller, enough to
# push the first chart below a projector's fold on a link with a warning.
CARD_BORDER = False

PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"scale": 2}}


def side_label(report: Report, side: str) -> str:
    """'A (linear)', 'B (conv2d, tf32)', 'B (linear, one row per call)'."""
    return sides.side_label(report.config, side, emulation=True)


IMPLEMENTATION_NAMES = sides.IMPLEMENTATION_NAMES


def title(config: ExperimentConfig) -> str:
    """'Why do nn.Linear and a 1x1 Conv2d differ?', 'nn.Linear: whole batch vs one row per
    call', or '... against itself'."""
    return sides.title(config)


def settings_line(config: ExperimentConfig) -> str:
    """Every setting that shapes the numbers, in one line at 1280 px wide."""
    sizes = "-".join(map(str, config.layer_sizes))
    emulation = sides.emulation_words(config)
    init = {"torch_default": "default init",
            "constant": f"init {config.init_constant:g}",
            "constant_zero_bias": f"init {config.init_constant:g}, zero bias",
            "normal": f"init N(0, {config.init_constant:g}^2)"}[config.init_scheme]
    rows = f"{config.batch}x{config.samples} rows" + (
        " of integers" if config.input_distribution == "integers" else "")
    variants = sides.settings_words(config)
    emulation += f", {variants}" if variants else ""
    return (f"A = {config.impl_a} (blue), B = {config.impl_b} (orange){emulation}; "
            f"{config.activation}, {init}, {sizes}, {rows}, seed {config.seed}, "
            f"{config.dtype}, {config.device}.")


def link_warnings(warnings: list[str]) -> None:
    """Every setting a link could not use, in one box (one box per warning would push the
    charts off a projector's first screen): up to three in one paragraph, more as bullets."""
    if not warnings:
        return
    if len(warnings) == 1:
        # One warning can still cover several keys ("9 URL parameters are unknown: ...").
        several = warnings[0][:1].isdigit() or "', '" in warnings[0].split(":")[0]
        heading = "Link settings ignored" if several else "Link setting ignored"
        st.warning(f"{heading}: {safe_text(warnings[0], limit=600)}")
        return
    if len(warnings) <= 3:  # one paragraph: bullets cost a line each, and room above
        st.warning("Link settings ignored: " + " · ".join(safe_text(w, limit=600)
                                                          for w in warnings))
        return
    st.warning("Link settings ignored:\n"
               + "\n".join(f"- {safe_text(w, limit=600)}" for w in warnings))


# About two lines of the settings caption at 1280 px (one line holds ~125 characters).
SETTINGS_CAPTION_CHARS = 220


def settings_caption(slot, config: ExperimentConfig, found: str = "") -> None:
    """The settings line (and what the run found), in at most two lines: a third would push
    the first chart below a projector's fold. Cut at a clause, the whole text in its help."""
    text = f"{settings_line(config)} {found}".strip()
    if len(text) <= SETTINGS_CAPTION_CHARS:
        slot.caption(safe_text(text, limit=900))
        return
    # At the end of a clause, so that no label is left dangling ("threads in effect: …").
    head = text[:SETTINGS_CAPTION_CHARS - 1]
    ends = [head.rfind(mark) for mark in (", ", "; ", ". ")]
    cut = head[:max(ends)] if max(ends) > 0 else head.rsplit(" ", 1)[0]
    slot.caption(safe_text(cut + " …", limit=900), help=safe_text(text, limit=900))


def pin_caption(pinned: ExperimentConfig, shown: ExperimentConfig) -> str:
    """What the dashed baseline is, by how it differs from the settings shown; short, since
    it sits beside the Unpin button (the whole description is in the button's help)."""
    changes = differences(Settings.of(shown), Settings.of(pinned))
    if not changes:
        return "Dashed: pinned, these very settings."
    return f"Dashed: pinned, with {named_list(changes)}."


def pin_description(pinned: Report) -> str:
    """The pinned run in full, for the Unpin button's help."""
    return (f"Remove the dashed baseline. It is: {settings_line(pinned.config)} "
            f"Its verdict: {pinned.verdict.code}.")


def verdict(report: Report) -> None:
    """The verdict in one sentence; its reasons, with numbers, one click away."""
    box = _VERDICT_BOX.get(report.verdict.code, st.info)
    box(f"**{safe_text(report.verdict.headline, limit=600)}**")
    details = report.verdict.details
    label = (f"Why: {len(details)} finding{'s' if len(details) != 1 else ''} with numbers"
             if details else "Details: the forum's printed numbers")
    with st.expander(label):
        if details:
            st.markdown("\n".join(f"- {safe_text(d, limit=600)}" for d in details))
        # Our own text, longer than safe_text's default cut: the numbers must be whole.
        st.caption(safe_text(forum_numbers(report), limit=800))


def _percent_of_bound(ratio: float | None) -> str:
    if ratio is None or math.isnan(ratio):
        return "n/a"
    if ratio > 1:
        return f"{ratio:.3g}x"
    return f"{100 * ratio:.2g}%"


def _delta(value: float | None, base: float | None) -> str | None:
    if value is None or base is None or not math.isfinite(value) or not math.isfinite(base):
        return None
    # Short: the note sits under the value in a card ~125 px wide at 1280.
    if value == base:
        return "= pinned"
    if base == 0:
        return "pinned: 0"  # a ratio to 0 means nothing; the value is above
    return f"x{fmt(value / base, 2)}"  # this run / the pinned run


def metric_cards(report: Report, pinned: Report | None = None) -> None:
    """Five headline numbers; with a pinned run, each says how it compares.

    With inf/NaN in the run the maxima over every tap would read inf, or 0 where both sides
    overflowed alike (equal infinities differ by 0): the cards then show the finite taps'
    statistics, labelled as such, and where the overflow starts.
    """
    s = report.summary
    p = pinned.summary if pinned is not None else None
    u = UNIT_ROUNDOFF[report.config.dtype]
    # Six cards share ~790 px at 1280 wide with the sidebar open: small gaps, short labels.
    cols = st.columns([1, 1, 1, 1, 1, 1.2], gap="xsmall")
    decision_card(cols[5], report)
    broken = bool(s.nonfinite_a or s.nonfinite_b)
    where = f"L{s.first_nonfinite_layer} {s.first_nonfinite_stage}" if broken else ""
    if broken:
        scope = (f" (first {s.finite_taps} taps, before the inf/NaN at {where})"
                 if s.finite_taps else f" (none: inf/NaN from {where})")
        max_abs, max_rel, max_ulp = (s.finite_max_abs_diff, s.finite_max_rel_diff,
                                     s.finite_max_ulp_diff)
        suffix = ", finite taps"
    else:
        scope, suffix = "", ""
        max_abs, max_rel, max_ulp = s.max_abs_diff, s.max_rel_diff, s.max_ulp_diff

    # A pinned run with inf/NaN has no all-tap maxima to compare with (equal infinities
    # differ by 0): its notes say n/a, as its own cards do.
    pinned_broken = p is not None and bool(p.nonfinite_a or p.nonfinite_b)
    other_dtype = pinned is not None and pinned.config.dtype != report.config.dtype

    def card(col, label: str, value: str, now: float | None, base: float | None,
             help: str, per_dtype: bool = False) -> None:
        # Notes sit in a badge under the value: short (11 characters fit at 1280 px).
        # With inf/NaN the scope goes under the value: a longer label would be cut off.
        if broken and suffix and label.endswith(suffix):
            note = "finite taps"
        elif p is None or broken:
            note = None
        elif pinned_broken:
            note = "pinned: n/a"
        elif per_dtype and other_dtype:
            note = "other dtype"  # ULPs of float32 and of bfloat16 are different units
        else:
            note = _delta(now, base)
        if p is not None and not broken:
            help += " Under the value: this run against the pinned one (x = ratio)."
        col.metric(label.removesuffix(suffix) if suffix else label, value, note,
                   delta_color="off", delta_arrow="off", border=CARD_BORDER, help=help)

    card(cols[0], "Max |A - B|" + suffix, fmt(max_abs, 2), max_abs, p and p.max_abs_diff,
         "Largest absolute difference at any tap" + scope + ", each network fed its own "
         "previous layer; in the activations' own units.")
    rel_in_u = f", so this is {max_rel / u:.3g} u" if max_rel is not None else ""
    card(cols[1], "Max rel" + suffix, fmt(max_rel, 2), max_rel, p and p.max_rel_diff,
         f"max |A-B| / max(|A|, |B|) over every tap{scope}. {report.config.dtype} unit "
         f"roundoff u = {u:.3g}{rel_in_u}.")
    card(cols[2], "Max ULPs" + suffix, fmt(max_ulp, 2), max_ulp, p and p.max_ulp_diff,
         f"The most representable {report.config.dtype} values between A and B at any "
         f"element{scope}.", per_dtype=True)
    card(cols[3], "Bound" + suffix, _percent_of_bound(s.max_bound_ratio),
         s.max_bound_ratio, p and p.max_bound_ratio,
         "Share of the worst-case rounding bound used: the largest local |A-B| / "
         "(2 gamma_(n+1)(|W||x|+|b|)) over the layers whose bound is "
         "known, both fed the same input. Up to 100%: explained by float rounding in any "
         "summation order. n/a: the bound is vacuous (fan-in x u >= 1) or values are inf/NaN.")
    closer = s.closer_to_ref or ""
    pinned_closer = p.closer_to_ref if p is not None else None
    side = {"a": "A", "b": "B", "tie": "tie"}
    if broken:
        closer_value, closer_note = "n/a", "inf/NaN"  # where it starts: in the help
    else:
        closer_value = side.get(closer, "n/a")
        closer_note = None if p is None else (
            "pinned: n/a" if pinned_broken
            else "= pinned" if pinned_closer == closer
            else f"pinned: {side.get(pinned_closer or '', 'n/a')}")
    cols[4].metric(
        "Closer", closer_value, closer_note, delta_color="off",
        delta_arrow="off", border=CARD_BORDER,
        help=(f"n/a: A or B has inf/NaN from {where}. " if broken else "")
        + f"Which side is closer to the {report.environment.get('referee', 'reference')} "
             f"reference at the logits, by the max relative error there: A "
             f"({report.config.impl_a}) {fmt(s.a_logits_max_rel_err_vs_ref)}, B "
             f"({report.config.impl_b}) {fmt(s.b_logits_max_rel_err_vs_ref)} (tie when "
             f"equal).")


def forum_numbers(report: Report) -> str:
    """The forum script's two printed numbers for these settings, and the run's cost."""
    s = report.summary
    broken = bool(s.nonfinite_a or s.nonfinite_b)
    where = f"L{s.first_nonfinite_layer} {s.first_nonfinite_stage}" if broken else ""
    bits = (f"inf/NaN from {where}: the cards show the taps before it. " if broken else
            f"{s.max_bits:.3g} bits of error at worst. ")
    env = report.environment
    return (f"{bits}The forum's two printed numbers for these settings, on this machine "
            f"({env.get('onednn_isa', env.get('cpu_capability', ''))}, {env.get('threads')} "
            f"threads; another CPU or thread count sums in another order): mean(B_logits - "
            f"A_logits) = {s.logits_mean_diff!r}, sum(B_feats - A_feats) = "
            f"{s.feats_sum_diff!r}. Computed in {report.elapsed_seconds:.2f} s.")


def decision_card(col, report: Report) -> None:
    """Does it matter? How many predicted classes (argmax of the logits) A and B disagree
    on, and how far the closest call is from changing."""
    s = report.summary
    if not s.argmax_rows or report.config.num_classes < 2:
        value, note = "n/a", ("one class" if report.config.num_classes < 2
                              else "no finite row")
    else:
        value = f"{s.argmax_flips} of {s.argmax_rows}"
        if s.argmax_ties == s.argmax_rows:
            note = "all tied in A"
        elif s.argmax_margin_ratio is None:
            note = "logits equal"
        elif s.argmax_close_rows == 0:
            note = f"{fmt(s.argmax_margin_ratio, 1)}x margin"
        else:
            note = f"{s.argmax_close_rows} could flip"
    col.metric(
        "Flips", value, note, delta_color="off", delta_arrow="off",
        border=CARD_BORDER,
        help=f"Predictions changed: rows whose predicted class (argmax of the logits) "
             f"differs between A and B, "
             f"out of the rows compared. A flip needs A's top-1 margin to be at most twice "
             f"that row's largest |A-B|. Here A's smallest margin is "
             f"{fmt(s.argmax_min_margin)} (row {s.argmax_min_margin_row}), where A and B "
             f"differ by {fmt(s.argmax_min_margin_diff)}; {s.argmax_ties} rows have A's top "
             f"two logits exactly equal (argmax then takes the first).")


def variant_text(report: Report) -> str:
    """Each side's thread count and rows per call, and compile time, when they matter ('' if
    none): what the run found, for the settings line under the title."""
    cfg, env = report.config, report.environment
    parts = []
    # Only what the settings line cannot say: the thread count a default side really had
    # (a side's own setting and rows per call are in the settings words already).
    if cfg.threads_a or cfg.threads_b or env.get("threads_a") != env.get("threads_b"):
        parts.append("threads in effect: " + ", ".join(
            f"{n.upper()} {env.get(f'threads_{n}')}" for n in ("a", "b")))
    backends = {side: env.get(f"compile_backend_{side}", "eager") for side in ("a", "b")}
    if any(b != "eager" for b in backends.values()):
        compiled = ", ".join(k.upper() for k, v in backends.items() if v != "eager")
        parts.append(f"{compiled} compiled ({'/'.join(sorted(set(backends.values()) - {'eager'}))})"
                     f" in {report.compile_seconds:.2f} s of {report.elapsed_seconds:.2f} s,"
                     f" kept for reruns")
    return "; ".join(parts) + "." if parts else ""


def hist_selector(report: Report, key: str, view_key: str, wanted: str) -> tuple[int, str]:
    """Choose the histogram's tap. ``wanted`` is the view's choice ("" = the logits, at
    whatever depth); the widget shows it on every run, and a change by hand goes back into
    the view (st.session_state[view_key]) through the callback."""
    options = [hist_key(t.layer, t.stage) for t in report.taps]
    last = options[-1]
    if wanted and wanted not in options:
        st.caption(safe_text(f"{wanted.replace('-', ' ')} does not exist at depth "
                             f"{report.config.depth}: showing the logits."))
    st.session_state[key] = wanted if wanted in options else last

    def chosen() -> None:
        value = st.session_state[key]
        st.session_state[view_key] = dataclasses.replace(
            st.session_state[view_key], hist="" if value == last else value)

    choice = st.selectbox(
        "Tap for the histogram", options, key=key, on_change=chosen,
        format_func=lambda k: k.replace("-", " ") + (" (logits)" if k == last else ""),
        help="Which layer output the bits-of-error histogram and the table of worst "
             "elements describe. Left on the logits, it follows the depth.")
    layer_stage = parse_hist(choice)
    assert layer_stage is not None  # options are built by hist_key
    return layer_stage


def worst_elements_table(result: WorstElements, dtype: str) -> None:
    """The rows whose worst element at the chosen tap differs most, with what explains it."""
    st.markdown(f"**The {len(result.rows)} input rows that differ most at "
                f"{result.tap_name}** (of {result.elements:,} elements; each row's worst "
                "unit, ranked by ULPs)")
    frame = result.to_frame()
    # The input row as one short column; |A-B| is left to the relative difference beside it.
    frame.insert(0, "row", [f"{b}, {s}" for b, s in zip(frame["batch"], frame["sample"])])
    frame = frame.drop(columns=["rank", "batch", "sample", "abs_diff"])
    ref = result.referee
    columns = {
        "row": st.column_config.TextColumn("row (b, s)", help="The input row: batch index b "
                                                               "and sample s, 0-based.",
                                           width="small"),
        "unit": st.column_config.NumberColumn("unit", help="Output unit (channel) of this "
                                                           "layer, 0-based.", width="small"),
        "a": st.column_config.NumberColumn("A", format="%.9g", help=f"A's value, exactly, in "
                                                                    f"{dtype}."),
        "b": st.column_config.NumberColumn("B", format="%.9g", help=f"B's value, exactly, in "
                                                                    f"{dtype}."),
        "reference": st.column_config.NumberColumn(
            "reference", format="%.9g",
            help=f"The same element computed in {ref}" if ref != "none" else
            "No reference for this dtype here (see 'Where this ran')."),
        "rel_diff": st.column_config.NumberColumn("relative", format="%.2e",
                                                  help="|A-B| / max(|A|,|B|): the relative "
                                                       "difference."),
        "ulps": st.column_config.NumberColumn("ULPs", format="%d",
                                              help=f"Representable {dtype} values between A "
                                                   "and B."),
        "condition": st.column_config.NumberColumn(
            "condition", format="%.3g",
            help="(|W||x| + |b|) / |W x + b| of this layer's affine output (A's input): how "
                 "much the terms cancel. A relative difference up to about 2 gamma_(n+1) "
                 "times this is plain rounding."),
        "a_rel_err": st.column_config.NumberColumn("A error", format="%.2e",
                                                   help="|A - R| / |R| against the "
                                                        "reference R."),
        "b_rel_err": st.column_config.NumberColumn("B error", format="%.2e",
                                                   help="|B - R| / |R| against the "
                                                        "reference R."),
    }
    st.dataframe(frame, column_config=columns, hide_index=True, width="stretch")
    st.caption("Large condition numbers mark the rows whose sums of large terms nearly "
               "cancel: their relative differences are large, yet still within the rounding "
               "bound. Hover a column name for its meaning.")


def show_figure(fig: go.Figure, key: str | None = None) -> None:
    st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key=key)


def chart_slots(names: list[str]) -> dict[str, st.delta_generator.DeltaGenerator]:
    """Two charts per row, in page order: one container per chart, filled later."""
    slots = {}
    for i in range(0, len(names), 2):
        for col, name in zip(st.columns(2), names[i:i + 2]):
            slots[name] = col
    return slots


def downloads(report: Report, figures: Mapping[str, go.Figure]) -> None:
    """CSV, JSON, standalone HTML of the charts, and the reproduce script; built on click.
    The buttons sit in a wrapping row sized to their labels, so none is cut off."""
    stem = "explorer-" + report.config.activation + "-" + report.config.impl_a + "-vs-" + \
        report.config.impl_b
    row = st.container(horizontal=True, gap="small")
    row.download_button("CSV (one row per tap)", data=lambda: export.report_csv(report),
                        file_name=stem + ".csv", mime="text/csv", on_click="ignore",
                        help="Every metric of every tap, as the CLI's --format csv.")
    row.download_button("JSON (full report)", data=lambda: export.report_json(report),
                        file_name=stem + ".json", mime="application/json",
                        on_click="ignore",
                        help="config, environment, summary and taps, as the CLI's "
                             "--format json.")
    row.download_button("Charts (standalone HTML)",
                        data=lambda: export.charts_html(figures, report),
                        file_name=stem + ".html", mime="text/html", on_click="ignore",
                        help="All charts with plotly.js inlined: opens offline.")
    row.download_button("Reproduce in Python (.py)",
                        data=lambda: export.reproduce_script(report.config),
                        file_name=stem + ".py", mime="text/x-python", on_click="ignore",
                        help="A torch-only script that rebuilds both networks with these "
                             "settings and prints the headline numbers.")


def environment(report: Report) -> None:
    env = report.environment
    with st.expander("Where this ran"):
        flags = env.get("backend_flags", {})
        applies = "in effect" if env.get("backend_flags_apply") else "not used: not on CUDA"
        lines = [
            f"torch {env.get('torch_version')}, numpy {env.get('numpy_version')}, Python "
            f"{env.get('python_version')} on {env.get('platform')}",
            f"device {env.get('device')} ({env.get('device_name')}), dtype {env.get('dtype')}, "
            f"{env.get('threads')} threads, CPU capability {env.get('cpu_capability')}",
            f"reference: {env.get('referee')} ({env.get('referee_note')})",
            f"CUDA backend flags ({applies}): "
            + ", ".join(f"{k}={v}" for k, v in flags.items()),
        ]
        st.markdown("\n".join(f"- {safe_text(line)}" for line in lines))
