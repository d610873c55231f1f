"""explorer.openmp: the app server's OpenMP workers sleep (PASSIVE) unless the operator
chose otherwise; the CLI and library do so on a busy machine and keep the runtime's default
on a quiet one; the report says which policy the runtime really read.

Each case is a fresh process: the policy is read once, when torch loads. GNU OpenMP prints
what it read with OMP_DISPLAY_ENV=VERBOSE; PASSIVE shows as a spin count of 0, where the
runtime's own default spins 300000 times (and also prints "PASSIVE")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = r"""
import json, os, sys
os.getloadavg = lambda: (float(sys.argv[2]),) * 3  # the machine's load, as the test sets it
if sys.argv[1] == "torch first":
    import torch  # noqa: F401
import explorer
from explorer import ExperimentConfig, run
print(json.dumps(run(ExperimentConfig(batch=2, samples=1)).environment["omp_wait_policy"]))
"""


def _clean_env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    return {**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env}


def _spin_count(text: str) -> str | None:
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", text)
    return found.group(1) if found else None


QUIET, BUSY = 0.0, 64.0  # load averages: none, and more than any CPU count here


def _probe(order: str, load: float = QUIET, **env: str) -> tuple[str, str | None]:
    """(what the report records, the spin count the OpenMP runtime printed or None)."""
    out = subprocess.run([sys.executable, "-c", _PROBE, order, str(load)],
                         capture_output=True,
                         text=True, timeout=300, check=True, env=_clean_env(**env))
    return json.loads(out.stdout.strip().splitlines()[-1]), _spin_count(out.stderr)


def test_the_cli_and_library_keep_the_runtime_default_on_a_quiet_machine():
    recorded, spin = _probe("explorer first", QUIET)
    assert recorded == "runtime default"
    if spin is not None:
        assert spin != "0"


def test_on_a_busy_machine_the_cli_and_library_wait_passively():
    # An audit's 10 x 10 CLI sweep at load 3.5: 149-167 s spinning, 18-21 s passive.
    recorded, spin = _probe("explorer first", BUSY)
    assert recorded.startswith("PASSIVE (machine busy at start: load 64.00 on "), recorded
    if spin is not None:
        assert spin == "0"


@pytest.mark.parametrize("load", [QUIET, BUSY])
def test_a_users_choice_is_kept_and_recorded(load):
    recorded, spin = _probe("explorer first", load, OMP_WAIT_POLICY="PASSIVE")
    assert recorded == "PASSIVE"
    if spin is not None:
        assert spin == "0"
    recorded, spin = _probe("explorer first", load, OMP_WAIT_POLICY="ACTIVE")
    assert recorded == "ACTIVE"
    if spin is not None:
        assert spin != "0"


def test_busy_means_load_at_least_half_the_usable_cpus(monkeypatch):
    from explorer import openmp

    monkeypatch.setattr(openmp.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3},
                        raising=False)
    for load, busy in [(0.0, None), (1.99, None), (2.0, (2.0, 4)), (9.5, (9.5, 4))]:
        monkeypatch.setattr(openmp.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert openmp._busy_load() == busy, load

    def no_load_average():
        raise OSError("no load average here")

    monkeypatch.setattr(openmp.os, "getloadavg", no_load_average)
    assert openmp._busy_load() is None


def test_torch_loaded_first_is_reported_as_unknown():
    recorded, _ = _probe("torch first", OMP_WAIT_POLICY="ACTIVE")
    assert recorded == "unknown: torch was loaded before explorer"


@pytest.mark.slow
def test_the_app_server_waits_passively(tmp_path, monkeypatch):
    import asyncio

    import benchmark_scripts

    from explorer.devserver import streamlit_server

    for name, value in _clean_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    log = tmp_path / "server.log"
    with streamlit_server(ROOT / "app.py", log_path=log) as server:
        # The first page view imports explorer, and with it torch and OpenMP.
        ws_load = benchmark_scripts.load("ws_load")
        ws_url = server.base.replace("http://", "ws://") + "/_stcore/stream"
        visit = asyncio.run(ws_load.visit(ws_url, "", 120))
        assert visit.error is None and visit.charts >= 1, visit
    spin = _spin_count(log.read_text())
    if spin is None:
        pytest.skip("this OpenMP runtime does not print its settings (not GNU OpenMP)")
    assert spin == "0"
