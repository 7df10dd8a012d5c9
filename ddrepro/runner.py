"""Execute the book's notebooks with papermill and render them with jupyter-book.

Execution and rendering are separate steps (the QuantEcon arrangement):

1. the book sources (``_config.yml``, ``_toc.yml``, ``references.bib``,
   ``book/**``) and the package's ``.py`` files (for ``literalinclude``) are
   copied into ``<build>/stage``;
2. every chapter notebook listed in ``_toc.yml`` is executed by papermill into
   the same place in the stage, with the parameters of the run injected;
3. ``jupyter-book build`` renders the stage with ``execute_notebooks: off``;
   the site lands in ``<build>/_build/html``.

A notebook is executed again only when something it depends on changed: its
source, the ddrepro package (:func:`ddrepro.artifacts.source_hash`), or its
parameters; the record of the last run sits beside the executed copy as
``<name>.run.json``. An executed copy is written to a temporary file and
renamed into place, so ``kill -9`` never leaves half a notebook that looks done.

Which chapters exist and which parameters they take is :mod:`ddrepro.chapters`.
Inside the kernel, ``$DDREPRO_SCORECARD`` says where the chapter's scorecard
JSON goes and ``$DDREPRO_STAGE`` where the stage is (the scorecard page reads
every chapter's JSON from there).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .artifacts import atomic_write_bytes, source_hash
from .chapters import (
    Page, UserError, build_dir, check_data, fetch_data, find_root, is_notebook_file, notebook_metadata,
    notebook_source, notebooks, profile_datasets, resolve_params, site_dir, stage_dir,
)
from .reading import FOLD_LINES, tag_for_reading
from .runtime import ENV_STAGE  # also tells ddrepro.runtime.progress that this is a batch run
from .scorecard import ENV_PATH as ENV_SCORECARD
from .scorecard import SUFFIX as SCORECARD_SUFFIX

BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
BOOK_DIR = "book"
# The package's sources are staged too, so a chapter can show the code that ran
# with {literalinclude} ../../ddrepro/<module>.py :pyobject: <name>.
CODE_DIR = "ddrepro"
# Committed metric files of paper-profile GPU runs (with their provenance): pages include them
RESULTS_DIR = "results"
RUN_SUFFIX = ".run.json"


# --------------------------------------------------------------------------- execution

def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def collects_scorecards(page: Page) -> bool:
    """Notebooks with metadata ``ddrepro.collects_scorecards`` depend on the other chapters' rows."""
    return bool(notebook_metadata(page.source).get("ddrepro", {}).get("collects_scorecards"))


def is_summary(page: Page) -> bool:
    """A page that sums up others: a chapter's index or a page of the book itself (``book/x``)."""
    return page.stem == "index" or page.rel.count("/") == 1


def execution_order(plans: list[tuple[Page, Any]]) -> list[tuple[Page, Any]]:
    """``plans`` in book order, except that pages collecting scorecards run after every other page,
    so that they read this build's rows, not the last build's: first those that also add rows of
    their own (the cross-chapter page), then the summaries (the chapter indexes, the book's
    scorecard), which read everything."""
    def rank(plan: tuple[Page, Any]) -> tuple[bool, bool]:
        collects = collects_scorecards(plan[0])
        return collects, collects and is_summary(plan[0])
    return sorted(plans, key=rank)  # stable: book order kept within each rank


def current_stage(given: str | Path = "") -> Path:
    """The stage a collecting page reads: ``given``, else the runner's (``$DDREPRO_STAGE``), else
    the default build's (an interactive session in the repository)."""
    return Path(given or os.environ.get(ENV_STAGE) or stage_dir(build_dir(find_root())))


