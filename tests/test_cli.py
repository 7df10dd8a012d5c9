"""The ddrepro command line: user errors are one line with exit code 2, before any kernel.

The subprocess tests start no kernel (they fail or list before one would), so
the whole file runs in seconds; the runner's bookkeeping (parameters, chapter
lookup, up-to-date records, failure reports) is tested in-process.
"""

from __future__ import annotations

import json
import re

import pytest

from ddrepro import chapters, cli, runner
from ddrepro.profiles import get_profile

from .conftest import REPO

BAD_INPUTS = [
    (["run", "no_such_chapter"], "unknown chapter 'no_such_chapter'"),
    (["run", "data", "--profile", "turbo"], "Unknown profile 'turbo'"),
    (["run", "data", "-p", "dm.stepz", "3"], "Unknown profile field 'dm.stepz'"),
    (["run", "data", "-p", "nosection.x", "3"], "Unknown profile field 'nosection.x'"),
    (["run", "data", "-p", "dm.steps", "many"], "dm.steps"),
    (["run", "data", "-p", "dm.steps", "1.5"], "expects an integer"),
    (["run", "data", "-p", "dm.steps", "0"], "DMConfig.steps = 0 is invalid"),
    (["run", "data", "-p", "ipcs", "[0, 10]"], "every ipc must be >= 1"),
    (["run", "data", "-p", "seed", "abc"], "parameter 'seed' = 'abc'"),
    (["run", "data", "-p", "seed", "-1"], "parameter 'seed' = -1 is out of range"),
    (["run", "data", "-p", "poison.rate", "0.7"], "PoisonConfig.rate = 0.7 is invalid"),
    (["run", "data", "-p", "bias.ratios", "[1.5]"], "must be a subset of ratios (1.5,)"),
    (["run", "data", "-p", "quiet", "7"], "parameter 'quiet' = 7"),
    (["run", "data", "-p", "turbo", "1"], "unknown parameter 'turbo'"),
    (["run", "data", "-p", "methods", "[dm, magic]"], "unknown method(s) ['magic']"),
    (["run", "data", "-p", "device", "tpu"], "device 'tpu' is not a torch device"),
    (["run"], "run needs a CHAPTER"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("args,fragment", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_before_any_kernel(capsys, tmp_path, args, fragment):
    """In-process (the same ``main`` the console script calls), to keep the matrix fast."""
    build = tmp_path / "build"
    argv = [*args, "--build-dir", str(build)] if args[:1] == ["run"] and len(args) > 1 else args
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ddrepro: error: ")
    assert fragment in lines[0]
    assert out == ""
    assert not build.exists(), "nothing may be staged or executed for a bad request"


SUBPROCESS_CASES = [BAD_INPUTS[0], BAD_INPUTS[6], BAD_INPUTS[10]]


@pytest.mark.parametrize("args,fragment", SUBPROCESS_CASES, ids=[" ".join(a) for a, _ in SUBPROCESS_CASES])
def test_python_m_ddrepro_reports_errors_without_traceback(ddrepro_cli, tmp_path, args, fragment):
    build = tmp_path / "build"
    done = ddrepro_cli(*args, "--build-dir", str(build))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("ddrepro: error: ") and fragment in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not build.exists()


def test_list_shows_toc_notebooks_in_order(ddrepro_cli):
    done = ddrepro_cli("run", "--list")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[1] for line in done.stdout.strip().splitlines()]
    assert listed == [p.rel for p in chapters.notebooks(REPO)]
    assert "book/data" in listed


# ----------------------------------------------------------------------------- in-process pieces

def test_toc_pages_follow_the_toc_and_exist():
    pages = chapters.pages(REPO)
    rels = [p.rel for p in pages]
    assert rels[0] == "book/intro"
    folders = [r.split("/")[1] for r in rels if re.match(r"book/0\d_", r)]
    in_order = list(dict.fromkeys(folders))  # chapter folders by first appearance
    assert in_order == sorted(in_order) and len(in_order) == 6  # five papers, then 06_across
    assert all(p.source.is_file() for p in pages)


@pytest.mark.parametrize("text,value", [
    ("3", 3), ("0.5", 0.5), ("true", True), ("False", False), ("[1, 10]", [1, 10]),
    ("cpu", "cpu"), ("null", None), ("{a: 1}", {"a": 1}),
])
def test_values_parse_like_yaml(text, value):
    assert chapters.parse_value(text) == value


def test_params_split_between_notebook_and_overrides():
    params, overrides = chapters.split_params(
        [("seed", "3"), ("dm.steps", "5"), ("eval.n_models", "2")], {"seed": 0, "profile": "cpu"})
    assert params == {"seed": 3}
    assert overrides == {"dm.steps": 5, "eval.n_models": 2}


def test_resolved_params_validate_and_merge_overrides():
    page = chapters.resolve_chapter("data", REPO)
    params = chapters.resolve_params(page, "smoke", [("dm.steps", "7"), ("seed", "2")], quiet=True)
    assert params == {"seed": 2, "profile": "smoke", "overrides": {"dm.steps": 7}, "quiet": True}
    assert get_profile(params["profile"], params["overrides"]).dm.steps == 7


@pytest.mark.parametrize("name", ["data", "book/data", "book/data.md", str(REPO / "book" / "data.md")])
def test_chapter_found_by_stem_toc_path_or_file(name):
    assert chapters.resolve_chapter(name, REPO).rel == "book/data"


def _fake_executed(page, stage, params, status="ok"):
    staged = page.staged(stage)
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text("{}")
    record = {"status": status, "key": runner.run_key(page, params, stage)}
    runner.record_path(page, stage).write_text(json.dumps(record))


def test_up_to_date_only_when_notebook_source_and_params_match(tmp_path):
    page = chapters.resolve_chapter("data", REPO)
    params = {"profile": "smoke", "seed": 0}
    assert not runner.is_up_to_date(page, params, tmp_path)
    _fake_executed(page, tmp_path, params)
    assert runner.is_up_to_date(page, params, tmp_path)
    assert not runner.is_up_to_date(page, {**params, "seed": 1}, tmp_path)
    assert not runner.is_up_to_date(page, {**params, "profile": "cpu"}, tmp_path)
    _fake_executed(page, tmp_path, params, status="failed")
    assert not runner.is_up_to_date(page, params, tmp_path)


def test_recorded_seconds_come_from_the_last_ok_run_at_the_same_profile(tmp_path):
    page = chapters.resolve_chapter("data", REPO)
    params = {"profile": "cpu"}
    assert runner.recorded_seconds(page, tmp_path, params) is None       # never run
    _fake_executed(page, tmp_path, params)
    record = runner.record_path(page, tmp_path)
    record.write_text(json.dumps({**json.loads(record.read_text()), "seconds": 42.5}))
    assert runner.recorded_seconds(page, tmp_path, params) == 42.5
    assert runner.recorded_seconds(page, tmp_path, {"profile": "smoke"}) is None
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "failed"}))
    assert runner.recorded_seconds(page, tmp_path, params) is None


