"""Numerical Error Explorer: why two mathematically equal implementations differ.

    from explorer import ExperimentConfig, run
    report = run(ExperimentConfig())          # the forum case: Linear vs 1x1 Conv2d
    print(report.verdict.headline)
"""

from explorer.openmp import apply_default_wait_policy

apply_default_wait_policy()  # the app server's, before torch loads; see explorer.openmp

from explorer.compare import run  # noqa: E402
from explorer.config import PRESETS, ExperimentConfig, preset  # noqa: E402
from explorer.report import Report  # noqa: E402

__all__ = ["ExperimentConfig", "PRESETS", "Report", "preset", "run"]
