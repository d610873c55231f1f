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
    # One implementation run two ways: one line at 1280 px, as "X: this vs that".
    (preset("batch_invariance"), "nn.Linear: whole batch vs one row per call"),
    (ExperimentConfig(impl_b="linear", rows_per_call_b=8),
     "nn.Linear: whole batch vs 8 rows per call"),
    (preset("threads"), "nn.Linear: 1 thread vs default threads"),
    (preset("compiled"), "nn.Linear: eager vs torch.compile"),
    (ExperimentConfig(impl_a="linear_compiled", impl_b="linear"),
     "nn.Linear: torch.compile vs eager"),
    (ExperimentConfig(impl_b="linear", emulate_b="bf16"),
     "nn.Linear: float32 operands vs bf16 operands"),
    # Past one line (58 ordinary characters; @, W, m... count 1.5) the emulated formats go,
    # then every variant word, then the long names: the settings line says them all.
    (ExperimentConfig(emulate_b="tf32"),
     "Why do nn.Linear and a 1x1 Conv2d (tf32 operands) differ?"),
    (ExperimentConfig(impl_b="linear_compiled", emulate_b="bf16"),
     "Why do nn.Linear and compiled nn.Linear differ?"),
    (ExperimentConfig(impl_a="matmul", impl_b="linear_compiled"),
     "Why do matmul and compiled nn.Linear differ?"),
    (ExperimentConfig(emulate_a="bf16", emulate_b="tf32", impl_b="conv1d"),
     "Why do nn.Linear and a kernel-1 Conv1d differ?"),
    (ExperimentConfig(rows_per_call_b=1), "Why do nn.Linear and a 1x1 Conv2d differ?"),
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


def test_every_title_fits_one_line_at_1280():
    # Every implementation pair, emulation pair and execution variant (an audit's
    # "x @ W.T + b and nn.Linear under torch.compile", 60 characters, wrapped).
    import itertools

    from explorer.config import IMPLEMENTATIONS
    from explorer.sides import TITLE_CHARS, title_width

    for impl_a, impl_b in itertools.product(IMPLEMENTATIONS, repeat=2):
        for em_a, em_b in itertools.product(("none", "tf32", "bf16", "fp16"), repeat=2):
            for rows_a, threads_a in ((0, 0), (3, 0), (0, 1), (1, 2)):
                config = ExperimentConfig(impl_a=impl_a, impl_b=impl_b, emulate_a=em_a,
                                          emulate_b=em_b, rows_per_call_a=rows_a,
                                          threads_a=threads_a)
                text = title(config)
                assert title_width(text) <= TITLE_CHARS, text
    assert title_width("Why do x @ W.T + b and nn.Linear under torch.compile differ?") > \
        TITLE_CHARS
