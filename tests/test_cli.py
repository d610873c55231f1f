"""python -m explorer: formats, the JSON contract, and one-line errors."""

import csv
import io
import json
import subprocess
import sys

import pytest

from explorer.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_format_is_strict_and_has_the_contract(capsys):
    code, out, _ = run_cli(capsys, "compare", "--preset", "seed", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["config"]["activation"] == "elu" and data["config"]["widths"] == [64, 128, 256]
    assert data["summary"]["verdict"] in ("rounding", "magnitude", "cancellation")
    assert isinstance(data["summary"]["logits_mean_diff"], float)
    assert [t["stage"] for t in data["taps"][:2]] == ["pre", "post"]


def test_csv_format_parses(capsys):
    code, out, _ = run_cli(capsys, "compare", "--depth", "1", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["tap"] for r in rows] == ["L1 pre", "L1 post", "L2 pre"]


def test_table_format_tells_the_story(capsys):
    code, out, _ = run_cli(capsys, "compare", "--emulate-b", "tf32", "--format", "table")
    assert code == 0
    assert "VERDICT [reduced_precision]" in out
    assert "exceeds the worst-case float32 rounding bound" in out
    assert "B (conv2d) behaves as if its operands had 11 significant bits" in out
    assert "rounded to TF32 by emulation" in out
    assert "max relative error against the float64 reference" in out


def test_every_config_field_has_a_flag(capsys):
    code, out, _ = run_cli(capsys, "compare", "--widths", "8,4", "--depth", "2", "--batch", "2",
                           "--samples", "3", "--input-dim", "16", "--num-classes", "2",
                           "--activation", "tanh", "--init-constant", "0.5", "--seed", "1",
                           "--dtype", "float64", "--impl-a", "matmul", "--impl-b", "conv1d",
                           "--init-scheme", "normal", "--input-distribution", "integers",
                           "--threads", "1", "--format", "json")
    assert code == 0
    cfg = json.loads(out)["config"]
    assert cfg["widths"] == [8, 4] and cfg["batch"] == 2 and cfg["samples"] == 3
    assert cfg["impl_b"] == "conv1d" and cfg["input_distribution"] == "integers"


@pytest.mark.parametrize("argv, fragment", [
    (["compare", "--depth", "-1"], "depth=-1 is not allowed"),
    (["compare", "--depth", "two"], "depth='two' is not allowed: it must be a whole number "
                                    "from 1 to 16"),
    (["compare", "--seed", "abc"], "seed='abc' is not allowed: it must be a whole number "
                                   "from 0 to"),
    (["compare", "--device", "cuda"], "device='cuda' is not available"),
    (["compare", "--activation", "swish"], "invalid choice: 'swish'"),
    (["compare", "--bogus"], "unrecognized arguments: --bogus"),
    (["compare", "--init-constant", "nan"], "init_constant=nan"),
    (["compare", "--preset", "nope"], "invalid choice: 'nope'"),
    ([], "choose a command"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, fragment):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err and out == ""


def test_module_entry_point_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "explorer", "compare", "--depth", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "depth=0 is not allowed" in proc.stderr and "Traceback" not in proc.stderr


def test_a_reader_that_goes_away_is_not_a_traceback(monkeypatch, tmp_path):
    """`python -m explorer compare | head`: the pipe closes early; exit quietly."""
    import os
    import sys

    from explorer.cli import main

    class ClosedPipe:
        def __init__(self):
            self._file = open(tmp_path / "sink", "w")  # a real descriptor for dup2

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self._file.fileno()

    saved_fd = os.dup(1)
    pipe = ClosedPipe()
    monkeypatch.setattr(sys, "stdout", pipe)
    try:
        status = main(["compare", "--depth", "1", "--batch", "2", "--samples", "1",
                       "--format", "json"])
    finally:
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
    assert status == 1
