"""The verdict: what explains the difference, as a short code plus sentences, from the numbers.

Order of the checks is the order of severity: non-finite values trump everything, then a
broken rounding bound (someone computes in lower precision), then the benign cases
(bit-identical, or equivalent up to rounding, with what makes the rounding visible).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from explorer.config import ExperimentConfig
    from explorer.reference import RefereeInfo
    from explorer.report import Summary, TapMetrics

from explorer.report import Verdict

# Above this many ULPs at an element whose condition number is large, the visible relative
# error comes from cancellation rather than from the arithmetic being sloppy.
CANCELLATION_ULPS = 256
CANCELLATION_CONDITION = 1e3
# Values this large make a few-ULP difference look alarming in absolute terms.
LARGE_MAGNITUDE = 1e4

PRECISION_NAME = {"float32": "float32", "float64": "float64", "float16": "float16",
                  "bfloat16": "bfloat16"}
EMULATION_NAME = {"tf32": "TF32", "bf16": "bfloat16", "fp16": "float16"}


def _side_label(config: "ExperimentConfig", side: str) -> str:
    impl = config.impl_a if side == "a" else config.impl_b
    return f"{side.upper()} ({impl})"


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def _pct(x: float) -> str:
    pct = 100 * x
    return f"{pct:.2g}%" if pct < 10 else f"{pct:.0f}%"


def judge(config: "ExperimentConfig", taps: Sequence["TapMetrics"], summary: "Summary",
          referee: "RefereeInfo") -> Verdict:
    dtype = PRECISION_NAME[config.dtype]
    pre_taps = [t for t in taps if t.stage == "pre"]
    details: list[str] = []
    if not referee.available:
        details.append(f"No referee: {referee.note}.")

    # 1. Overflow / NaN.
    if summary.nonfinite_a or summary.nonfinite_b:
        first = next(t for t in taps if t.nonfinite_count or t.b_nonfinite_count)
        overflow = math.isinf(first.max_abs_value) or math.isinf(first.b_max_abs_value)
        kind = "overflow to inf" if overflow else "NaN"
        sides = [_side_label(config, s) for s, n in (("a", summary.nonfinite_a),
                                                    ("b", summary.nonfinite_b)) if n]
        headline = (f"Non-finite values: {kind} at layer {first.layer} ({first.stage}) in "
                    f"{' and '.join(sides)}; {dtype}'s largest value is exceeded, so "
                    f"later layers carry inf/NaN and differences there are meaningless.")
        details.append(f"{summary.nonfinite_a} non-finite elements in A, "
                       f"{summary.nonfinite_b} in B over all taps.")
        return Verdict("nonfinite", headline, tuple(details))

    # 2. The local difference exceeds the worst-case bound: not explained by dtype rounding.
    ratios = [t.bound_ratio for t in pre_taps if t.bound_ratio is not None]
    worst = max(ratios) if ratios else None
    if worst is not None and worst > 1:
        exceeded = [t.layer for t in pre_taps if t.bound_ratio is not None and t.bound_ratio > 1]
        culprit = _reduced_precision_side(config, pre_taps)
        where = ("every layer" if len(exceeded) == len(pre_taps)
                 else "layer" + ("s " if len(exceeded) > 1 else " ")
                 + ", ".join(str(x) for x in exceeded))
        who = _side_label(config, culprit) if culprit else "one side"
        emulated = getattr(config, f"emulate_{culprit}") if culprit else "none"
        precision = (f"{EMULATION_NAME[emulated]} (emulated)" if emulated != "none"
                     else "reduced precision (TF32-like)")
        headline = (f"{who} exceeds the worst-case {dtype} rounding bound at {where} "
                    f"(up to {_fmt(worst)}x): it computes in {precision}, not {dtype}.")
        a_err, b_err = summary.a_logits_max_rel_err_vs_ref, summary.b_logits_max_rel_err_vs_ref
        if a_err is not None and b_err is not None and culprit:
            mine, other = (b_err, a_err) if culprit == "b" else (a_err, b_err)
            details.append(f"{_side_label(config, culprit)} is further from the float64 truth "
                           f"at the logits: max relative error {_fmt(mine)} vs {_fmt(other)}.")
        details.append(f"The bound gamma_(n+1)*(|W||x|+|b|) holds for any summation order in "
                       f"{dtype}; exceeding it means the products themselves were rounded "
                       f"more coarsely.")
        return Verdict("reduced_precision", headline, tuple(details))

    # 3. Bit-identical.
    if summary.max_ulp_diff == 0:
        headline = (f"Bit-identical: {_side_label(config, 'a')} and "
                    f"{_side_label(config, 'b')} agree to the last bit at every layer.")
        err = summary.a_logits_max_rel_err_vs_ref
        if err:
            details.append(f"Both are equally far from the higher-precision reference (max "
                           f"relative error {_fmt(err)} at the logits): that is the cost of "
                           f"{dtype} itself, not of either implementation.")
        return Verdict("identical", headline, tuple(details))

    # 4. Equivalent up to rounding; say what makes the rounding visible.
    share = (f"; the largest local difference is {_pct(worst)} of the worst-case {dtype} "
             f"bound" if worst is not None else "")
    headline = f"Equivalent up to rounding{share}."
    if math.isinf(max((t.bound_max or 0) for t in pre_taps)):
        details.append(f"The worst-case bound is vacuous here (fan-in x unit roundoff >= 1 in "
                       f"{dtype}), so it explains everything and proves little.")
    max_value = max(max(t.max_abs_value, t.b_max_abs_value) for t in taps)
    code = "rounding"
    worst_ulp_tap = max(taps, key=lambda t: t.max_ulp_diff)
    if (summary.max_ulp_diff >= CANCELLATION_ULPS and summary.max_condition is not None
            and summary.max_condition >= CANCELLATION_CONDITION):
        code = "cancellation"
        details.insert(0, f"Cancellation: at layer {worst_ulp_tap.layer} ({worst_ulp_tap.stage}) "
                          f"elements differ by up to {_fmt(worst_ulp_tap.max_ulp_diff)} ULPs "
                          f"(relative {_fmt(worst_ulp_tap.max_rel_diff)}) where large terms "
                          f"cancel (condition number up to {_fmt(summary.max_condition)}); "
                          f"still within the bound.")
    if max_value >= LARGE_MAGNITUDE:
        if code == "rounding":
            code = "magnitude"
        big = max(taps, key=lambda t: t.max_abs_diff)
        details.append(f"Magnitude: activations reach {_fmt(max_value)}, so the largest "
                       f"absolute difference, {_fmt(big.max_abs_diff)} at layer {big.layer} "
                       f"({big.stage}), is only {_fmt(big.max_rel_diff)} of the values there "
                       f"({_fmt(big.max_ulp_diff)} ULPs).")
    logits = pre_taps[-1]
    if (len(pre_taps) > 1 and logits.local_max_abs_diff is not None
            and logits.max_abs_diff > 4 * logits.local_max_abs_diff):
        details.append(f"Propagation: at the last layer, fed the same input, the two differ by "
                       f"at most {_fmt(logits.local_max_abs_diff)}; the total "
                       f"{_fmt(logits.max_abs_diff)} is inherited from earlier layers.")
    if summary.closer_to_ref in ("a", "b"):
        details.append(f"{_side_label(config, summary.closer_to_ref)} is slightly closer to "
                       f"the float64 reference at the logits.")
    return Verdict(code, headline, tuple(details))


def _reduced_precision_side(config: "ExperimentConfig", pre_taps: Sequence["TapMetrics"]
                            ) -> str | None:
    """The side further from the reference (mean error over pre taps); without a referee,
    the side configured to emulate reduced precision, if exactly one is."""
    a = [t.a_mean_rel_err_vs_ref for t in pre_taps if t.a_mean_rel_err_vs_ref is not None]
    b = [t.b_mean_rel_err_vs_ref for t in pre_taps if t.b_mean_rel_err_vs_ref is not None]
    if a and b and sum(a) != sum(b):
        return "a" if sum(a) > sum(b) else "b"
    if config.emulate_a != "none" and config.emulate_b == "none":
        return "a"
    if config.emulate_b != "none" and config.emulate_a == "none":
        return "b"
    return None
