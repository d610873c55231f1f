"""ExperimentConfig validation, presets, and parsing from text (URL, CLI)."""

import math

import pytest

from explorer import limits
from explorer.config import (
    PRESETS,
    ExperimentConfig,
    config_from_strings,
    config_from_strings_lenient,
    config_to_strings,
    default_widths,
    parse_field,
    preset,
)


def test_defaults_are_the_forum_case():
    c = ExperimentConfig()
    assert c.layer_sizes == (256, 64, 128, 256, 4)
    assert (c.activation, c.init_scheme, c.init_constant) == ("elu", "constant", 1.0)
    assert (c.batch, c.samples, c.seed, c.dtype) == (16, 5, 2010, "float32")
    assert (c.impl_a, c.impl_b) == ("linear", "conv2d")
    assert preset("seed") == c
    assert next(iter(PRESETS)) == "seed"


def test_default_widths_double_and_cap():
    assert default_widths(3) == (64, 128, 256)
    assert default_widths(1) == (64,)
    assert default_widths(7) == (64, 128, 256, 512, 1024, 1024, 1024)


def test_config_is_hashable_and_frozen():
    c = ExperimentConfig()
    assert hash(c) == hash(ExperimentConfig())
    with pytest.raises(AttributeError):
        c.depth = 4  # type: ignore[misc]


@pytest.mark.parametrize("changes, fragments", [
    ({"depth": -1}, ["depth=-1", "from 1 to 16", "default 3"]),
    ({"depth": 0}, ["depth=0", "from 1 to 16"]),
    ({"activation": "swish"}, ["activation='swish'", "elu, sigmoid"]),
    ({"init_constant": math.nan}, ["init_constant=nan", "finite"]),
    ({"init_constant": 1e9}, ["init_constant=1000000000.0", "1e-06 to 100"]),
    ({"init_constant": 0.0}, ["init_constant=0.0"]),
    ({"dtype": "float8"}, ["dtype='float8'", "float32, float64"]),
    ({"impl_b": "einsum"}, ["impl_b='einsum'", "linear, conv2d, conv1d"]),
    ({"widths": (64, 64)}, ["one width per hidden layer (depth=3)"]),
    ({"widths": (64, 0, 64)}, ["from 1 to 4096"]),
    ({"batch": 0}, ["batch=0", "from 1 to 65536"]),
    ({"batch": 1000, "samples": 1000}, ["batch*samples=1000000", "at most 65536 rows"]),
    ({"emulate_b": "tf32", "dtype": "float16"}, ["emulate_b='tf32'", "dtype is float16",
                                                 "Set dtype=float32"]),
    ({"seed": -5}, ["seed=-5"]),
    ({"depth": True}, ["depth=True", "whole number"]),
])
def test_validation_messages_name_field_value_and_fix(changes, fragments):
    with pytest.raises(ValueError) as excinfo:
        ExperimentConfig(**changes)
    for fragment in fragments:
        assert fragment in str(excinfo.value)


def test_oversized_config_is_refused_before_allocation():
    with pytest.raises(ValueError) as excinfo:
        ExperimentConfig(depth=3, widths=(256, 256, 256), batch=65536, samples=1)
    message = str(excinfo.value)
    assert "over the 256.0 MB budget (rows=65536" in message
    assert "Lower batch*samples (rows)" in message and "EXPLORER_MAX_BYTES" in message


def test_a_network_over_budget_at_one_row_is_told_to_shrink_not_to_lower_rows():
    # 16 layers of 4096: ~268M parameters, gigabytes before the first row. Lowering batch
    # or samples cannot help, so the message must not suggest it (an audit found it did).
    with pytest.raises(ValueError) as excinfo:
        ExperimentConfig(depth=16, widths=(4096,) * 16, batch=4096, samples=16)
    message = str(excinfo.value)
    assert "even for one row, over the 256.0 MB budget" in message
    assert "parameters, widest layer=4096). Lower the widths or the depth" in message
    assert "batch" not in message and "EXPLORER_MAX_BYTES" in message


def test_budget_can_be_raised_by_environment(monkeypatch):
    big = dict(depth=8, widths=(1024,) * 8, batch=4096, samples=1)
    with pytest.raises(ValueError, match="budget"):
        ExperimentConfig(**big)
    monkeypatch.setenv("EXPLORER_MAX_FLOPS", "1e13")
    monkeypatch.setenv("EXPLORER_MAX_BYTES", str(4 * 2**30))
    assert ExperimentConfig(**big).rows == 4096


