"""export: CSV and JSON parse, the HTML is standalone, the reproduce script prints the
library's numbers exactly."""

import io
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from explorer import ExperimentConfig, charts, preset, run
from explorer.config import EMULATIONS, IMPLEMENTATIONS, INIT_SCHEMES, INPUTS
from explorer.export import (
    OUTPUT_LINES,
    charts_html,
    expected_output,
    report_csv,
    report_json,
    reproduce_script,
)


def test_csv_one_row_per_tap(seed_report, forum):
    frame = pd.read_csv(io.StringIO(report_csv(seed_report)))
    assert list(frame["tap"]) == [t.name for t in seed_report.taps]
    # The logits' largest difference, as plain torch computes it on this machine.
    assert frame.loc[frame["tap"] == "L4 pre", "max_abs_diff"].item() == \
        forum.logits_max_abs_diff
    assert frame["bound_ratio"].isna().sum() == seed_report.config.depth  # post taps


def test_json_is_the_cli_contract(seed_report):
    data = json.loads(report_json(seed_report))
    assert {"config", "environment", "summary", "taps"} <= set(data)
    assert data["summary"]["feats_sum_diff"] == seed_report.summary.feats_sum_diff
    assert data["summary"]["verdict"] == seed_report.verdict.code
    assert [t["stage"] for t in data["taps"][:2]] == ["pre", "post"]


def test_json_strict_with_non_finite():
    report = run(preset("half"))
    data = json.loads(report_json(report))  # would raise on bare NaN / Infinity
    assert data["summary"]["logits_mean_diff"] == "nan"


def test_charts_html_is_standalone_and_escaped(seed_report):
    page = charts_html(charts.all_figures(seed_report), seed_report, title="<b>x</b>")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('class="plotly-graph-div"') == 6
    assert not re.search(r"<script[^>]*\bsrc=", page)  # nothing fetched: works offline
    assert len(page) > 1_000_000  # plotly.js is inlined
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "Equivalent up to rounding" in page


def _run_script(config: ExperimentConfig, tmp_path) -> str:
    path = tmp_path / "reproduce.py"
    path.write_text(reproduce_script(config))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("config", [
    preset("seed"),
    preset("squashed"),
    ExperimentConfig(activation="sigmoid", init_constant=0.001, emulate_b="tf32"),
    ExperimentConfig(impl_a="tensordot", impl_b="conv1d", emulate_a="bf16",
                     init_scheme="torch_default", activation="gelu", depth=2),
], ids=["seed", "sigmoid-0.001", "sigmoid-tf32", "tensordot-conv1d-bf16-torch-default"])
def test_reproduce_script_prints_the_reports_numbers(config, tmp_path):
    report = run(config)
    out = _run_script(config, tmp_path)
    assert out == expected_output(report)
    printed = dict(re.match(r"(.+?)\s+= (.+)$", line).groups() for line in out.splitlines())
    for label, field in OUTPUT_LINES:
        assert float(printed[label]) == getattr(report.summary, field)  # exactly


def test_seed_numbers_are_the_forums_kind(seed_report, forum):
    text = expected_output(seed_report)
    # Exactly what the forum's own two networks print here (plain torch, same process).
    assert f"mean(logits_B - logits_A) = {forum.mean_diff!r}" in text
    assert f"sum(feats_B - feats_A)    = {forum.feats_sum_diff!r}" in text


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("emulation", EMULATIONS)
def test_script_compiles_for_every_implementation(impl, emulation):
    for scheme in INIT_SCHEMES:
        for inputs in INPUTS:
            config = ExperimentConfig(impl_a=impl, emulate_b=emulation, init_scheme=scheme,
                                      input_distribution=inputs)
            script = reproduce_script(config)
            compile(script, "reproduce.py", "exec")
            assert not re.search(r"^\s*(import|from) explorer", script, re.M)


def test_script_sets_cuda_switches_only_for_cuda():
    cpu = reproduce_script(ExperimentConfig(conv_tf32="off"))
    assert "fp32_precision" not in cpu
    # Built without validation of the device's presence: the text is all we check.
    cuda = reproduce_script(ExperimentConfig(device="cuda:0", conv_tf32="off",
                                             matmul_tf32="on"))
    assert "torch.backends.cudnn.conv.fp32_precision = 'ieee'" in cuda
    assert "torch.backends.cuda.matmul.fp32_precision = 'tf32'" in cuda
