"""Implementations of one MLP built from one parameter set."""

import itertools

import pytest
import torch

from explorer import ExperimentConfig, run
from explorer.config import IMPLEMENTATIONS
from explorer.models import (
    Network,
    from_native,
    make_input_and_parameters,
    to_native,
    weight_for,
)


def test_weight_for_layouts_hold_the_same_numbers():
    w = torch.arange(6.0).reshape(3, 2)
    assert weight_for("conv2d", w).shape == (3, 2, 1, 1)
    assert weight_for("conv1d", w).shape == (3, 2, 1)
    assert weight_for("linear", w) is w
    assert torch.equal(weight_for("conv2d", w).flatten(), w.flatten())


def test_weight_for_rejects_wrong_shapes_and_names():
    with pytest.raises(ValueError, match=r"shape \(out, in\), got \(3, 2, 1\)"):
        weight_for("conv2d", torch.zeros(3, 2, 1))
    with pytest.raises(ValueError, match="implementation='einsum'"):
        weight_for("einsum", torch.zeros(3, 2))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_layouts_are_pure_permutations(impl):
    x = torch.randn(2, 3, 4)
    assert torch.equal(from_native(impl, to_native(impl, x)), x)


def test_conv2d_native_layout_is_the_forums():
    x = torch.randn(2, 5, 7)
    assert to_native("conv2d", x).shape == (2, 7, 5, 1)


def _outputs(config):
    x, params = make_input_and_parameters(config)
    dtype = getattr(torch, config.dtype)
    out = {}
    for impl in IMPLEMENTATIONS:
        net = Network(impl, params, config.activation, torch.device("cpu"), dtype)
        with torch.no_grad():
            out[impl] = net.forward(x.to(dtype))
    return out


@pytest.mark.parametrize("config", [
    ExperimentConfig(dtype="float64"),
    ExperimentConfig(dtype="float64", activation="tanh", init_scheme="torch_default", batch=4),
])
def test_every_pair_agrees_within_1e12_in_float64(config):
    # Relative to the tensor's largest value: an element that cancels to near zero may
    # carry a larger elementwise relative error in any order of summation.
    outputs = _outputs(config)
    for a, b in itertools.combinations(IMPLEMENTATIONS, 2):
        for ta, tb in zip(outputs[a], outputs[b]):
            rel = ((ta - tb).abs().max() / ta.abs().max()).item()
            assert rel <= 1e-12, (a, b, rel)


def test_integer_weights_and_inputs_with_identity_are_exactly_equal():
    # depth 2 keeps every partial sum below 2^24, so float32 sums integers exactly.
    config = ExperimentConfig(activation="identity", input_distribution="integers", depth=2)
    outputs = _outputs(config)
    for a, b in itertools.combinations(IMPLEMENTATIONS, 2):
        assert torch.equal(outputs[a][0], outputs[b][0]), (a, b)
        assert torch.equal(outputs[a][1], outputs[b][1]), (a, b)


def test_exact_preset_reports_zero_difference():
    report = run(ExperimentConfig(activation="identity", input_distribution="integers", depth=2))
    assert report.summary.max_abs_diff == 0.0
    assert report.summary.max_ulp_diff == 0.0
    assert report.verdict.code == "identical"


def test_parameter_init_schemes():
    c = ExperimentConfig(init_scheme="constant_zero_bias", init_constant=0.5, depth=1)
    _, params = make_input_and_parameters(c)
    assert torch.all(params[0][0] == 0.5) and torch.all(params[0][1] == 0)
    _, params = make_input_and_parameters(c.replace(init_scheme="torch_default"))
    bound = 1 / 256**0.5
    assert params[0][0].abs().max() <= bound and params[0][0].std() > 0
    _, params = make_input_and_parameters(c.replace(init_scheme="normal", init_constant=0.01))
    assert abs(params[0][0].std().item() - 0.01) < 0.002


def test_building_networks_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(ExperimentConfig(init_scheme="torch_default", batch=2))
    assert torch.equal(torch.rand(3), expected)
