import pytest
from forum_reference import ForumRun, forum_run

from explorer import ExperimentConfig, run


@pytest.fixture(scope="session")
def seed_report():
    """The forum case, computed once for every test that only reads it."""
    return run(ExperimentConfig())


@pytest.fixture(scope="session")
def forum() -> ForumRun:
    """The forum script's networks run with plain torch on this machine, for expectations
    that depend on summation order (never quoted from another machine)."""
    return forum_run()
