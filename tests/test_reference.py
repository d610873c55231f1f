"""The referee against an independent computation, and its honesty at float64."""

import numpy as np
import pytest

from explorer import ExperimentConfig, run
from explorer.models import make_input_and_parameters
from explorer.reference import _LONGDOUBLE_BITS


def numpy_forward(config):
    """The network in plain numpy float64: no torch kernels, no library code paths."""
    x, params = make_input_and_parameters(config)
    h = x.numpy().astype(np.float32).astype(np.float64).reshape(-1, config.input_dim)
    for i, (w, b) in enumerate(params):
        w = w.numpy().astype(np.float32).astype(np.float64)
        b = b.numpy().astype(np.float32).astype(np.float64)
        h = np.einsum("ri,oi->ro", h, w) + b
        if i < len(params) - 1:
            if config.activation == "elu":
                h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
            elif config.activation == "tanh":
                h = np.tanh(h)
    return h


@pytest.mark.parametrize("config", [
    ExperimentConfig(),
    ExperimentConfig(activation="tanh", init_scheme="normal", init_constant=0.1),
])
def test_float64_reference_matches_independent_numpy(config):
    report = run(config)
    expected = numpy_forward(config)
    got = report.outputs["logits_ref"]
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-13 * np.max(np.abs(expected))
    # and the float32 players are judged against it
    a_err = np.max(np.abs(report.outputs["logits_a"] - expected) / np.abs(expected))
    assert a_err == pytest.approx(report.summary.a_logits_max_rel_err_vs_ref, rel=1e-6)


def test_float32_errors_vs_reference_are_float32_sized(seed_report):
    for tap in seed_report.taps:
        assert 0 < tap.a_max_rel_err_vs_ref < 1e-3
        assert tap.a_median_rel_err_vs_ref <= tap.a_max_rel_err_vs_ref
    assert seed_report.environment["referee"] == "float64"


@pytest.mark.skipif(_LONGDOUBLE_BITS <= 53, reason="numpy longdouble is float64 here")
def test_float64_compute_gets_an_extended_precision_referee():
    report = run(ExperimentConfig(dtype="float64", activation="tanh",
                                  init_scheme="torch_default"))
    assert report.environment["referee"].startswith("longdouble")
    errors = [t.a_max_rel_err_vs_ref for t in report.taps]
    assert all(e is not None for e in errors)
    # float64 players are off by float64 rounding (~1e-16 scaled), not zero and not float32.
    assert max(errors) > 0 and max(errors) < 1e-9


def test_no_referee_is_said_not_faked():
    report = run(ExperimentConfig(dtype="float64", activation="gelu"))
    assert report.environment["referee"] == "none"
    assert "no extended-precision erf" in report.environment["referee_note"]
    assert all(t.a_max_rel_err_vs_ref is None for t in report.taps)
    assert any("No referee" in d for d in report.verdict.details)
    assert "logits_ref" not in report.outputs


def test_which_side_is_closer_is_consistent_with_the_errors(seed_report):
    for t in seed_report.taps:
        if t.closer_to_ref == "a":
            assert t.a_mean_rel_err_vs_ref < t.b_mean_rel_err_vs_ref
        elif t.closer_to_ref == "b":
            assert t.b_mean_rel_err_vs_ref < t.a_mean_rel_err_vs_ref