def test_estimate_counts_parameters_exactly():
    est = limits.estimate(ExperimentConfig())
    assert est.parameters == 256 * 64 + 64 + 64 * 128 + 128 + 128 * 256 + 256 + 256 * 4 + 4


def test_preset_unknown_name():
    with pytest.raises(ValueError, match="preset='nope'.*seed"):
        preset("nope")


def test_every_preset_is_valid():
    for name, p in PRESETS.items():
        assert isinstance(p.config(), ExperimentConfig), name


def test_parse_field_types_and_errors():
    assert parse_field("depth", " 4 ") == 4
    assert parse_field("init_constant", "1e-3") == 1e-3
    assert parse_field("widths", "32, 64") == (32, 64)
    assert parse_field("widths", "") == ()
    assert parse_field("cudnn_benchmark", "true") is True
    with pytest.raises(ValueError, match="depth='four'.*whole number"):
        parse_field("depth", "four")
    # A value that is not a number at all still says what is allowed: range and default.
    with pytest.raises(ValueError, match=r"^batch='1e308' is not allowed: it must be a whole "
                                         r"number from 1 to 65536\. Pick a value in that "
                                         r"range \(default 16\)\.$"):
        parse_field("batch", "1e308")
    with pytest.raises(ValueError, match=r"init_constant='one' is not allowed: its magnitude "
                                         r"must be a finite number from 1e-06 to 100"):
        parse_field("init_constant", "one")
    with pytest.raises(ValueError, match="widths='64,abc' is not allowed: expected comma-"
                                         "separated whole numbers from 1 to 4096, one per "
                                         "hidden layer"):
        parse_field("widths", "64,abc")
    with pytest.raises(ValueError, match="setting='colour'"):
        parse_field("colour", "red")


def test_strings_round_trip():
    c = ExperimentConfig(activation="sigmoid", init_constant=0.001, depth=2, dtype="float64",
                         cudnn_benchmark=True)
    text = config_to_strings(c)
    assert text == {"activation": "sigmoid", "init_constant": "0.001", "depth": "2",
                    "dtype": "float64", "cudnn_benchmark": "true"}
    assert config_from_strings(text) == c
    assert config_to_strings(ExperimentConfig()) == {}


def test_changing_depth_drops_the_old_widths():
    c = config_from_strings({"depth": "5"}, base=ExperimentConfig(widths=(8, 8, 8)))
    assert c.hidden_widths == default_widths(5)


def test_lenient_parsing_keeps_good_values_and_reports_bad_ones():
    config, warnings = config_from_strings_lenient(
        {"depth": "-3", "activation": "sigmoid", "device": "<b>tpu</b>", "init_constant": "nan"})
    assert config.activation == "sigmoid"
    assert config.depth == 3 and config.init_constant == 1.0
    joined = " ".join(warnings)
    assert "depth=-3" in joined and "Using depth=3 instead" in joined
    assert "init_constant=nan" in joined
    assert "device='<b>tpu</b>'" in joined and config.device == "cpu"
    assert len(warnings) == 3


def test_lenient_parsing_falls_back_from_an_unavailable_device():
    config, warnings = config_from_strings_lenient({"device": "cuda:3"})
    if config.device == "cuda:3":
        pytest.skip("this machine has a cuda:3")
    assert config.device == "cpu"
    assert "device='cuda:3' is not available" in warnings[0]


def test_device_name_format_is_validated():
    with pytest.raises(ValueError, match="device='gpu0'.*cpu, cuda, cuda:N or mps"):
        ExperimentConfig(device="gpu0")


def test_lenient_parsing_depth_and_widths_together():
    config, warnings = config_from_strings_lenient({"widths": "8,8", "depth": "2"})
    assert warnings == [] and config.hidden_widths == (8, 8)


def test_max_rows_is_the_largest_config_the_budget_accepts():
    sizes = (1024, 1024, 1024, 4)
    rows = limits.max_rows(sizes, "float32")
    fits = ExperimentConfig(input_dim=1024, depth=2, widths=(1024, 1024), batch=rows,
                            samples=1)
    assert fits.rows == rows
    with pytest.raises(ValueError, match="budget"):
        ExperimentConfig(input_dim=1024, depth=2, widths=(1024, 1024), batch=rows + 1,
                         samples=1)
    tiny = limits.Budget(max_bytes=1.0, max_flops=1.0)
    assert limits.max_rows(sizes, "float32", tiny) == 0
