"""Real GPU paths: run only where CUDA is present (never on CI or this machine)."""

import pytest
import torch

from explorer import ExperimentConfig, run
from explorer.precision import read_backend_flags

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_seed_on_cuda_matches_cpu_shape_and_reports_flags():
    before = read_backend_flags()
    report = run(ExperimentConfig(device="cuda"))
    assert report.environment["device"].startswith("cuda")
    assert report.environment["backend_flags_apply"] is True
    assert len(report.taps) == 7
    assert read_backend_flags() == before


def test_tf32_off_keeps_conv_inside_the_float32_bound():
    report = run(ExperimentConfig(device="cuda", conv_tf32="off", matmul_tf32="off"))
    assert report.summary.max_bound_ratio <= 1
    flags = report.environment["backend_flags"]
    assert flags.get("cudnn_conv_fp32_precision", "ieee") == "ieee" or \
        flags["cudnn_allow_tf32"] is False


def test_tf32_on_for_convs_is_seen_on_ampere_or_newer():
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        pytest.skip("TF32 needs compute capability 8.0 or newer")
    report = run(ExperimentConfig(device="cuda", conv_tf32="on", matmul_tf32="off"))
    assert report.verdict.code == "reduced_precision"
    assert "B (conv2d)" in report.verdict.headline
