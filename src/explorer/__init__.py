"""Numerical Error Explorer: why two mathematically equal implementations differ.

    from explorer import ExperimentConfig, run
    report = run(ExperimentConfig())          # the forum case: Linear vs 1x1 Conv2d
    print(report.verdict.headline)
"""

from explorer.compare import run
from explorer.config import PRESETS, ExperimentConfig, preset
from explorer.report import Report

__all__ = ["ExperimentConfig", "PRESETS", "Report", "preset", "run"]