def scorecards_digest(stage: Path, own: Path | None = None) -> str:
    """A digest of every saved scorecard in ``stage`` except ``own`` (a collecting page's own rows)."""
    digest = hashlib.sha256()
    for path in sorted(stage.rglob(f"*{SCORECARD_SUFFIX}")):
        if own is not None and path == own:
            continue
        digest.update(str(path.relative_to(stage)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_key(page: Page, params: Mapping[str, Any], stage: Path) -> dict[str, Any]:
    """Everything an executed copy depends on; equal keys mean the copy is up to date."""
    key = {"notebook": _sha256(page.source), "source": source_hash(),
           "params": json.loads(json.dumps(params, sort_keys=True, default=str))}
    if collects_scorecards(page):
        key["scorecards"] = scorecards_digest(stage, own=scorecard_path(page, stage))
    return key


def record_path(page: Page, stage: Path) -> Path:
    staged = page.staged(stage)
    return staged.with_name(staged.stem + RUN_SUFFIX)


def scorecard_path(page: Page, stage: Path) -> Path:
    staged = page.staged(stage)
    return staged.with_name(staged.stem + SCORECARD_SUFFIX)


def is_up_to_date(page: Page, params: Mapping[str, Any], stage: Path) -> bool:
    record = record_path(page, stage)
    if not (record.is_file() and page.staged(stage).is_file()):
        return False
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    return saved.get("status") == "ok" and saved.get("key") == run_key(page, params, stage)


@dataclass
class Failure:
    """Where a notebook stopped: source cell index, its first line, the error's last line."""

    cell: int | None
    first_line: str
    error: str

    def describe(self) -> str:
        if self.cell is None:
            return self.error
        line = f" `{self.first_line}`" if self.first_line else ""
        return f"cell {self.cell}{line}: {self.error}"


@dataclass
class RunResult:
    page: Page
    status: str                      # "ok", "up to date" or "failed"
    output: Path
    failure: Failure | None = None
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts, restore afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failure_from(err: BaseException, output: Path) -> Failure:
    """Translate papermill's error into the source notebook's cell numbering."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        index = err.cell_index
        try:  # papermill inserts an injected-parameters cell (and an error banner) before it
            cells = notebook_source(output)["cells"]
            extra = sum(1 for c in cells[:index]
                        if {"injected-parameters", "papermill-error-cell-tag"}
                        & set(c.get("metadata", {}).get("tags", [])))
            index -= extra
        except (OSError, ValueError, KeyError):
            pass
        first = next((ln.strip() for ln in str(err.source).splitlines() if ln.strip()), "")
        last = (str(err.evalue).strip().splitlines() or [""])[-1]
        return Failure(index, first, f"{err.ename}: {last}" if last else err.ename)
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return Failure(None, "", f"{type(err).__name__}: {lines[-1]}")


def execute(page: Page, params: Mapping[str, Any], stage: Path, *, quiet: bool = False,
            force: bool = False) -> RunResult:
    """Run one notebook into the stage with papermill, unless its executed copy is up to date."""
    output = page.staged(stage)
    if not force and is_up_to_date(page, params, stage):
        return RunResult(page, "up to date", output, params=dict(params))
    # imported only to run: nbformat's JSON-schema stack takes seconds to load
    import nbformat
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp{output.suffix}")
    key = run_key(page, params, stage)
    env = {ENV_STAGE: str(stage), ENV_SCORECARD: str(scorecard_path(page, stage))}
    if quiet:
        env["DDREPRO_QUIET"] = "1"
    failure = None
    start = time.perf_counter()
    source = output.with_name(f".{output.stem}.source.ipynb")  # papermill reads .ipynb only
    nbformat.write(nbformat.from_dict(notebook_source(page.source)), str(source))
    with _environ(**env):
        try:
            papermill.execute_notebook(
                str(source), str(tmp), parameters=dict(params), kernel_name="python3",
                progress_bar=not quiet, cwd=str(output.parent), log_output=False,
                # A cell's stderr holds every redraw of its plain progress bars ("\r"); merged
                # and collapsed, the executed copy keeps the last state, not megabytes.
                coalesce_streams=True,
            )
        except Exception as err:  # noqa: BLE001  (any kernel failure is reported, not raised)
            failure = _failure_from(err, tmp)
        finally:
            source.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    if tmp.exists():
        tag_for_reading(tmp)
        os.replace(tmp, output)  # failed runs too: the rendered page then shows where it broke
    status = "failed" if failure else "ok"
    record = {"status": status, "key": key, "seconds": round(seconds, 2),
              "failure": failure.describe() if failure else None}
    atomic_write_bytes(record_path(page, stage), json.dumps(record, indent=1).encode())
    return RunResult(page, status, output, failure, seconds, dict(params))


# --------------------------------------------------------------------------- staging and build

def stage_sources(root: Path, stage: Path) -> None:
    """Copy the book's text sources, the package's ``.py`` files and the committed GPU results
    into the stage (notebooks come from papermill)."""
    stage.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        if (root / name).is_file():
            _copy_if_changed(root / name, stage / name)
    for path in sorted((root / CODE_DIR).rglob("*.py")):
        _copy_if_changed(path, stage / path.relative_to(root))
    for path in sorted((root / RESULTS_DIR).rglob("*")):
        if path.is_file():
            _copy_if_changed(path, stage / path.relative_to(root))
    for path in sorted((root / BOOK_DIR).rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or path.suffix in (".ipynb", ".pyc") or is_notebook_file(path) \
                or ".ipynb_checkpoints" in rel.parts \
                or "__pycache__" in rel.parts:
            continue
        _copy_if_changed(path, stage / rel)


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def recorded_seconds(page: Page, stage: Path, params: Mapping[str, Any]) -> float | None:
    """How long ``page``'s last recorded run took at the same profile (stale or not), if any."""
    try:
        saved = json.loads(record_path(page, stage).read_text())
    except (OSError, ValueError):
        return None
    same = saved.get("key", {}).get("params", {}).get("profile") == params.get("profile")
    return float(saved["seconds"]) if same and saved.get("status") == "ok" else None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(k: int, n: int, elapsed: float, left: Sequence[float | None]) -> str:
    """``[page k+1/n, elapsed, what is left]``: the pages still to run, estimated from their last
    recorded times (``None``: never recorded at this profile, so not in the estimate)."""
    known = [s for s in left if s is not None]
    unknown = len(left) - len(known)
    if not left or not known:
        estimate = "no earlier times recorded" if left else "nothing left to run"
    else:
        estimate = f"~{_duration(sum(known))} left by the last recorded times"
        if unknown:
            estimate += f", {unknown} page(s) never timed"
    return f"[page {k + 1}/{n}, {_duration(elapsed)} elapsed, {estimate}]"


@dataclass
class BuildResult:
    returncode: int
    warnings: list[str]
    index: Path
    log: str

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.warnings


_WARNING = re.compile(r"(WARNING|ERROR|CRITICAL):")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def jupyter_book_command() -> list[str]:
    beside = Path(sys.executable).with_name("jupyter-book")
    exe = str(beside) if beside.exists() else shutil.which("jupyter-book")
    if exe is None:
        raise UserError("jupyter-book is not installed; run `pip install -e .[book]`.")
    return [exe]


def build_site(stage: Path, build: Path, *, quiet: bool = False) -> BuildResult:
    """``jupyter-book build`` with nitpicky references and warnings as errors (all reported)."""
    command = [*jupyter_book_command(), "build", str(stage), "--path-output", str(build),
               "--builder", "html", "-n", "-W", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    log = _ANSI.sub("", done.stdout + done.stderr)
    if not quiet:
        print(log, end="")
    warnings = [ln.strip() for ln in log.splitlines() if _WARNING.search(ln)]
    return BuildResult(done.returncode, warnings, site_dir(build) / "index.html", log)


# --------------------------------------------------------------------------- the whole book

def run_book(root: Path, build: Path, *, profile: str, quiet: bool = False,
             skip_run: bool = False, out=print) -> int:
    """Fetch data, execute every notebook (failures do not stop the others), build the site."""
    stage = stage_dir(build)
    plans = execution_order([(page, resolve_params(page, profile, [], quiet)) for page in notebooks(root)])
    if not skip_run:
        fetch_data(quiet=quiet)
        for _, params in plans:
            check_data(profile_datasets(params))
    stage_sources(root, stage)
    results: list[RunResult] = []
    last_seconds = {page.rel: recorded_seconds(page, stage, params) for page, params in plans}
    # which pages will run, read once (hashing the sources per page and per line is wasted work):
    # running a chapter leaves the others' status as it was, but re-keys the pages that collect
    # the chapters' scorecards
    to_run = set() if skip_run else {page.rel for page, params in plans
                                     if not is_up_to_date(page, params, stage)}
    if to_run:
        to_run |= {page.rel for page, _ in plans if collects_scorecards(page)}
    start = time.perf_counter()
    for k, (page, params) in enumerate(plans):
        if skip_run:
            present = page.staged(stage).is_file()
            failure = None if present else Failure(None, "", "no executed copy yet (run without --skip-run)")
            results.append(RunResult(page, "skipped" if present else "failed",
                                     page.staged(stage), failure))
            continue
        if not is_up_to_date(page, params, stage):
            left = [last_seconds[p.rel] for p, _ in plans[k:] if p.rel in to_run]
            out(f"[ddrepro] {progress_line(k, len(plans), time.perf_counter() - start, left)} "
                f"{page.rel}: running (profile {params.get('profile')})")
        result = execute(page, params, stage, quiet=quiet)
        tail = f" in {result.seconds:.1f}s" if result.status != "up to date" else ""
        out(f"[ddrepro] {page.rel}: {result.status}{tail}")
        results.append(result)
    built = build_site(stage, build, quiet=quiet)
    failed = [r for r in results if r.status == "failed"]
    for line in built.warnings:
        out(f"[ddrepro] sphinx: {line}")
    if failed:
        out(f"[ddrepro] {len(failed)} chapter(s) failed:")
        for r in failed:
            out(f"  {r.page.rel}: {r.failure.describe() if r.failure else 'failed'}")
    if built.clean:
        out(f"[ddrepro] site built with 0 warnings: {built.index}")
    else:
        out(f"[ddrepro] jupyter-book build not clean (exit {built.returncode}, "
            f"{len(built.warnings)} warning(s)); site: {built.index}")
    return 0 if built.clean and not failed else 1


__all__ = [
    "RunResult", "Failure", "BuildResult", "execute", "is_up_to_date", "record_path", "run_key",
    "stage_sources", "build_site", "run_book", "progress_line", "recorded_seconds", "execution_order",
    "current_stage",
]
