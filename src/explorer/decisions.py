"""Does it matter? What the difference does to the network's decisions (argmax of logits).

Per row r of the logits (one (batch element, sample) position), with A's logits a and B's
b, both upcast to float64:

- the prediction is argmax (torch.argmax: the first index among equal maxima);
- a *flip* is a row whose prediction differs between A and B;
- A's *margin* is its top-1 minus its top-2 logit, and a *tie* a row where they are
  exactly equal (argmax then picks by position, not by value);
- diff_r = max over classes of |a - b|.

A flip needs B's winner j to overtake A's winner i: a_i - a_j <= |a_i - b_i| + |b_j - a_j|
<= 2 diff_r, and a_i - a_j >= margin_r. So no prediction can change in a row whose margin
exceeds twice its largest difference, and every flip is among the rows where it does not
(``close_rows``). Rows with an inf or NaN logit on either side are left out of every count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A flip in row r needs margin_r <= FLIP_FACTOR * diff_r (see the module docstring).
FLIP_FACTOR = 2.0


@dataclass(frozen=True)
class Decisions:
    """Summary fields about predictions (names as in Summary and the JSON contract)."""

    argmax_rows: int  # rows compared: every logit finite on both sides
    argmax_flips: int  # rows whose argmax differs between A and B
    argmax_ties: int  # rows where A's top two logits are exactly equal
    argmax_tie_flips: int = 0  # flips in tied rows: decided by position, not by value
    argmax_close_rows: int = 0  # rows that differ and whose margin <= 2 x their |A-B|
    argmax_min_margin: float | None = None  # smallest top-1 minus top-2 of A's logits
    argmax_min_margin_row: int | None = None  # the row it is in (0-based, (b, s) order)
    argmax_min_margin_diff: float | None = None  # largest |A-B| in that same row
    # Smallest margin / largest |A-B| over the rows that differ; above 2 in every row, no
    # prediction can change. None when no row differs (or fewer than two classes).
    argmax_margin_ratio: float | None = None
    argmax_margin_ratio_row: int | None = None
    argmax_skipped_rows: int = 0  # rows left out for inf/NaN logits


def argmax_decisions(logits_a: torch.Tensor, logits_b: torch.Tensor) -> Decisions:
    """Decisions from A's and B's logits, (..., classes) each, in any float dtype."""
    classes = logits_a.shape[-1]
    a = logits_a.reshape(-1, classes).to(torch.float64)  # exact for every narrower format
    b = logits_b.reshape(-1, classes).to(torch.float64)
    finite = torch.isfinite(a).all(dim=1) & torch.isfinite(b).all(dim=1)
    kept = torch.nonzero(finite).flatten()  # original row numbers of the rows compared
    a, b = a[finite], b[finite]
    rows = int(kept.numel())
    skipped = int(finite.numel()) - rows
    if rows == 0:
        return Decisions(0, 0, 0, argmax_skipped_rows=skipped)
    flipped = torch.argmax(a, dim=1) != torch.argmax(b, dim=1)
    if classes < 2:  # one class: nothing to decide between
        return Decisions(rows, 0, 0, argmax_skipped_rows=skipped)
    diff = (a - b).abs().amax(dim=1)  # both finite: equal values differ by exactly 0
    top = torch.topk(a, 2, dim=1).values
    margin = top[:, 0] - top[:, 1]
    tied = margin == 0
    differs = diff > 0
    close = differs & (margin <= FLIP_FACTOR * diff)
    smallest = int(torch.argmin(margin))  # first row of the smallest margin
    fields = dict(
        argmax_rows=rows, argmax_flips=int(flipped.sum()), argmax_ties=int(tied.sum()),
        argmax_tie_flips=int((flipped & tied).sum()), argmax_close_rows=int(close.sum()),
        argmax_min_margin=float(margin[smallest]), argmax_min_margin_row=int(kept[smallest]),
        argmax_min_margin_diff=float(diff[smallest]), argmax_skipped_rows=skipped)
    if bool(differs.any()):
        ratio = torch.where(differs, margin / torch.where(differs, diff, 1.0), torch.inf)
        lowest = int(torch.argmin(ratio))
        fields.update(argmax_margin_ratio=float(ratio[lowest]),
                      argmax_margin_ratio_row=int(kept[lowest]))
    return Decisions(**fields)
