"""The machine facts a report records: they decide the summation order."""

import json
import os
import subprocess
import sys

from explorer import ExperimentConfig, machine, run


def test_onednn_isa_is_read_and_stdout_is_left_alone(capfd):
    isa = machine.onednn_isa()
    assert isa and isa != "unknown"
    print("after the probe")
    assert capfd.readouterr().out == "after the probe\n"  # nothing of oneDNN's leaked


def test_isa_cap_is_seen_in_a_fresh_process():
    """ONEDNN_MAX_CPU_ISA=AVX2 must show as AVX2 in use, and as a recorded cap."""
    code = ("import json; from explorer import machine; "
            "print(json.dumps(machine.isa_facts()))")
    env = {k: v for k, v in os.environ.items() if k not in machine.ISA_ENV_VARS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                         check=True, timeout=120).stdout
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["isa_caps"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert "AVX2" in facts["onednn_isa"] and "512" not in facts["onednn_isa"]


def test_environment_records_isa_and_each_sides_threads():
    report = run(ExperimentConfig(depth=1, batch=2, samples=1, threads=1))
    env = report.environment
    assert env["threads"] == env["threads_a"] == env["threads_b"] == 1
    assert env["onednn_isa"] == machine.onednn_isa()
    assert env["cpu_capability"]
