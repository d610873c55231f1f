"""decisions: flips, ties and margins of the logits' argmax, on hand-made logits."""

import math

import pytest
import torch

from explorer.decisions import argmax_decisions


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_hand_computed_rows():
    a = t([[3.0, 1.0, 0.0],   # margin 2, diff 0.5 -> ratio 4: cannot flip
           [1.0, 1.0, 0.0],   # tie in A; B moves class 1 up: flips (by position)
           [2.0, 1.5, 0.0],   # margin 0.5, diff 0.5 -> close, and B flips
           [5.0, 0.0, 0.0]])  # identical in B
    b = t([[2.5, 1.0, 0.0],
           [1.0, 1.5, 0.0],
           [1.5, 2.0, 0.0],
           [5.0, 0.0, 0.0]])
    d = argmax_decisions(a, b)
    assert d.argmax_rows == 4 and d.argmax_skipped_rows == 0
    assert d.argmax_flips == 2  # rows 1 and 2
    assert d.argmax_ties == 1 and d.argmax_tie_flips == 1  # row 1
    assert d.argmax_close_rows == 2  # rows 1 (0 <= 2 x 0.5) and 2 (0.5 <= 2 x 0.5)
    assert d.argmax_min_margin == 0.0 and d.argmax_min_margin_row == 1
    assert d.argmax_min_margin_diff == 0.5
    # margin / diff over rows that differ: row 0: 4, row 1: 0, row 2: 1
    assert d.argmax_margin_ratio == 0.0 and d.argmax_margin_ratio_row == 1


def test_no_flip_possible_when_every_margin_exceeds_twice_the_difference():
    a = t([[10.0, 0.0], [0.0, 4.0]])
    b = t([[9.0, 0.5], [0.0, 4.25]])  # diffs 1 and 0.25, margins 10 and 4
    d = argmax_decisions(a, b)
    assert d.argmax_flips == 0 and d.argmax_close_rows == 0 and d.argmax_ties == 0
    assert d.argmax_margin_ratio == 10.0 and d.argmax_margin_ratio_row == 0  # 10/1 < 4/0.25
    assert d.argmax_min_margin == 4.0 and d.argmax_min_margin_row == 1
    assert d.argmax_min_margin_diff == 0.25


def test_identical_logits_have_no_ratio():
    a = t([[1.0, 2.0], [3.0, 3.0]])
    d = argmax_decisions(a, a.clone())
    assert (d.argmax_flips, d.argmax_close_rows, d.argmax_ties) == (0, 0, 1)
    assert d.argmax_margin_ratio is None and d.argmax_margin_ratio_row is None


def test_constant_rows_are_ties_in_every_row():
    a = torch.full((6, 4), 7.5)
    b = a + torch.tensor([0.0, 0.0, 0.5, 0.0])  # B's third logit wins in every row
    d = argmax_decisions(a, b)
    assert d.argmax_ties == 6 and d.argmax_flips == 6 and d.argmax_tie_flips == 6


def test_non_finite_rows_are_left_out():
    a = t([[1.0, 0.0], [math.nan, 0.0], [math.inf, 0.0], [0.0, 2.0]])
    b = t([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, -math.inf]])
    d = argmax_decisions(a, b)
    assert d.argmax_rows == 1 and d.argmax_skipped_rows == 3
    assert d.argmax_min_margin_row == 0  # numbered as in the input
    nothing = argmax_decisions(t([[math.nan, 1.0]]), t([[1.0, 1.0]]))
    assert nothing.argmax_rows == 0 and nothing.argmax_min_margin is None


def test_one_class_has_nothing_to_decide():
    d = argmax_decisions(t([[1.0], [2.0]]), t([[1.5], [2.0]]))
    assert d.argmax_rows == 2 and d.argmax_flips == 0 and d.argmax_min_margin is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_every_flip_is_a_close_row_against_an_independent_count(dtype):
    generator = torch.Generator().manual_seed(7)
    a = torch.randn(500, 5, generator=generator).to(dtype)
    b = (a.double() + 0.3 * torch.randn(500, 5, generator=generator, dtype=torch.float64)
         ).to(dtype)
    d = argmax_decisions(a, b)
    flips = sum(int(torch.argmax(a[r]) != torch.argmax(b[r])) for r in range(500))
    assert d.argmax_flips == flips > 0
    assert d.argmax_flips <= d.argmax_close_rows <= d.argmax_rows == 500
    # The smallest margin, recomputed row by row in Python floats.
    margins = []
    for r in range(500):
        top = sorted((float(v) for v in a[r]), reverse=True)
        margins.append(top[0] - top[1])
    assert d.argmax_min_margin == min(margins)
    assert d.argmax_min_margin_row == margins.index(min(margins))
