import pytest

from explorer import ExperimentConfig, run


@pytest.fixture(scope="session")
def seed_report():
    """The forum case, computed once for every test that only reads it."""
    return run(ExperimentConfig())
