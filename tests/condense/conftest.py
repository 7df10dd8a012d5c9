import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every condenser test runs on one thread (the shared fixture in tests/conftest.py)."""
    yield
