"""Execution variants of a side (rows per call, threads, bfloat16 operands) from the CLI,
against plain torch computing the same thing in the same run (never one machine's numbers).
"""

import json
import threading

import pytest
import torch
from forum_reference import ForumConv, _constant_init
from variant_reference import (
    flips,
    forward,
    in_calls,
    make_network,
    max_abs_diff,
    with_threads,
)

from explorer import ExperimentConfig, preset, run
from explorer.cli import main
from explorer.precision import (
    DEFAULT_THREADS,
    STATE_LOCK,
    switch_threads,
    threads_for_new_threads,
    torch_state,
)

FORUM = dict(sizes=[256, 64, 128, 256, 4], init_scheme="constant", activation="elu",
             seed=2010, batch=16, samples=5)
# PyTorch's default init, 64 classes, 512 rows: margins small enough for bf16 to flip some.
REALISTIC = dict(sizes=[256, 64, 128, 256, 64], init_scheme="torch_default",
                 activation="gelu", seed=2010, batch=64, samples=8)
REALISTIC_FLAGS = ["--preset", "realistic", "--num-classes", "64", "--batch", "64",
                   "--samples", "8"]
OTHER = 1 if DEFAULT_THREADS != 1 else 2


def cli_json(capsys, *argv) -> dict:
    code = main(["compare", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def plain_linear(recipe, *, rows_per_call=0, threads=None, bfloat16=False):
    """The Linear network's logits as a user would run that variant, plain torch."""
    x, layers, act = make_network(**recipe)

    def logits(h):
        return forward(layers, act, h, bfloat16_operands=bfloat16)[0]

    with torch.inference_mode():
        if threads is None:
            return in_calls(logits, x, rows_per_call)
        return with_threads(threads, in_calls, logits, x, rows_per_call)


@pytest.mark.parametrize("argv, variant_a, variant_b", [
    (["--impl-b", "linear", "--rows-per-call-b", "1"], {}, {"rows_per_call": 1}),
    (["--impl-b", "linear", "--rows-per-call-b", "8"], {}, {"rows_per_call": 8}),
    (["--impl-b", "linear", "--rows-per-call-a", "10", "--rows-per-call-b", "3"],
     {"rows_per_call": 10}, {"rows_per_call": 3}),
    (["--impl-b", "linear", "--emulate-b", "bf16"], {}, {"bfloat16": True}),
], ids=["one-row", "8-row", "10-vs-3-rows", "bf16"])
def test_forum_variants_match_plain_torch(capsys, argv, variant_a, variant_b):
    data = cli_json(capsys, *argv)
    logits_a, logits_b = plain_linear(FORUM, **variant_a), plain_linear(FORUM, **variant_b)
    summary = data["summary"]
    assert summary["logits_max_abs_diff"] == max_abs_diff(logits_a, logits_b)
    assert summary["argmax_flips"] == flips(logits_a, logits_b)
    # Constant weights: all four logits of a row are one sum, so A ties in every row.
    assert summary["argmax_ties"] == summary["argmax_rows"] == 80
    assert "exactly equal in every one of the 80 rows" in summary["verdict_details"][0]


def test_thread_variant_matches_plain_torch(capsys):
    data = cli_json(capsys, "--impl-b", "linear", "--threads-a", str(OTHER))
    env = data["environment"]
    assert env["threads_a"] == OTHER and env["threads_b"] == DEFAULT_THREADS
    logits_a = plain_linear(FORUM, threads=OTHER)
    logits_b = plain_linear(FORUM, threads=DEFAULT_THREADS)
    assert data["summary"]["logits_max_abs_diff"] == max_abs_diff(logits_a, logits_b)
    assert data["summary"]["argmax_flips"] == flips(logits_a, logits_b)
    assert torch.get_num_threads() == DEFAULT_THREADS
    assert threads_for_new_threads() == DEFAULT_THREADS


@pytest.mark.parametrize("argv, variant_b", [
    (["--emulate-b", "bf16"], {"bfloat16": True}),
    (["--rows-per-call-b", "1"], {"rows_per_call": 1}),
    (["--threads-b", str(OTHER)], {"threads": OTHER}),
], ids=["bf16", "one-row", "threads"])
def test_default_init_variants_match_plain_torch(capsys, argv, variant_b):
    data = cli_json(capsys, *REALISTIC_FLAGS, "--impl-b", "linear", *argv)
    logits_a, logits_b = plain_linear(REALISTIC), plain_linear(REALISTIC, **variant_b)
    s = data["summary"]
    assert s["logits_max_abs_diff"] == max_abs_diff(logits_a, logits_b)
    assert s["argmax_flips"] == flips(logits_a, logits_b)
    assert s["argmax_rows"] == 512 and s["argmax_ties"] == 0
    # The closest call: A's smallest top-1 margin and B's largest |A-B| in that same row.
    top = logits_a.reshape(512, 64).double().topk(2, dim=1).values
    margins = top[:, 0] - top[:, 1]
    row = int(torch.argmin(margins))
    assert (s["argmax_min_margin_row"], s["argmax_min_margin"]) == (row, float(margins[row]))
    assert s["argmax_min_margin_diff"] == max_abs_diff(logits_a.reshape(512, 64)[row],
                                                       logits_b.reshape(512, 64)[row])
    # A flip needs margin <= 2 |A-B| in its row.
    assert s["argmax_flips"] <= s["argmax_close_rows"]


def test_conv2d_in_calls_follows_the_documented_layout(capsys):
    """Conv2d on (B, C, S, 1): calls of 3 positions (not a multiple of S = 5) lay them side
    by side as one (1, C, 3, 1) input, as the forum's own ModelConv would run them."""
    data = cli_json(capsys, "--rows-per-call-b", "3")
    x, layers, act = make_network(**FORUM)
    with torch.inference_mode():
        logits_a = forward(layers, act, x)[0]
        conv = ForumConv(FORUM["sizes"])
        conv.apply(_constant_init)
        logits_b = in_calls(lambda h: conv(h)[0], x, 3)
    assert data["summary"]["logits_max_abs_diff"] == max_abs_diff(logits_a, logits_b)
    assert data["summary"]["argmax_flips"] == flips(logits_a, logits_b)
    assert data["environment"]["rows_per_call_b"] == 3


@pytest.mark.parametrize("rows_per_call", [1, 5, 7])
def test_local_difference_runs_b_in_its_own_calls_on_a_input(rows_per_call):
    report = run(ExperimentConfig(impl_b="linear", rows_per_call_b=rows_per_call))
    x, layers, act = make_network(**FORUM)
    with torch.inference_mode():
        _, inputs = forward(layers, act, x)
        for i, layer in enumerate(layers):
            whole = layer(inputs[i])
            split = in_calls(layer, inputs[i], rows_per_call)
            tap = report.tap(i + 1, "pre")
            assert tap.local_max_abs_diff == max_abs_diff(whole, split), i + 1


def test_same_variant_on_both_sides_is_bit_identical():
    report = run(ExperimentConfig(impl_b="linear", rows_per_call_a=3, rows_per_call_b=3,
                                  threads_a=OTHER, threads_b=OTHER))
    assert report.verdict.code == "identical"
    assert report.summary.argmax_flips == 0


def test_rows_per_call_of_the_whole_batch_is_the_whole_batch():
    whole = run(ExperimentConfig(impl_b="linear", rows_per_call_b=80))
    assert whole.summary.max_ulp_diff == 0 and whole.environment["rows_per_call_b"] == 80


# ---------------------------------------------------------------------------------------
# Threads per side on a shared server

def test_per_side_threads_never_reach_another_session():
    inside = threading.Event()
    release = threading.Event()

    def hold() -> bool:
        inside.set()
        release.wait(timeout=60)
        return False

    varied = ExperimentConfig(impl_b="linear", threads_a=OTHER, batch=100, samples=2)
    results: dict = {}

    def first():
        results["varied"] = run(varied, should_stop=hold)

    def second():
        results["first_read"] = torch.get_num_threads()
        results["default"] = run(ExperimentConfig(impl_b="linear", seed=3))

    one = threading.Thread(target=first)
    one.start()
    assert inside.wait(timeout=60)
    two = threading.Thread(target=second)
    two.start()
    release.set()
    one.join(timeout=300)
    two.join(timeout=300)
    env = results["varied"].environment
    assert (env["threads_a"], env["threads_b"]) == (OTHER, DEFAULT_THREADS)
    default_env = results["default"].environment
    assert default_env["threads_a"] == default_env["threads_b"] == DEFAULT_THREADS
    assert threads_for_new_threads() == DEFAULT_THREADS
    assert torch.get_num_threads() == DEFAULT_THREADS
    assert STATE_LOCK.is_free()


def test_switch_threads_only_inside_a_state_that_announced_the_count():
    with pytest.raises(AssertionError, match="outside a torch_state that announced it"), \
            switch_threads(OTHER):
        pass
    with torch_state(side_threads=(OTHER,)):
        with switch_threads(OTHER) as count:
            assert count == torch.get_num_threads() == OTHER
        assert torch.get_num_threads() == DEFAULT_THREADS
    assert torch.get_num_threads() == DEFAULT_THREADS
    assert threads_for_new_threads() == DEFAULT_THREADS


# ---------------------------------------------------------------------------------------
# Words

def test_variants_read_naturally_in_the_table_and_the_verdict(capsys):
    code = main(["compare", "--preset", "batch_invariance", "--format", "table"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("A = linear [whole batch]   B = linear [one row per call]")
    assert "predictions (argmax over 80 rows): 0 changed, 80 tied in A" in out


def test_presets_set_the_variants():
    assert preset("batch_invariance").rows_per_call_b == 1
    assert preset("threads").threads_a == 1 and preset("threads").impl_b == "linear"
    assert preset("compiled").impl_b == "linear_compiled"
    bf16 = preset("bf16_predictions")
    assert bf16.init_scheme == "torch_default" and bf16.emulate_b == "bf16"


def test_csv_puts_the_decisions_on_the_logits_row(capsys):
    import csv
    import io

    code = main(["compare", "--preset", "bf16_predictions", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0
    summary = run(preset("bf16_predictions")).summary
    assert rows[-1]["tap"] == "L4 pre" and rows[-1]["argmax_rows"] == "512"
    for name in ("argmax_flips", "argmax_ties", "argmax_close_rows", "argmax_min_margin_row"):
        assert rows[-1][name] == str(getattr(summary, name)), name
    assert float(rows[-1]["argmax_min_margin"]) == summary.argmax_min_margin
    assert all(r["argmax_rows"] == "" for r in rows[:-1])


@pytest.mark.parametrize("layer, stage", [(1, "post"), (2, "pre"), (4, "pre")])
def test_worst_elements_rerun_each_side_as_the_report_did(layer, stage):
    from explorer.elements import worst_elements

    config = ExperimentConfig(impl_b="linear", rows_per_call_b=3, threads_a=OTHER)
    report = run(config)
    tap = report.tap(layer, stage)
    worst = worst_elements(config, layer, stage, k=3)
    assert worst.rows[0].ulps == tap.max_ulp_diff
    assert max(r.abs_diff for r in worst.rows) <= tap.max_abs_diff
    assert torch.get_num_threads() == DEFAULT_THREADS
