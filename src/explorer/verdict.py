"""The verdict: what explains the difference, as a short code plus sentences, from the numbers.

Order of the checks is the order of severity: non-finite values trump everything, then a
broken rounding bound (someone computes in lower precision), then the benign cases
(bit-identical, or equivalent up to rounding, with what makes the rounding visible).

The rule every sentence follows: each number it quotes belongs to the tap, the side and
the element the sentence names (the report keeps, per tap, the element with the most ULPs
and the one with the largest |A-B|, with what is known about each). Where the numbers
cannot support a claim, the sentence says less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.config import ExperimentConfig
    from explorer.reference import RefereeInfo
    from explorer.report import Summary, TapMetrics

from explorer.effective import BITS_NAME, DTYPE_BITS
from explorer.report import Verdict
from explorer.sides import side_label

# Above this many ULPs at an element whose condition number is large, the visible relative
# error comes from cancellation rather than from the arithmetic being sloppy.
CANCELLATION_ULPS = 256
CANCELLATION_CONDITION = 1e3
# Values this large make a few-ULP difference look alarming in absolute terms.
LARGE_MAGNITUDE = 1e4
# "slightly closer" only when the two errors are within this factor.
SLIGHTLY = 2.0

EMULATION_NAME = {"tf32": "TF32", "bf16": "bfloat16", "fp16": "float16"}
# Largest finite value of each format an operand or a result can be held in.
FORMAT_MAX = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308,
              "float16": 65504.0, "bfloat16": 3.3895313892515355e38,
              "tf32": 3.4028232635611926e38}
EMULATION_FORMAT = {"tf32": "tf32", "bf16": "bfloat16", "fp16": "float16"}


def _side_label(config: "ExperimentConfig", side: str) -> str:
    """'A (linear)', or with execution variants 'B (linear, one row per call)'."""
    return side_label(config, side)


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def _pct(x: float) -> str:
    pct = 100 * x
    return f"{pct:.2g}%" if pct < 10 else f"{pct:.0f}%"


def _where(taps: Sequence["TapMetrics"], all_pre: Sequence["TapMetrics"]) -> str:
    layers = [t.layer for t in taps]
    if len(layers) == len(all_pre):
        return "every layer"
    return ("layers " if len(layers) > 1 else "layer ") + ", ".join(map(str, layers))


def referee_name(referee: "RefereeInfo") -> str:
    """The referee as what it is: float64, or extended precision for float64 runs."""
    if referee.precision.startswith("longdouble"):
        return "extended-precision" + referee.precision[len("longdouble"):]
    return referee.precision


def judge(config: "ExperimentConfig", taps: Sequence["TapMetrics"], summary: "Summary",
          referee: "RefereeInfo", cpu_bf16_honoured: dict | None = None) -> Verdict:
    """The verdict on the cause, then what it does to the predictions (first finding).

    ``cpu_bf16_honoured`` ({"matmul": bool, "conv": bool}, CPU runs) says whether this
    CPU really computes in bfloat16 when oneDNN is asked to (explorer.machine)."""
    verdict = _judge_cause(config, taps, summary, referee, cpu_bf16_honoured)
    extra = [s for s in (decision_sentence(config, summary),
                         _activation_origin_sentence(config, taps, verdict.code)) if s]
    if not extra:
        return verdict
    return Verdict(verdict.code, verdict.headline, (extra[0], *verdict.details, *extra[1:]))


def _judge_cause(config: "ExperimentConfig", taps: Sequence["TapMetrics"], summary: "Summary",
                 referee: "RefereeInfo", cpu_bf16_honoured: dict | None) -> Verdict:
    pre_taps = [t for t in taps if t.stage == "pre"]
    details: list[str] = []
    if not referee.available:
        details.append(f"No referee: {referee.note}.")
    details += _ignored_cpu_switches(config, cpu_bf16_honoured)
    if summary.nonfinite_a or summary.nonfinite_b:
        return _nonfinite(config, taps, summary, details)
    over = {side: [t for t in pre_taps if (getattr(t, f"{side}_bound_ratio") or 0) > 1]
            for side in ("a", "b")}
    over_local = [t for t in pre_taps if (t.bound_ratio or 0) > 1]
    compute_bits = DTYPE_BITS[config.dtype]
    narrow = [s for s in ("a", "b")
              if (getattr(summary, f"{s}_effective_bits") or compute_bits) < compute_bits]
    if over["a"] or over["b"] or over_local or narrow:
        return _reduced_precision(config, pre_taps, summary, referee, over, over_local,
                                  details)
    if summary.max_ulp_diff == 0:
        return _identical(config, pre_taps, summary, referee, details)
    return _rounding(config, taps, pre_taps, summary, referee, details)


def _ignored_cpu_switches(config: "ExperimentConfig", honoured: dict | None) -> list[str]:
    """Say so when a oneDNN precision switch was set but this CPU computes float32 anyway."""
    if honoured is None:
        return []
    notes = []
    for which in ("matmul", "conv"):
        value = getattr(config, f"cpu_{which}_precision")
        if value == "bf16" and not honoured.get(which):
            notes.append(f"oneDNN's {which} fp32_precision was 'bf16' for this run, but this "
                         f"CPU computes it in float32 anyway (a probe found no bfloat16 "
                         f"rounding); emulation (bf16) shows what real bfloat16 would do.")
        elif value == "tf32":
            notes.append(f"oneDNN's {which} fp32_precision was 'tf32' for this run; CPUs "
                         f"without TF32 units compute float32 as usual, and each side's "
                         f"effective bits show what happened.")
    return notes


# ---------------------------------------------------------------------------------------
# 1. inf / NaN

def _overflowed_format(config: "ExperimentConfig", taps: Sequence["TapMetrics"],
                       first: "TapMetrics", side: str) -> str:
    """Which format's largest value was exceeded on this side at the first bad tap.

    An emulated side rounds its operands (the layer's input and weights) to a narrower
    format first; when those operands already exceed that format's largest value, it is
    the format that overflowed, not the compute dtype.
    """
    emulation = getattr(config, f"emulate_{side}")
    if emulation == "none" or first.stage != "pre":
        return config.dtype
    fmt = EMULATION_FORMAT[emulation]
    previous = [t for t in taps if t.layer == first.layer - 1 and t.stage == "post"]
    input_max = (previous[0].max_abs_value if side == "a" else previous[0].b_max_abs_value) \
        if previous else 0.0
    if max(input_max, abs(config.init_constant)) > FORMAT_MAX[fmt]:
        return fmt
    return config.dtype


def _nonfinite(config: "ExperimentConfig", taps: Sequence["TapMetrics"], summary: "Summary",
               details: list[str]) -> Verdict:
    first = next(t for t in taps if t.nonfinite_count or t.b_nonfinite_count)
    sides = [s for s, n in (("a", first.nonfinite_count), ("b", first.b_nonfinite_count)) if n]
    infinite = {"a": math.isinf(first.max_abs_value), "b": math.isinf(first.b_max_abs_value)}
    who = " and ".join(_side_label(config, s) for s in sides)
    where = f"layer {first.layer} ({first.stage})"
    reasons, overflowed = [], False
    for s in sides:
        fmt = _overflowed_format(config, taps, first, s)
        emulated = fmt != config.dtype
        operands = (f" by {s.upper()}'s operands, rounded to {fmt} by its emulation"
                    if emulated else "")
        if infinite[s]:
            overflowed = True
            reasons.append(f"{fmt}'s largest value ({FORMAT_MAX[fmt]:.5g}) is exceeded"
                           + operands)
        elif emulated:
            # Only NaN here, yet the operands were past the format's range: they became
            # inf when rounded, and inf - inf (or 0 x inf) in the sums made the NaN.
            overflowed = True
            reasons.append(f"{fmt}'s largest value ({FORMAT_MAX[fmt]:.5g}) is exceeded"
                           f"{operands}, and inf - inf in the sums gives NaN")
    if overflowed:
        reason = "; ".join(dict.fromkeys(reasons))
        kind = "overflow to inf" if any(infinite[s] for s in sides) else \
            "overflow (seen as NaN)"
        headline = (f"Non-finite values: {kind} at {where} in {who}: {reason}. Later layers "
                    f"carry inf/NaN, so differences there are meaningless.")
    else:
        headline = (f"Non-finite values: NaN first appears at {where} in {who}. Later "
                    f"layers carry it, so differences there are meaningless.")
    details.append(f"{summary.nonfinite_a} non-finite elements in A, {summary.nonfinite_b} "
                   f"in B over all taps.")
    if summary.finite_taps:
        last = taps[summary.finite_taps - 1]
        details.append(f"Before that, over the {summary.finite_taps} finite taps (L1 pre to "
                       f"L{last.layer} {last.stage}): max |A-B| "
                       f"{_fmt(summary.finite_max_abs_diff)}, max relative "
                       f"{_fmt(summary.finite_max_rel_diff)}, max "
                       f"{_ulps(summary.finite_max_ulp_diff)}.")
    else:
        details.append("No tap is finite, so no difference can be measured.")
    return Verdict("nonfinite", headline, tuple(details))


# ---------------------------------------------------------------------------------------
# 2. Some side computes in lower precision than the compute dtype: its error breaks the
#    worst-case bound, or its statistics match a narrower operand format.

MATMUL_PATH = ("linear", "matmul", "tensordot", "linear_compiled")


@dataclass(frozen=True)
class Cause:
    """What in the settings makes a side narrower: in a few words for the headline's
    parenthesis, and in full for the findings."""

    short: str
    full: str


def _cause(config: "ExperimentConfig", side: str) -> Cause | None:
    """What in the settings makes this side narrower, when the settings say so."""
    emulation = getattr(config, f"emulate_{side}")
    if emulation != "none":
        return Cause("emulated", f"its operands are rounded to {EMULATION_NAME[emulation]} by "
                                 f"emulation")
    impl = config.impl_a if side == "a" else config.impl_b
    # A 1x1 convolution over a batch of one takes the matmul path in oneDNN.
    matmul_path = impl in MATMUL_PATH or config.batch == 1
    if config.device == "cpu" or config.device.startswith("cpu"):
        which = "matmul" if matmul_path else "conv"
        value = getattr(config, f"cpu_{which}_precision", "default")
        if value in ("bf16", "tf32"):
            setting = f"{which} fp32_precision was {value!r}"
            return Cause(f"oneDNN's {setting}", f"oneDNN's {setting} for this run")
        return None
    if config.device.startswith("cuda"):
        if impl in ("conv2d", "conv1d") and config.conv_tf32 in ("default", "on"):
            return Cause("cuDNN's TF32 default",
                         "cuDNN convolutions may use TF32 (on by default in PyTorch; set the "
                         "conv TF32 switch off to compare)")
        if impl in MATMUL_PATH and config.matmul_tf32 == "on":
            return Cause("cuBLAS TF32 allowed", "cuBLAS matmuls were allowed TF32 for this run")
    return None


def _bits_phrase(bits: int | None, name: str | None = None, cause: str | None = None) -> str:
    if not bits:
        return "fewer bits"
    return f"{bits} significant bits ({name or BITS_NAME[bits]}{', ' + cause if cause else ''})"


def _side_story(config: "ExperimentConfig", summary: "Summary", side: str,
                pre_taps: Sequence["TapMetrics"], exceeded: list, details: list[str]) -> str:
    """One side's evidence, short enough for a two-line headline: its effective bits and
    what in the settings causes them, and where it breaks its own bound. The cause in full,
    and what the bound was measured against, go to ``details``."""
    dtype, compute_bits = config.dtype, DTYPE_BITS[config.dtype]
    bits = getattr(summary, f"{side}_effective_bits")
    label = _side_label(config, side)
    cause = _cause(config, side)
    short = cause.short if cause else None
    if bits is not None and bits < compute_bits:
        name = getattr(summary, f"{side}_effective_format", None)
        text = (f"{label} behaves as if its operands had {_bits_phrase(bits, name, short)}, "
                f"not {dtype}'s {compute_bits}")
    else:
        text = (f"{label} computes in lower precision than {dtype} (no candidate format "
                f"fits its error)" if bits is None else f"{label} computes in lower "
                f"precision than {dtype}") + (f"; {short}" if short else "")
    if cause:
        details.append(f"{label}: {cause.full}.")
    if exceeded:
        worst = max(getattr(t, f"{side}_bound_ratio") for t in exceeded)
        text += (f": it exceeds the worst-case {dtype} rounding bound at "
                 f"{_where(exceeded, pre_taps)} (up to {_fmt(worst)}x)")
    else:
        known = [getattr(t, f"{side}_bound_ratio") for t in pre_taps
                 if getattr(t, f"{side}_bound_ratio") is not None]
        if known:
            text += (f", although its error stays within the worst-case {dtype} bound (up "
                     f"to {_pct(max(known))} of it), which is loose at these fan-ins")
    return text


def _bits_summary(config: "ExperimentConfig", summary: "Summary", side: str) -> str:
    """'A (linear) as if with 8 significant bits (bfloat16, emulated)', or without bits
    when no candidate format fits. Each side by its implementation only: this goes in a
    headline of at most two lines, and each side's full label leads its story in the
    findings."""
    bits = getattr(summary, f"{side}_effective_bits")
    label = f"{side.upper()} ({getattr(config, f'impl_{side}')})"
    cause = _cause(config, side)
    if bits is None or bits >= DTYPE_BITS[config.dtype]:
        return f"{label}" + (f" ({cause.short})" if cause else "")
    name = getattr(summary, f"{side}_effective_format", None)
    return f"{label} as if with {_bits_phrase(bits, name, cause.short if cause else None)}"


def _error_comparison(config: "ExperimentConfig", pre_taps: Sequence["TapMetrics"],
                      summary: "Summary", referee: "RefereeInfo", culprits: list[str]
                      ) -> str | None:
    """A sentence comparing both sides' errors against the referee, at a tap where they
    differ (the logits if they do there); None without a referee or when they never differ."""
    ref = referee_name(referee)
    a_err, b_err = summary.a_logits_max_rel_err_vs_ref, summary.b_logits_max_rel_err_vs_ref
    if a_err is None or b_err is None:
        return None
    if a_err != b_err:
        return (f"At the logits, max relative error against the {ref} reference: A "
                f"{_fmt(a_err)}, B {_fmt(b_err)}.")
    # Equal at the logits (e.g. a saturated activation gives both the same outputs): show
    # the pre tap where the culprit's own bound ratio is largest.
    side = culprits[0] if culprits else "b"
    known = [t for t in pre_taps if getattr(t, f"{side}_bound_ratio") is not None
             and t.a_max_rel_err_vs_ref is not None and t.b_max_rel_err_vs_ref is not None]
    if not known:
        return None
    tap = max(known, key=lambda t: getattr(t, f"{side}_bound_ratio"))
    return (f"At the logits both are equally far from the {ref} reference (max relative "
            f"error {_fmt(a_err)}); at layer {tap.layer} (pre) it is A "
            f"{_fmt(tap.a_max_rel_err_vs_ref)}, B {_fmt(tap.b_max_rel_err_vs_ref)}.")


def _reduced_precision(config: "ExperimentConfig", pre_taps: Sequence["TapMetrics"],
                       summary: "Summary", referee: "RefereeInfo", over: dict,
                       over_local: list, details: list[str]) -> Verdict:
    dtype = config.dtype
    compute_bits = DTYPE_BITS[dtype]
    culprits = [s for s in ("a", "b") if over[s]
                or (getattr(summary, f"{s}_effective_bits") or compute_bits) < compute_bits]
    if culprits:
        stories = [_side_story(config, summary, s, pre_taps, over[s], details)
                   for s in culprits]
        if any(over[s] for s in culprits):
            details.append("Each side's bound compares its error with the exact result for "
                           "its own input.")
        if len(culprits) == 2:
            # Two stories do not fit the headline's two lines: it names each side's bits,
            # and each side's whole story leads the findings.
            headline = (f"Both sides compute in lower precision than {dtype}: "
                        + "; ".join(_bits_summary(config, summary, s) for s in culprits) + ".")
            details[:0] = [story + "." for story in stories]
            details.append("Agreement between A and B says nothing about accuracy here: "
                           "both round their products more coarsely than " + dtype + ".")
        else:
            headline = stories[0] + "."
    else:
        # Only the A-vs-B bound is known (no referee): one side rounds more coarsely.
        worst = max(t.bound_ratio for t in over_local)
        emulating = [s for s in ("a", "b") if getattr(config, f"emulate_{s}") != "none"]
        who = (_side_label(config, emulating[0]) if len(emulating) == 1 else "one side")
        headline = (f"A and B differ by more than two worst-case {dtype} rounding bounds at "
                    f"{_where(over_local, pre_taps)} (up to {_fmt(worst)}x): {who} computes "
                    f"in lower precision than {dtype}.")
    comparison = _error_comparison(config, pre_taps, summary, referee, culprits)
    if comparison:
        details.append(comparison)
    exceeded = over["a"] or over["b"] or over_local
    details.append(
        (f"The bound gamma_(n+1)(|W||x|+|b|) holds for any summation order in {dtype}; "
         f"exceeding it means the products themselves were rounded more coarsely. "
         if exceeded else "") +
        "Effective bits compare each side's error statistics with simulations of "
        f"{dtype} in several summation orders and of each narrower operand format, on "
        "the same layer and input.")
    return Verdict("reduced_precision", headline, tuple(details))


# ---------------------------------------------------------------------------------------
# 3. Bit-identical

def _identical(config: "ExperimentConfig", pre_taps: Sequence["TapMetrics"],
               summary: "Summary", referee: "RefereeInfo", details: list[str]) -> Verdict:
    headline = (f"Bit-identical: {_side_label(config, 'a')} and {_side_label(config, 'b')} "
                f"agree to the last bit at every layer.")
    err = summary.a_logits_max_rel_err_vs_ref
    ratios = [t.a_bound_ratio for t in pre_taps]
    if err == 0:
        details.append(f"Both equal the {referee_name(referee)} reference exactly at the "
                       f"logits.")
    elif err is not None:
        if ratios and all(r is not None for r in ratios):
            details.append(f"Both are {_fmt(err)} (max relative error at the logits) from the "
                           f"{referee_name(referee)} reference, and within the worst-case "
                           f"{config.dtype} bound at every layer: that is the cost of "
                           f"{config.dtype} itself, not of either implementation.")
        else:
            details.append(f"Both are {_fmt(err)} (max relative error at the logits) from "
                           f"the {referee_name(referee)} reference.")
    return Verdict("identical", headline, tuple(details))


# ---------------------------------------------------------------------------------------
# 4. Equivalent up to rounding; what makes the rounding visible.

def _cancellation_sentence(pre_taps: Sequence["TapMetrics"]) -> str | None:
    candidates = [t for t in pre_taps if t.max_ulp_diff >= CANCELLATION_ULPS
                  and (t.worst_ulp_condition or 0) >= CANCELLATION_CONDITION]
    if not candidates:
        return None
    tap = max(candidates, key=lambda t: t.max_ulp_diff)
    within = ("; still within the bound" if tap.bound_ratio is not None
              and tap.bound_ratio <= 1 else "")
    return (f"Cancellation: at layer {tap.layer} (pre) the element with the largest "
            f"difference is {_ulps(tap.max_ulp_diff)} apart (relative "
            f"{_fmt(tap.worst_ulp_rel_diff)}), and its condition number (|W||x|+|b|)/|Wx+b| "
            f"is {_fmt(tap.worst_ulp_condition)}: large terms cancel there, so a small "
            f"rounding of the sum is a large relative change{within}.")


def _activation_sentence(config: "ExperimentConfig", taps: Sequence["TapMetrics"],
                         referee: "RefereeInfo") -> str | None:
    """At a post tap whose worst element is further apart than anything at its own input
    tap, say whether the activation's conditioning or its own rounding did it."""
    pre_by_layer = {t.layer: t for t in taps if t.stage == "pre"}
    grown = [t for t in taps if t.stage == "post" and t.max_ulp_diff >= CANCELLATION_ULPS
             and t.max_ulp_diff > pre_by_layer[t.layer].max_ulp_diff
             and t.worst_ulp_input_a is not None]
    if not grown:
        return None
    tap = max(grown, key=lambda t: t.max_ulp_diff)
    act = config.activation
    start = (f"Activation: at layer {tap.layer} (post) the largest difference is "
             f"{_ulps(tap.max_ulp_diff)} (relative {_fmt(tap.worst_ulp_rel_diff)}), at "
             f"an element whose input is x = {tap.worst_ulp_input_a:.4g}")
    own = [e for e in (tap.worst_ulp_act_error_a, tap.worst_ulp_act_error_b) if e is not None]
    amplified = ((tap.worst_ulp_act_condition or 0) * (tap.worst_ulp_input_rel_diff or 0)
                 if tap.worst_ulp_act_condition is not None
                 and math.isfinite(tap.worst_ulp_act_condition) else None)
    if own and (amplified is None or max(own) > amplified):
        return (f"{start}; there the {config.dtype} {act} itself is off by "
                f"{_fmt(tap.worst_ulp_act_error_a)} (A) and {_fmt(tap.worst_ulp_act_error_b)} "
                f"(B) relative to the {referee_name(referee)} value: the activation's own "
                f"rounding, not cancellation in a sum.")
    if amplified is not None:
        return (f"{start}; {act} multiplies a relative change of its input by "
                f"|x f'(x)/f(x)| = {_fmt(tap.worst_ulp_act_condition)} there, and A's and "
                f"B's inputs differed by {_fmt(tap.worst_ulp_input_rel_diff)} (relative): "
                f"the activation's conditioning, not cancellation in a sum.")
    return None


def _magnitude_sentence(taps: Sequence["TapMetrics"]) -> str | None:
    big = max(taps, key=lambda t: t.max_abs_diff)
    if big.worst_abs_value is None or big.worst_abs_value < LARGE_MAGNITUDE:
        return None
    return (f"Magnitude: the largest absolute difference, {_fmt(big.max_abs_diff)} at layer "
            f"{big.layer} ({big.stage}), is between values of about "
            f"{_fmt(big.worst_abs_value)}: only {_fmt(big.worst_abs_rel_diff)} of the value "
            f"({_ulps(big.worst_abs_ulp_diff)}) at that element.")


def _closer_sentence(config: "ExperimentConfig", summary: "Summary",
                     referee: "RefereeInfo") -> str | None:
    a_err, b_err = summary.a_logits_max_rel_err_vs_ref, summary.b_logits_max_rel_err_vs_ref
    closer = summary.closer_to_ref
    ref = referee_name(referee)
    if closer == "tie":
        return (f"Both are equally close to the {ref} reference at the logits (max relative "
                f"error {_fmt(a_err)}).")
    if closer not in ("a", "b") or a_err is None or b_err is None:
        return None
    mine, other = (a_err, b_err) if closer == "a" else (b_err, a_err)
    degree = "slightly " if mine > 0 and other / mine < SLIGHTLY else ""
    return (f"{_side_label(config, closer)} is {degree}closer to the {ref} reference at the "
            f"logits: max relative error {_fmt(mine)} vs {_fmt(other)}.")


def _ulps(count: float | None) -> str:
    """'1 ULP', '45 ULPs'."""
    return f"{_fmt(count)} ULP" if count == 1 else f"{_fmt(count)} ULPs"


def _activation_origin(config: "ExperimentConfig", taps: Sequence["TapMetrics"]) -> str | None:
    """When no affine layer adds a difference, where A and B first part: the headline.

    Claims identical inputs only when the tap before agrees to the last bit."""
    first = next((i for i, t in enumerate(taps) if t.max_abs_diff > 0), None)
    if first is None or taps[first].stage != "post":
        return None
    tap = taps[first]
    same_input = first > 0 and taps[first - 1].max_abs_diff == 0
    where = f"layer {tap.layer} (post-activation)"
    act = config.activation
    cause = (f"where both apply {act} to identical inputs: the two {act} implementations "
             f"differ by up to {_ulps(tap.max_ulp_diff)}" if same_input else
             f"by up to {_ulps(tap.max_ulp_diff)}")
    return (f"Every affine layer agrees to the last bit when fed the same input; A and B "
            f"first differ at {where}, {cause}.")


def _rounding(config: "ExperimentConfig", taps: Sequence["TapMetrics"],
              pre_taps: Sequence["TapMetrics"], summary: "Summary", referee: "RefereeInfo",
              details: list[str]) -> Verdict:
    dtype = config.dtype
    known = [t for t in pre_taps if t.bound_ratio is not None]
    vacuous = [t for t in pre_taps if t.bound_note and t.bound_note.startswith("vacuous")]
    origin = (_activation_origin(config, taps)
              if known and max(t.bound_ratio for t in known) == 0 else None)
    if origin:
        headline = origin
    elif known:
        worst = max(known, key=lambda t: t.bound_ratio)
        headline = (f"Equivalent up to rounding; the largest local difference is "
                    f"{_pct(worst.bound_ratio)} of the worst-case {dtype} bound (layer "
                    f"{worst.layer}).")
    else:
        headline = (f"A and B differ by up to {_ulps(summary.max_ulp_diff)}; the "
                    f"worst-case {dtype} bound is unknown at every layer, so it cannot say "
                    f"whether rounding explains this.")
    if vacuous:
        details.append(f"The worst-case bound is vacuous at {_where(vacuous, pre_taps)} "
                       f"(fan-in x unit roundoff >= 1 in {dtype}): its ratio there is "
                       f"unknown, not 0.")
    code = "rounding"
    cancellation = _cancellation_sentence(pre_taps)
    if cancellation:
        code = "cancellation"
        details.append(cancellation)
    activation = _activation_sentence(config, taps, referee)
    if activation:
        details.append(activation)
    magnitude = _magnitude_sentence(taps)
    if magnitude:
        if code == "rounding":
            code = "magnitude"
        details.append(magnitude)
    logits = pre_taps[-1]
    if (len(pre_taps) > 1 and logits.local_max_abs_diff is not None
            and logits.max_abs_diff > 4 * logits.local_max_abs_diff):
        details.append(f"Propagation: at the last layer, fed the same input, the two differ by "
                       f"at most {_fmt(logits.local_max_abs_diff)}; the total "
                       f"{_fmt(logits.max_abs_diff)} is inherited from earlier layers.")
    closer = _closer_sentence(config, summary, referee)
    if closer:
        details.append(closer)
    return Verdict(code, headline, tuple(details))


# ---------------------------------------------------------------------------------------
# 5. Does it matter? The predictions (argmax of the logits), row by row.

def decision_sentence(config: "ExperimentConfig", summary: "Summary") -> str | None:
    """What the difference does to the predicted classes; every number is of the rows it
    names (see explorer.decisions for the definitions and the 2x rule)."""
    s = summary
    rows = s.argmax_rows
    if rows == 0 or config.num_classes < 2:
        return None
    scope = (f" ({s.argmax_skipped_rows} rows with inf/NaN logits left out)"
             if s.argmax_skipped_rows else "")
    closest = (f"the smallest top-1 margin of A's logits is {_fmt(s.argmax_min_margin)} (row "
               f"{s.argmax_min_margin_row}), where A and B differ by at most "
               f"{_fmt(s.argmax_min_margin_diff)}")
    if s.argmax_ties == rows:
        why = (" (with constant weights every logit of a row is the same sum)"
               if config.init_scheme.startswith("constant") else "")
        agree = (f"B's argmax differs in {s.argmax_flips} of them" if s.argmax_flips
                 else "B's argmax agrees in every row")
        return (f"Predictions: A's top two logits are exactly equal in every one of the "
                f"{rows} rows{why}, so its predicted class is decided by position (argmax "
                f"takes the first), not by value; {agree}{scope}. PyTorch's default init "
                f"(preset realistic) shows real margins.")
    ties = (f" A's top two logits are exactly equal in {s.argmax_ties} of the rows."
            if s.argmax_ties else "")
    if s.argmax_flips:
        in_ties = (f", {s.argmax_tie_flips} of them in rows where A's top two are tied"
                   if s.argmax_tie_flips else "")
        return (f"Predictions: the difference changes {s.argmax_flips} of {rows} predictions "
                f"(argmax of the logits){in_ties}{scope}; {closest}.{ties}")
    if s.argmax_margin_ratio is None:
        return (f"Predictions: the logits are equal in every one of the {rows} rows{scope}, "
                f"so no prediction changes.{ties}")
    if s.argmax_close_rows == 0:
        return (f"Predictions: no prediction can change{scope}: in every row A's top-1 margin "
                f"is at least {_fmt(s.argmax_margin_ratio)}x that row's largest |A-B| (a "
                f"change needs less than 2x); {closest}.{ties}")
    return (f"Predictions: none of the {rows} changes{scope}, but in "
            f"{s.argmax_close_rows} of them one could: their top-1 margin is at most twice "
            f"their largest |A-B|; {closest}.{ties}")


def _activation_origin_sentence(config: "ExperimentConfig", taps: Sequence["TapMetrics"],
                                code: str) -> str | None:
    """When every affine layer agrees bit for bit on the same input and the first
    difference appears after an activation (e.g. torch.compile's fused activation), say so."""
    if code not in ("rounding", "magnitude", "cancellation"):
        return None
    pre = [t for t in taps if t.stage == "pre"]
    if any(t.local_max_ulp_diff is None or t.local_max_ulp_diff > 0 for t in pre):
        return None
    first = next((t for t in taps if t.max_ulp_diff > 0), None)
    if first is None or first.stage != "post":
        return None
    return (f"Origin: fed the same input, A's and B's affine layers agree to the last bit at "
            f"every layer; the first difference is at layer {first.layer} (post), after the "
            f"{config.activation}: {_ulps(first.max_ulp_diff)} (relative "
            f"{_fmt(first.worst_ulp_rel_diff)}) at its worst element. The two sides evaluate "
            f"{config.activation} differently (a compiled, fused activation rounds in its own "
            f"way); later layers carry that difference forward.")