def test_the_build_progress_line_counts_pages_and_estimates_what_is_left():
    line = runner.progress_line(2, 17, 125.0, [600.0, None, 3000.0])
    assert line == "[page 3/17, 2m05s elapsed, ~1h00m left by the last recorded times, 1 page(s) never timed]"
    assert runner.progress_line(0, 3, 0.0, [None, None]) == \
        "[page 1/3, 0m00s elapsed, no earlier times recorded]"


def test_executed_copies_drop_parameter_cells_and_fold_long_code(tmp_path):
    def code(n_lines, tags=()):
        return {"cell_type": "code", "source": "\n".join(f"x{i} = {i}" for i in range(n_lines)),
                "metadata": {"tags": list(tags)}, "outputs": [], "execution_count": 1}

    cells = [code(2, ["parameters"]), code(2, ["injected-parameters"]),
             code(runner.FOLD_LINES), code(runner.FOLD_LINES + 1),
             code(40, ["show-input"]), code(40, ["remove-input"]),
             {"cell_type": "markdown", "source": "x\n" * 40, "metadata": {}}]
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    runner.tag_for_reading(path)
    tags = [c["metadata"].get("tags", []) for c in json.loads(path.read_text())["cells"]]
    assert tags == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], [],
                    ["hide-input"], ["show-input"], ["remove-input"], []]


