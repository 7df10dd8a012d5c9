"""Shared fixtures: the repository root, a ``ddrepro`` subprocess runner, data availability."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_ddrepro(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m ddrepro ARGS`` from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "ddrepro", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})}, check=False,
    )


@pytest.fixture(scope="session")
def ddrepro_cli():
    return run_ddrepro


@pytest.fixture(scope="session")
def book_data() -> None:
    """Skip when MNIST / Fashion-MNIST are not on disk (`ddrepro data fetch` installs them)."""
    from ddrepro.data import status

    missing = [s["name"] for s in status() if s["name"] in ("mnist", "fashion_mnist") and not s["present"]]
    if missing:
        pytest.skip(f"data sets {missing} missing; run `ddrepro data fetch`")
