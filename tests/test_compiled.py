"""linear_compiled: torch.compile end to end, compiled once and kept, refused clearly where
it cannot run. Compiling takes seconds (tens cold), so most tests here are slow."""

import json

import pytest
import torch
from forum_reference import ForumLinear, _constant_init
from variant_reference import flips, max_abs_diff

from explorer import ExperimentConfig, preset, run
from explorer import compiled as compiled_module
from explorer.cli import main
from explorer.compiled import CompiledLayers, unavailable_reason

COMPILED = ExperimentConfig(impl_b="linear_compiled")


def test_refused_with_what_to_do_when_compile_is_off(monkeypatch, capsys):
    monkeypatch.setenv("EXPLORER_DISABLE_COMPILE", "1")
    with pytest.raises(ValueError, match=r"needs torch.compile, which is not available: this "
                                         r"server turned torch.compile off"):
        run(COMPILED)
    code = main(["compare", "--preset", "compiled"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "Choose impl 'linear' (the same network, eager)" in err


def test_reasons_name_the_missing_piece(monkeypatch):
    assert "not mps" in unavailable_reason(torch.device("mps"))
    monkeypatch.setattr(compiled_module.shutil, "which", lambda name: None)
    assert "needs a C++ compiler" in unavailable_reason(torch.device("cpu"))


@pytest.mark.slow
def test_cli_end_to_end_matches_torch_compile_of_the_forum_network(capsys):
    code = main(["compare", "--preset", "compiled", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["environment"]["compile_backend_a"] == "eager"
    assert data["environment"]["compile_backend_b"] == "inductor"
    assert data["compile_seconds"] <= data["elapsed_seconds"]
    # Independent: the forum's Linear model, eager and through torch.compile as a whole.
    torch.manual_seed(2010)
    x = torch.randn(16, 5, 256)
    net = ForumLinear([256, 64, 128, 256, 4])
    net.apply(_constant_init)
    with torch.inference_mode():
        eager = net(x)[0]
        compiled = torch.compile(net, backend="inductor", dynamic=False)(x)[0]
    assert data["summary"]["logits_max_abs_diff"] == max_abs_diff(eager, compiled)
    assert data["summary"]["argmax_flips"] == flips(eager, compiled)
    assert data["summary"]["verdict"] in ("identical", "rounding", "magnitude", "cancellation")


@pytest.mark.slow
def test_a_rerun_pays_no_compile_and_the_cache_is_shared():
    first = run(COMPILED.replace(seed=11))
    size = len(compiled_module.CACHE)
    again = run(COMPILED.replace(seed=12))  # same shapes, other numbers: no compile
    assert again.compile_seconds == 0.0 and len(compiled_module.CACHE) == size
    assert again.environment["compile_seconds"] == 0.0
    assert first.summary.argmax_rows == again.summary.argmax_rows == 80


@pytest.mark.slow
def test_compiled_rows_per_call_and_emulation_run_and_agree_with_eager_chunks():
    # B compiled in calls of 8 rows with bf16 operands, against A eager with bf16 operands
    # in the same calls: only inductor's own bias and activation code can differ.
    report = run(ExperimentConfig(impl_a="linear", impl_b="linear_compiled",
                                  rows_per_call_a=8, rows_per_call_b=8, emulate_a="bf16",
                                  emulate_b="bf16"))
    assert report.verdict.code != "nonfinite"
    assert all(t.local_max_abs_diff is not None for t in report.taps if t.stage == "pre")
    assert report.summary.argmax_rows == 80


@pytest.mark.slow
def test_cache_is_bounded_and_keyed_by_shape():
    cache = CompiledLayers(capacity=2)
    weight, bias, act = torch.ones(3, 4), torch.zeros(3), torch.nn.ReLU()
    seconds = []
    for rows in (1, 2, 3):
        x = torch.arange(rows * 4, dtype=torch.float32).reshape(1, rows, 4)
        pre, post, spent = cache.call(x, weight, bias, "relu", act, last=False)
        assert torch.equal(pre, x @ weight.T + bias)  # small integers: exact in any order
        assert torch.equal(post, torch.relu(pre))
        seconds.append(spent)
    assert len(cache) == 2 and all(s > 0 for s in seconds)
    # The most recent shape is kept: no compile; the oldest was evicted: compiles again.
    x3 = torch.zeros(1, 3, 4)
    assert cache.call(x3, weight, bias, "relu", act, last=False)[2] == 0.0
    assert cache.call(torch.zeros(1, 1, 4), weight, bias, "relu", act, last=False)[2] > 0


@pytest.mark.slow
def test_app_runs_the_compiled_preset():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=600)
    at.query_params.update({"preset": "compiled"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("torch.compile" in t.value for t in at.subheader)
    captions = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "B compiled (inductor) in " in captions and ", kept for reruns" in captions
    assert any(m.label == "Flips" for m in at.metric)
    assert preset("compiled").impl_b == "linear_compiled"