def test_scorecard_page_reruns_when_a_chapter_adds_rows(tmp_path):
    page = chapters.resolve_chapter("scorecard", REPO)
    params = {"profile": "smoke"}
    _fake_executed(page, tmp_path, params)
    assert runner.is_up_to_date(page, params, tmp_path)
    (tmp_path / "book" / "x.scorecard.json").write_text('{"chapter": "x", "profile": "smoke", "rows": []}')
    assert not runner.is_up_to_date(page, params, tmp_path)


def test_failure_reports_source_cell_index_first_line_and_last_error_line(tmp_path):
    from papermill.exceptions import PapermillExecutionError

    executed = {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ""},
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": ""},
        {"cell_type": "code", "metadata": {}, "source": ""},
        {"cell_type": "code", "metadata": {}, "source": ""},
    ]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(executed))
    err = PapermillExecutionError(3, 3, "\nx = load()\ny = 2", "ValueError", "first\nbad ipc 0", [])
    failure = runner._failure_from(err, path)
    assert failure.cell == 2  # index 3 in the executed copy, 2 in the source notebook
    assert failure.describe() == "cell 2 `x = load()`: ValueError: bad ipc 0"


def test_how_to_run_profile_table_matches_profiles_py():
    """The page's short table must not drift from ddrepro/profiles.py."""
    text = (REPO / "book" / "how_to_run.md").read_text()
    for name in ("smoke", "cpu", "paper"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        prof = get_profile(name)
        per_class = prof.data.train_per_class or "all"
        test_size = prof.data.test_size or "all"
        assert cells[1] == f"{per_class} / {test_size}", name
        assert cells[2] == f"{prof.net.width} x {prof.net.depth}", name
        assert cells[3] == ", ".join(str(i) for i in prof.ipcs), name
        assert cells[4] == str(prof.dm.steps), name
        assert cells[5] == f"{prof.eval.epochs} x {prof.eval.n_models}", name


def test_pages_collecting_scorecards_run_after_every_chapter_page():
    plans = [(page, {}) for page in chapters.notebooks(REPO)]
    ordered = [page for page, _ in runner.execution_order(plans)]
    collecting = [runner.collects_scorecards(page) for page in ordered]
    assert collecting == sorted(collecting)                      # every collector after every chapter
    names = [page.rel for page in ordered if runner.collects_scorecards(page)]
    assert {"book/scorecard", "book/03_poisoning/index", "book/06_across/across"} <= set(names)
    # the cross-chapter page adds rows of its own: it runs before the summaries that read them
    summaries = [n for n in names if n.endswith("/index") or n.count("/") == 1]
    assert names[0] == "book/06_across/across" and names[1:] == summaries
    chapter_pages = [page.rel for page in ordered if not runner.collects_scorecards(page)]
    assert chapter_pages == [page.rel for page, _ in plans if not runner.collects_scorecards(page)]


def test_a_collecting_page_stays_up_to_date_after_saving_its_own_rows(tmp_path):
    page = chapters.resolve_chapter("book/06_across/across", REPO)
    params = {"profile": "smoke"}
    _fake_executed(page, tmp_path, params)
    runner.scorecard_path(page, tmp_path).write_text('{"chapter": "6", "profile": "smoke", "rows": []}')
    assert runner.is_up_to_date(page, params, tmp_path)             # its own rows do not re-key it
    (tmp_path / "book" / "05_effect_alignment").mkdir(parents=True, exist_ok=True)
    (tmp_path / "book" / "05_effect_alignment" / "ead_privacy.scorecard.json").write_text(
        '{"chapter": "5", "profile": "smoke", "rows": []}')
    assert not runner.is_up_to_date(page, params, tmp_path)         # another chapter's rows do
