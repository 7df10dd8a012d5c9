"""The book's notebooks: committed without outputs, parameterised alike, executable at smoke."""

from __future__ import annotations

import json
import subprocess

import pytest

from ddrepro import chapters, runner

from .conftest import REPO

NOTEBOOKS = chapters.notebooks(REPO)


def tracked_notebooks() -> list:
    """Notebooks under book/ that git tracks or would track (untracked but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "book"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(REPO / p for p in listed
                  if (REPO / p).exists() and chapters.is_notebook_file(REPO / p))


def test_chapters_are_myst_notebooks_that_declare_the_ddrepro_kernel():
    # The format decision (docs/notebooks.md): text notebooks, reviewable as diffs, no outputs.
    paths = tracked_notebooks()
    assert paths and all(p.suffix == ".md" for p in paths), [p.name for p in paths]
    for path in paths:
        nb = chapters.notebook_source(path)
        assert nb["metadata"]["kernelspec"]["name"] == "ddrepro", path.name
        assert nb["metadata"]["jupytext"]["text_representation"]["format_name"] == "myst"


@pytest.mark.parametrize("path", tracked_notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_first_code_cell_is_the_parameters_cell(path):
    nb = chapters.notebook_source(path)
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "parameters" in first["metadata"].get("tags", []), f"{path.name}: tag the first code cell"
    params = chapters.notebook_parameters(path)
    assert params.get("profile") == "cpu", f"{path.name}: first cell must set profile = \"cpu\""
    for name, default in (("overrides", {}), ("seed", 0), ("device", "auto"), ("quiet", False)):
        assert params.get(name) == default, f"{path.name}: {name} default"


@pytest.mark.parametrize("path", tracked_notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_fast_parameter_and_metadata_readers_agree_with_jupytext(path):
    # `ddrepro run` reads a page's parameters and metadata without importing jupytext
    nb = chapters.notebook_source(path)
    cell = chapters.parameters_cell(nb)
    assert chapters.myst_parameters_source(path.read_text()) == cell["source"].strip("\n")
    assert chapters.notebook_metadata(path).get("ddrepro") == nb["metadata"].get("ddrepro")


def test_the_fast_parameter_reader_on_yaml_options_nested_fences_and_no_parameters():
    text = "\n".join([
        "---", "kernelspec: {name: ddrepro}", "---", "", "````markdown", "```{code-cell}",
        ":tags: [parameters]", "", "wrong = 1", "```", "````", "",
        "```{code-cell} ipython3", "---", "tags: [hide-input, parameters]", "---", "", "seed = 3",
        "quiet = True", "```", "", "```{code-cell}", ":tags: [parameters]", "", "later = 2", "```"])
    assert chapters.myst_parameters_source(text) == "seed = 3\nquiet = True"
    assert chapters.myst_parameters_source("```{code-cell}\nx = 1\n```\n") is None


def test_every_toc_notebook_is_in_the_toc_order():
    assert [p.stem for p in NOTEBOOKS][:1] == ["data"]
    # the Results pages read what the chapters left in the stage (scorecards, run records)
    assert [p.stem for p in NOTEBOOKS][-2:] == ["scorecard", "performance"], \
        "the scorecard and performance pages run after every chapter"


def test_the_cross_chapter_page_runs_after_the_chapter_rows_it_reads():
    # book/06_across reads ead_privacy's saved rows from the build; the scorecard collects its own
    order = [p.rel for p in NOTEBOOKS]
    across = order.index("book/06_across/across")
    assert order.index("book/05_effect_alignment/ead_privacy") < across < order.index("book/scorecard")


@pytest.fixture(scope="module")
def smoke_build(request, tmp_path_factory):
    """Where the pages run. With every page selected, the session's smoke book
    (``conftest.smoke_book``): ``ddrepro book`` ran every page through the runner into it, so the
    run below finds each page up to date unless that page failed there, and then runs it again
    here, where the failure is reported. With a few pages selected (``-k debiased``), an empty
    build where only those run."""
    selected = [item for item in request.session.items
                if getattr(item, "originalname", "") == "test_notebook_executes_at_smoke_through_the_runner"]
    if len(selected) < len(NOTEBOOKS):
        return tmp_path_factory.mktemp("smoke_build")
    return request.getfixturevalue("smoke_book")[0]


@pytest.mark.slow
@pytest.mark.parametrize("page", NOTEBOOKS, ids=lambda p: p.rel)
def test_notebook_executes_at_smoke_through_the_runner(ddrepro_cli, book_data, smoke_build, page):
    done = ddrepro_cli("run", page.rel, "--profile", "smoke", "--quiet",
                       "--build-dir", str(smoke_build), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = json.loads(page.staged(chapters.stage_dir(smoke_build)).read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code)
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors
    injected = [c for c in code if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'profile = "smoke"' in "".join(injected[0]["source"])
    # a second run with the same inputs is skipped (unless the package source changed meanwhile)
    record = runner.record_path(page, chapters.stage_dir(smoke_build))
    before = json.loads(record.read_text())["key"]
    again = ddrepro_cli("run", page.rel, "--profile", "smoke", "--quiet",
                        "--build-dir", str(smoke_build))
    assert again.returncode == 0
    if json.loads(record.read_text())["key"]["source"] == before["source"]:
        assert "up to date" in again.stdout
