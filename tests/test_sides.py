"""sides: a side's variants, read once from the config and described in the same words
everywhere (titles, verdict, CLI table)."""

import pytest

from explorer import ExperimentConfig, preset
from explorer.sides import Side, side_label, sides, title
from explorer.ui.render import settings_line


def test_sides_read_every_variant_from_the_config():
    a, b = sides(ExperimentConfig(impl_b="linear_compiled", emulate_b="bf16",
                                  rows_per_call_a=4, threads_b=2))
    assert a == Side("a", "linear", "none", 4, 0)
    assert b == Side("b", "linear_compiled", "bf16", 0, 2)
    assert b.compiled and not a.compiled
    assert a.threads_setting(3) == 3 and b.threads_setting(3) == 2


@pytest.mark.parametrize("config, expected", [
    (ExperimentConfig(), "Why do nn.Linear and a 1x1 Conv2d differ?"),
    (ExperimentConfig(impl_b="linear"), "nn.Linear against itself"),
    (preset("batch_invariance"),
     "Why do nn.Linear (whole batch) and nn.Linear (one row per call) differ?"),
    (ExperimentConfig(impl_b="linear", rows_per_call_b=8),
     "Why do nn.Linear (whole batch) and nn.Linear (8 rows per call) differ?"),
    (preset("threads"),
     "Why do nn.Linear (1 thread) and nn.Linear (default threads) differ?"),
    (preset("compiled"), "Why do nn.Linear and nn.Linear under torch.compile differ?"),
    (ExperimentConfig(impl_b="linear", emulate_b="bf16"),
     "Why do nn.Linear and nn.Linear (bf16 operands) differ?"),
    # The same variant on both sides tells nothing apart: not in the title.
    (ExperimentConfig(impl_b="linear", rows_per_call_a=3, rows_per_call_b=3),
     "nn.Linear against itself"),
])
def test_titles_read_naturally(config, expected):
    assert title(config) == expected


def test_side_labels_name_what_tells_the_sides_apart():
    config = ExperimentConfig(impl_b="linear", rows_per_call_b=1, threads_a=1)
    assert side_label(config, "a") == "A (linear, whole batch, 1 thread)"
    assert side_label(config, "b") == "B (linear, one row per call, default threads)"
    assert side_label(ExperimentConfig(emulate_b="tf32"), "b", emulation=True) == \
        "B (conv2d, tf32)"
    # rows per call at or above the batch is the whole batch
    assert side_label(ExperimentConfig(rows_per_call_b=500), "b") == "B (conv2d, whole batch)"


def test_settings_line_lists_each_sides_variants():
    line = settings_line(ExperimentConfig(impl_b="linear", rows_per_call_b=1, threads_a=1))
    assert "A 1 thread; B one row per call" in line
