"""The verdict's "does it matter?" sentences: every number is of the rows it names; the
origin sentence only where every affine layer agrees bit for bit. Synthetic reports."""

from test_verdict import FLOAT64, summary_of, tap

from explorer import ExperimentConfig
from explorer.verdict import decision_sentence, judge

CONFIG = ExperimentConfig(init_scheme="torch_default")
TAPS = [tap(1, "pre"), tap(1, "post"), tap(2, "pre")]


def sentence(config=CONFIG, **summary) -> str | None:
    return decision_sentence(config, summary_of(TAPS, **summary))


def test_flips_are_counted_with_the_closest_call_of_one_row():
    text = sentence(argmax_rows=80, argmax_flips=3, argmax_close_rows=5,
                    argmax_min_margin=0.002, argmax_min_margin_row=17,
                    argmax_min_margin_diff=0.004, argmax_margin_ratio=0.5,
                    argmax_margin_ratio_row=17)
    assert text == ("Predictions: the difference changes 3 of 80 predictions (argmax of the "
                    "logits); the smallest top-1 margin of A's logits is 0.002 (row 17), "
                    "where A and B differ by at most 0.004.")


def test_no_change_possible_names_the_ratio_over_every_row():
    text = sentence(argmax_rows=80, argmax_margin_ratio=40.5, argmax_margin_ratio_row=3,
                    argmax_min_margin=0.5, argmax_min_margin_row=9,
                    argmax_min_margin_diff=0.001)
    assert text.startswith("Predictions: no prediction can change: in every row A's top-1 "
                           "margin is at least 40.5x that row's largest |A-B| (a change "
                           "needs less than 2x)")
    assert "0.5 (row 9), where A and B differ by at most 0.001" in text


def test_close_rows_without_a_flip():
    text = sentence(argmax_rows=80, argmax_close_rows=2, argmax_margin_ratio=1.5,
                    argmax_min_margin=0.003, argmax_min_margin_row=4,
                    argmax_min_margin_diff=0.002)
    assert "none of the 80 changes, but in 2 of them one could" in text


def test_constant_weights_tie_every_row_and_the_sentence_says_why():
    text = sentence(ExperimentConfig(), argmax_rows=80, argmax_ties=80, argmax_flips=0,
                    argmax_min_margin=0.0, argmax_min_margin_row=0, argmax_min_margin_diff=0.0)
    assert "exactly equal in every one of the 80 rows (with constant weights every logit " \
           "of a row is the same sum)" in text
    assert "B's argmax agrees in every row" in text


def test_skipped_rows_and_single_class_runs():
    text = sentence(argmax_rows=60, argmax_skipped_rows=20, argmax_flips=1,
                    argmax_close_rows=1, argmax_min_margin=0.1, argmax_min_margin_row=2,
                    argmax_min_margin_diff=0.2, argmax_margin_ratio=0.5)
    assert "changes 1 of 60 predictions (argmax of the logits) (20 rows with inf/NaN logits " \
           "left out)" in text
    assert sentence(ExperimentConfig(num_classes=1), argmax_rows=80) is None
    assert sentence(argmax_rows=0) is None


def test_decision_is_the_first_finding_and_origin_needs_bit_equal_layers():
    # Layers agree to the last bit fed the same input; the first difference is after an
    # activation: the origin sentence says so, with that tap's own numbers.
    taps = [tap(1, "pre", max_ulp_diff=0.0, local_max_ulp_diff=0.0, local_max_abs_diff=0.0,
                bound_ratio=0.0),
            tap(1, "post", max_ulp_diff=1.0, worst_ulp_rel_diff=6e-8),
            tap(2, "pre", max_ulp_diff=2.0, local_max_ulp_diff=0.0, local_max_abs_diff=0.0,
                bound_ratio=0.0)]
    summary = summary_of(taps, argmax_rows=80, argmax_margin_ratio=1e5,
                         argmax_min_margin=0.1, argmax_min_margin_row=1,
                         argmax_min_margin_diff=1e-6)
    verdict = judge(CONFIG, taps, summary, FLOAT64)
    assert verdict.details[0].startswith("Predictions: no prediction can change")
    origin = [d for d in verdict.details if d.startswith("Origin:")]
    assert origin and "first difference is at layer 1 (post), after the elu: 1 ULP " \
                      "(relative 6e-08)" in origin[0]
    # A layer whose local difference is not zero: no origin sentence.
    taps[2] = tap(2, "pre", max_ulp_diff=2.0, local_max_ulp_diff=1.0)
    assert not any(d.startswith("Origin:") for d in judge(CONFIG, taps, summary,
                                                          FLOAT64).details)
