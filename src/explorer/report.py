"""Results as values: per-tap metrics, a summary, the environment, the verdict.

Everything here is a frozen dataclass of primitives (plus small numpy arrays of outputs),
so a Report pickles for caches and turns into JSON, CSV or a DataFrame without surprises.
Strict JSON has no NaN or Infinity, so non-finite floats are written as the strings
"nan", "inf" and "-inf".
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from explorer.config import ExperimentConfig

if TYPE_CHECKING:  # pandas is imported only where a DataFrame is made (0.2-0.9 s)
    import pandas as pd

SIDES = ("a", "b")


@dataclass(frozen=True)
class TapMetrics:
    """One tap: layer l (1-based), stage "pre" (affine output) or "post" (after activation)."""

    layer: int
    stage: str
    width: int
    fan_in: int
    # A vs B, each run through its own network (the propagated, "total" difference).
    max_abs_diff: float
    mean_abs_diff: float
    median_abs_diff: float
    p99_abs_diff: float
    max_rel_diff: float
    mean_rel_diff: float
    median_rel_diff: float
    p99_rel_diff: float
    max_ulp_diff: float
    mean_ulp_diff: float
    median_ulp_diff: float
    p99_ulp_diff: float
    max_bits: float
    mean_bits: float
    diff_nan_count: int  # elements whose difference is NaN (a NaN on either side)
    # Magnitudes, per side.
    max_abs_value: float
    mean_abs_value: float
    rms_value: float
    headroom_bits: float
    nonfinite_count: int
    b_max_abs_value: float
    b_mean_abs_value: float
    b_rms_value: float
    b_headroom_bits: float
    b_nonfinite_count: int
    # Against the referee (None when there is none).
    ref_max_abs_value: float | None
    a_max_rel_err_vs_ref: float | None
    a_mean_rel_err_vs_ref: float | None
    a_median_rel_err_vs_ref: float | None
    b_max_rel_err_vs_ref: float | None
    b_mean_rel_err_vs_ref: float | None
    b_median_rel_err_vs_ref: float | None
    closer_to_ref: str | None  # "a", "b" or "tie", by the max errors vs the reference above
    # The layer's own rounding (pre taps only): B's layer fed A's input.
    local_max_abs_diff: float | None
    local_max_rel_diff: float | None
    local_max_ulp_diff: float | None
    bound_max: float | None  # largest worst-case bound gamma_(n+1)*(|W||x|+|b|)
    # max of local |A-B| / (2*bound); <= 1: explained by rounding. None (unknown, never 0)
    # when the bound is vacuous or the values are not finite; bound_note says which.
    bound_ratio: float | None
    bound_ratio_p99: float | None
    condition_max: float | None
    condition_median: float | None
    # assert_close(B, A) with the dtype's default tolerances, and what it would have needed.
    assert_close_passes: bool
    needed_atol: float
    needed_rtol: float
    bits_histogram: tuple[int, ...] = ()
    # Why bound_ratio (and the per-side ratios) are None at a pre tap, in words.
    bound_note: str | None = None
    # Per side, against the exact result for its *own* input x (pre taps, referee needed):
    # max |X(x) - exact(x)| / (gamma_(n+1)(u) (|W||x| + |b|)). <= 1: X computed in the
    # compute dtype in some summation order; > 1: its products were rounded more coarsely.
    a_bound_ratio: float | None = None
    b_bound_ratio: float | None = None
    # The same error over the probabilistic bound (Higham and Mary 2019): about
    # lam sqrt(n+1) u (|W||x| + |b|), holding per element with probability 1 - 1e-6 when
    # rounding errors are independent. Typical rounding sits near or below 1 here.
    a_prob_bound_ratio: float | None = None
    b_prob_bound_ratio: float | None = None
    # Significant bits of the operand format that explains each side's error (53, 24, 11,
    # 8; None: no referee or no candidate fits), and the statistics behind it.
    a_effective_bits: int | None = None
    b_effective_bits: int | None = None
    a_effective_note: str | None = None
    b_effective_note: str | None = None
    # The format named: "float32", "TF32 or float16", "float16, whose small values ..."
    a_effective_format: str | None = None
    b_effective_format: str | None = None
    # The element with the most ULPs between A and B (row of the (rows, width) view, column),
    # and what the verdict needs to say about that same element.
    worst_ulp_row: int | None = None
    worst_ulp_col: int | None = None
    worst_ulp_a: float | None = None
    worst_ulp_b: float | None = None
    worst_ulp_rel_diff: float | None = None
    worst_ulp_condition: float | None = None  # pre: (|W||x|+|b|)/|Wx+b| there
    # post: the activation's input x (A's pre value), how far A's and B's inputs differed
    # (relative), the activation's condition |x f'(x)/f(x)| at x, and each side's own
    # activation error |f_dtype(x) - f(x)|/|f(x)| against the referee's f.
    worst_ulp_input_a: float | None = None
    worst_ulp_input_rel_diff: float | None = None
    worst_ulp_act_condition: float | None = None
    worst_ulp_act_error_a: float | None = None
    worst_ulp_act_error_b: float | None = None
    # The element with the largest |A-B|: its relative and ULP difference, and |A| there.
    worst_abs_rel_diff: float | None = None
    worst_abs_ulp_diff: float | None = None
    worst_abs_value: float | None = None

    @property
    def name(self) -> str:
        return f"L{self.layer} {self.stage}"


@dataclass(frozen=True)
class Summary:
    logits_mean_diff: float  # mean(B_logits - A_logits), computed as the forum did
    feats_sum_diff: float  # sum(B_feats - A_feats), computed as the forum did
    max_abs_diff: float  # over every tap
    max_rel_diff: float
    max_ulp_diff: float
    max_bits: float
    logits_max_abs_diff: float
    logits_max_rel_diff: float
    max_bound_ratio: float | None  # over pre taps whose bound is known
    # "a", "b" or "tie": whose max relative error against the referee at the logits
    # (a_/b_logits_max_rel_err_vs_ref, just below) is smaller.
    closer_to_ref: str | None
    a_logits_max_rel_err_vs_ref: float | None
    b_logits_max_rel_err_vs_ref: float | None
    max_condition: float | None
    nonfinite_a: int
    nonfinite_b: int
    first_nonfinite_layer: int | None
    first_nonfinite_stage: str | None = None
    # Per-side ratios against the exact result, max over pre taps (None: unknown).
    a_max_bound_ratio: float | None = None
    b_max_bound_ratio: float | None = None
    # The fewest significant bits any layer of each side behaves as having (see
    # explorer.effective): 53, 24, 11 (TF32 or float16), 8 (bfloat16); None: unknown.
    a_effective_bits: int | None = None
    b_effective_bits: int | None = None
    a_effective_format: str | None = None  # the name of that format (from the same layer)
    b_effective_format: str | None = None
    # With inf/NaN somewhere: the same maxima over the taps before the first non-finite one
    # (finite_taps of them), so a display can show what is known instead of 0 or inf.
    finite_taps: int = 0
    finite_max_abs_diff: float | None = None
    finite_max_rel_diff: float | None = None
    finite_max_ulp_diff: float | None = None
    # Does it matter? The argmax of the logits, row by row (see explorer.decisions).
    argmax_rows: int = 0  # rows compared (every logit finite on both sides)
    argmax_flips: int = 0  # rows whose predicted class differs between A and B
    argmax_ties: int = 0  # rows where A's top two logits are exactly equal
    argmax_tie_flips: int = 0  # flips in tied rows (decided by position, not value)
    argmax_close_rows: int = 0  # rows that differ with margin <= 2 x their largest |A-B|
    argmax_min_margin: float | None = None  # A's smallest top-1 minus top-2 logit
    argmax_min_margin_row: int | None = None  # its row (0-based, (batch, sample) order)
    argmax_min_margin_diff: float | None = None  # largest |A-B| in that row
    argmax_margin_ratio: float | None = None  # min over differing rows of margin / |A-B|
    argmax_margin_ratio_row: int | None = None
    argmax_skipped_rows: int = 0  # rows left out for inf/NaN logits


# Summary fields that describe the logits' rows: the CSV puts them on the logits' row.
DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(Summary)
                        if f.name.startswith("argmax_"))


@dataclass(frozen=True)
class Verdict:
    code: str  # identical | rounding | magnitude | cancellation | reduced_precision | nonfinite
    headline: str  # one sentence for the top of a page or a terminal
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    config: ExperimentConfig
    environment: dict[str, Any]
    taps: tuple[TapMetrics, ...]
    summary: Summary
    verdict: Verdict
    # Small arrays for the UI and export: logits of A, B and the reference, (rows, classes),
    # the first compare.OUTPUT_ROWS rows only.
    outputs: dict[str, np.ndarray] = field(default_factory=dict, compare=False)
    elapsed_seconds: float = 0.0  # the whole run, compiling included
    compile_seconds: float = 0.0  # of which torch.compile (0 when every layer was cached)

    def tap(self, layer: int, stage: str) -> TapMetrics:
        for t in self.taps:
            if t.layer == layer and t.stage == stage:
                return t
        raise KeyError(f"no tap at layer {layer}, stage {stage}")

    def to_dict(self) -> dict[str, Any]:
        taps = []
        for t in self.taps:
            d = dataclasses.asdict(t)
            d["bits_histogram"] = list(t.bits_histogram)
            taps.append(d)
        out = {
            "config": self.config.to_dict(),
            "environment": self.environment,
            "summary": {**dataclasses.asdict(self.summary), "verdict": self.verdict.code,
                        "verdict_text": self.verdict.headline,
                        "verdict_details": list(self.verdict.details)},
            "taps": taps,
            "elapsed_seconds": self.elapsed_seconds,
            "compile_seconds": self.compile_seconds,
            "run_seconds": self.elapsed_seconds - self.compile_seconds,  # without compiling
        }
        return jsonable(out)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_frame(self) -> "pd.DataFrame":
        """Tidy: one row per tap, one column per metric (NaN for 'not applicable')."""
        import pandas as pd

        rows = []
        for t in self.taps:
            d = dataclasses.asdict(t)
            d.pop("bits_histogram")
            rows.append(d)
        frame = pd.DataFrame(rows)
        # Whole-number fields stay whole numbers (nullable), not 24.0 next to NaN.
        for f in dataclasses.fields(TapMetrics):
            if f.name in frame and str(f.type).replace(" ", "") in ("int", "int|None"):
                frame[f.name] = frame[f.name].astype("Int64")
        frame.insert(0, "tap", [t.name for t in self.taps])
        # Decisions belong to the logits (the last tap): there, and empty elsewhere.
        for name in DECISION_FIELDS:
            value = getattr(self.summary, name)
            column = [None] * (len(frame) - 1) + [value]
            # Counts and row numbers stay whole numbers (nullable), margins are floats.
            frame[name] = pd.array(column, dtype="Int64" if isinstance(value, int)
                                   else "Float64")
        return frame


def jsonable(value: Any) -> Any:
    """Recursively make a value strict-JSON safe (non-finite floats become strings)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, (np.floating,)):
        return jsonable(float(value))
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
