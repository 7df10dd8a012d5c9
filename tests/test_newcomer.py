"""A newcomer's first hour: clone, then the README's two commands, on a fresh home directory.

Catches what a green run on a developer's machine hides: a setup step the README
does not give, data or configuration that only exist in the developer's home, a
file that is ignored by git but needed. The clone has its own virtual
environment, data directory, artifact cache and build; only pip's download
cache is shared, so the test does not download PyTorch again.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import CLEAN_BUILDS, REPO, tree_is_clean

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The shell commands of the README's quick start, in order."""
    text = (REPO / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", quick_start, re.S)
            for line in block.splitlines() if line.strip() and not line.startswith("#")]


def pip_cache() -> str:
    done = subprocess.run(["python3", "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def test_readme_commands_set_up_a_fresh_clone(tmp_path):
    commands = readme_commands()
    assert commands[:2] == ["bash tools/dev.sh book", "bash tools/dev.sh test"], commands
    clone = tmp_path / "ddrepro"
    clean = tree_is_clean()  # checked before the clone: the clone holds what is committed
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DDREPRO_", "VIRTUAL_ENV", "PYTHON"))}
    env |= {"HOME": str(home), "DDREPRO_PROFILE": "smoke", "PIP_CACHE_DIR": pip_cache(),
            "PATH": ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)}

    def run(command: str, *extra: str, **more_env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", "-c", " ".join([command, *extra])], cwd=clone, env=env | more_env,
                              capture_output=True, text=True, timeout=2400)
        assert done.returncode == 0, f"`{command}` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    book = run(commands[0], "--quiet")      # environment, data, every chapter at smoke, the site
    assert "site built with 0 warnings" in book.stdout
    assert (clone / "_build" / "_build" / "html" / "index.html").is_file()
    if clean:  # the same sources as this checkout: the notebook and site tests start from this book
        CLEAN_BUILDS.append(clone / "_build")
    assert (home / ".cache" / "ddrepro" / "data").is_dir(), "data did not land in the fresh home"
    # the test command, on the site check (the whole suite would run this test again), reading the
    # book just built: its pages are up to date, so only the site is rebuilt (conftest.smoke_book)
    tests = run(commands[1], "tests/test_site.py", DDREPRO_SITE_BUILD=str(clone / "_build"))
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout
    assert Path(clone / ".venv" / "bin" / "python").is_file()
