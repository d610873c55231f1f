"""explorer.openmp: idle OpenMP workers sleep (PASSIVE) unless the user chose otherwise,
and the report says which policy the runtime really read.

Each case is a fresh process: the policy is read once, when torch loads. GNU OpenMP prints
what it read with OMP_DISPLAY_ENV=VERBOSE; PASSIVE shows as a spin count of 0, where the
runtime's own default spins 300000 times (and also prints "PASSIVE")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

_PROBE = r"""
import json, sys
if sys.argv[1] == "torch first":
    import torch  # noqa: F401
import explorer
from explorer import ExperimentConfig, run
print(json.dumps(run(ExperimentConfig(batch=2, samples=1)).environment["omp_wait_policy"]))
"""


def _probe(order: str, **env: str) -> tuple[str, str | None]:
    """(what the report records, the spin count the OpenMP runtime printed or None)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",
                                                              "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", _PROBE, order], capture_output=True,
                         text=True, timeout=300, check=True,
                         env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env})
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1]), spin.group(1) if spin else None


def test_passive_by_default_and_the_runtime_reads_it():
    recorded, spin = _probe("explorer first")
    assert recorded == "PASSIVE"
    if spin is None:
        pytest.skip("this OpenMP runtime does not print its settings (not GNU OpenMP)")
    assert spin == "0"


def test_a_users_choice_is_kept():
    recorded, spin = _probe("explorer first", OMP_WAIT_POLICY="ACTIVE")
    assert recorded == "ACTIVE"
    if spin is not None:
        assert int(spin) > 0


def test_torch_loaded_first_is_reported_as_unknown_not_as_passive():
    recorded, spin = _probe("torch first")
    assert recorded == "unknown: torch was loaded before explorer"
    if spin is not None:
        assert spin != "0"  # nothing was set for the runtime: it kept its own default
