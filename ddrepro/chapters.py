"""The book's chapters: where they are (``_toc.yml``) and the parameters they take.

A chapter is a notebook listed in ``_toc.yml``, written as a *MyST Markdown
notebook* (a ``.md`` file with a jupytext header, the QuantEcon lectures'
format): text and code cells in plain Markdown, so a changed chapter reads as
an ordinary diff in review, and no outputs can be committed by mistake.
JupyterLab opens it as a notebook (jupytext), jupyter-book renders the
executed copy, and papermill executes a copy converted to ``.ipynb``
(:mod:`ddrepro.runner`). Plain ``.ipynb`` chapters still work.

Its first code cell, tagged ``parameters`` (papermill's convention), holds its
defaults (``profile``, ``overrides``, ``seed``, ...). :func:`resolve_params` turns ``-p KEY VALUE``
pairs from the command line into notebook parameters and dotted profile
overrides and validates them all, so a mistake is one line before any
kernel starts. :mod:`ddrepro.runner` executes and renders what this module finds.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

ENV_BUILD = "DDREPRO_BUILD"


class UserError(ValueError):
    """A mistake in what the user asked for; the CLI prints it as one line, exit code 2."""


# --------------------------------------------------------------------------- book layout

def find_root(start: str | Path | None = None) -> Path:
    """The book's root: the nearest directory at or above ``start`` (default: cwd) with ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file():
            return candidate
    package_root = Path(__file__).resolve().parent.parent
    if (package_root / "_toc.yml").is_file():
        return package_root
    raise UserError(f"no _toc.yml at or above {str(here)!r}; run ddrepro from the book's repository.")


def build_dir(root: Path, override: str | Path | None = None) -> Path:
    """``override``, else ``$DDREPRO_BUILD``, else ``<root>/_build``."""
    chosen = override or os.environ.get(ENV_BUILD) or root / "_build"
    return Path(chosen).expanduser().resolve()


def stage_dir(build: Path) -> Path:
    return build / "stage"


def site_dir(build: Path) -> Path:
    """Where jupyter-book writes the html (it always appends ``_build/html``)."""
    return build / "_build" / "html"


@dataclass(frozen=True)
class Page:
    """One ``file:`` entry of ``_toc.yml``: ``rel`` as written there, ``source`` the file it names."""

    rel: str
    source: Path

    @property
    def stem(self) -> str:
        return self.source.stem

    @property
    def is_notebook(self) -> bool:
        return is_notebook_file(self.source)

    def staged(self, stage: Path) -> Path:
        """Where the page lies in the stage; an executed notebook is always an ``.ipynb``."""
        return stage / Path(self.rel).with_suffix(".ipynb" if self.is_notebook else self.source.suffix)


def front_matter(path: Path) -> dict[str, Any]:
    """The YAML front matter of a ``.md`` file (``{}`` when it has none)."""
    text = Path(path).read_text()
    if not text.startswith("---\n"):
        return {}
    front = yaml.safe_load(text[4:text.find("\n---", 4)]) or {}
    return front if isinstance(front, dict) else {}


def is_notebook_file(path: Path) -> bool:
    """An ``.ipynb``, or a ``.md`` whose YAML front matter declares a jupytext notebook."""
    path = Path(path)
    if path.suffix == ".ipynb":
        return True
    if path.suffix != ".md" or not path.is_file():
        return False
    front = front_matter(path)
    return "jupytext" in front or "kernelspec" in front


def _toc_files(node: Any) -> Iterator[str]:
    """Every ``file`` in a jb-book toc, depth first, in reading order."""
    if isinstance(node, dict):
        if "root" in node:
            yield str(node["root"])
        if "file" in node:
            yield str(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                yield from _toc_files(child)
    elif isinstance(node, list):
        for child in node:
            yield from _toc_files(child)


def _resolve_page(root: Path, rel: str) -> Path:
    base = root / rel
    if base.suffix in (".md", ".ipynb") and base.is_file():
        return base
    for suffix in (".ipynb", ".md"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    raise UserError(f"_toc.yml lists {rel!r} but no {rel}.md or {rel}.ipynb exists; fix _toc.yml.")


def pages(root: Path) -> list[Page]:
    """All pages of the book in ``_toc.yml`` order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = [str(Path(rel).with_suffix("")) if Path(rel).suffix in (".md", ".ipynb") else rel
               for rel in _toc_files(toc)]
    return [Page(rel, _resolve_page(root, rel)) for rel in entries]


def notebooks(root: Path) -> list[Page]:
    """The pages that papermill executes, in ``_toc.yml`` order."""
    return [p for p in pages(root) if p.is_notebook]


def resolve_chapter(name: str, root: Path) -> Page:
    """A notebook by stem (``data``), toc path (``book/data``) or file path (``book/data.md``)."""
    chapters = notebooks(root)
    wanted = str(Path(name).with_suffix("")) if name.endswith((".ipynb", ".md")) else name
    try:
        as_path = str(Path(name).resolve().relative_to(root).with_suffix(""))
    except ValueError:
        as_path = None
    for page in chapters:
        if wanted in (page.stem, page.rel) or as_path == page.rel:
            return page
    known = ", ".join(p.stem for p in chapters) or "none"
    raise UserError(f"unknown chapter {name!r}; known chapters: {known} (see `ddrepro run --list`).")


# --------------------------------------------------------------------------- parameters

def notebook_source(path: Path) -> dict[str, Any]:
    """The notebook at ``path`` as nbformat's dict (a MyST notebook is converted by jupytext)."""
    path = Path(path)
    if path.suffix == ".ipynb":
        return json.loads(path.read_text())
    import jupytext

    return jupytext.read(path)


def parameters_cell(nb: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first code cell tagged ``parameters`` (papermill's convention), if any."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")


def myst_parameters_source(text: str) -> str | None:
    """The source of the first code cell tagged ``parameters`` in a MyST notebook's text.

    What jupytext's MyST reader gives for that cell, read with a scan of the code-cell fences
    and their options (``:tags: [parameters]`` lines or a ``---`` YAML block), so that checking
    a page's parameters does not import jupytext and nbformat's JSON-schema stack (most of
    ``ddrepro run``'s time on an up-to-date page). None when no such cell exists.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        i += 1
        if fence is None:
            continue
        marker = fence.group(1)
        close = next((j for j in range(i, len(lines))
                      if lines[j].strip().startswith(marker) and set(lines[j].strip()) == {marker[0]}),
                     len(lines))
        if not fence.group(2).startswith("{code-cell}"):  # another block: a code cell inside is text
            i = close + 1
            continue
        options: dict[str, Any] = {}
        if i < len(lines) and lines[i].strip() == "---":  # a YAML block of options
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "---"), len(lines))
            options = yaml.safe_load("\n".join(lines[i + 1:end])) or {}
            i = end + 1
        else:
            while i < len(lines) and lines[i].startswith(":"):
                key, _, value = lines[i][1:].partition(":")
                options[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else None
                i += 1
        body, i = lines[i:close], close + 1
        tags = options.get("tags") or []
        if "parameters" in (tags if isinstance(tags, list) else [tags]):
            return "\n".join(body).strip("\n")
    return None


def notebook_metadata(path: Path) -> dict[str, Any]:
    """A notebook's metadata: an ``.ipynb``'s own, a MyST notebook's front matter."""
    path = Path(path)
    if path.suffix == ".ipynb":
        return json.loads(path.read_text()).get("metadata", {})
    return front_matter(path)


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Names and literal defaults assigned in the notebook's ``parameters`` cell."""
    path = Path(path)
    if path.suffix == ".md":
        source = myst_parameters_source(path.read_text())
    else:
        cell = parameters_cell(notebook_source(path))
        source = None if cell is None else (
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
    if source is None:
        return {}
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    found[target.id] = None  # not a literal: any value type is accepted
    return found


def parse_value(text: str) -> Any:
    """A command-line value read as a YAML scalar/list: ``3``, ``0.5``, ``true``, ``[1, 10]``, ``cpu``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def split_params(pairs: Sequence[tuple[str, str]], defaults: Mapping[str, Any]) -> tuple[dict, dict]:
    """``-p key value`` pairs -> (notebook parameters, dotted profile overrides)."""
    from dataclasses import fields

    from .profiles import Profile

    profile_fields = {f.name for f in fields(Profile)} - {"name"}
    params: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for key, raw in pairs:
        value = parse_value(raw)
        if key in defaults:
            params[key] = value
        elif "." in key or key in profile_fields:  # profile fields: ``dm.steps``, ``ipcs``
            overrides[key] = value
        else:
            names = ", ".join(sorted(defaults)) or "none"
            raise UserError(
                f"unknown parameter {key!r}; notebook parameters: {names}; "
                "profile fields are dotted keys such as dm.steps (or ipcs, methods)."
            )
    return params, overrides


def _type_ok(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def resolve_params(page: Page, profile: str | None, pairs: Sequence[tuple[str, str]],
                   quiet: bool) -> dict[str, Any]:
    """The full parameter set a notebook is run with, validated before any kernel starts."""
    from .profiles import get_profile
    from .runtime import resolve_device

    defaults = notebook_parameters(page.source)
    params, overrides = split_params(pairs, defaults)
    for key, value in params.items():
        if not _type_ok(value, defaults[key]):
            raise UserError(
                f"parameter {key!r} = {value!r} has type {type(value).__name__}; "
                f"{page.stem} expects {type(defaults[key]).__name__} (default {defaults[key]!r})."
            )
    if profile is not None:
        params["profile"] = profile
    if overrides:
        params["overrides"] = {**params.get("overrides", defaults.get("overrides") or {}), **overrides}
    if quiet and "quiet" in defaults:
        params["quiet"] = True
    device = params.get("device", defaults.get("device", "auto"))
    seed = params.get("seed", defaults.get("seed", 0))
    if "seed" in defaults and not 0 <= seed < 2**31:  # numpy, scikit-learn and torch all take it
        raise UserError(f"parameter 'seed' = {seed!r} is out of range; use an integer in [0, 2**31).")
    try:
        get_profile(params.get("profile", defaults.get("profile", "cpu")),
                    params.get("overrides", defaults.get("overrides") or {}))
        resolve_device(device)
    except ValueError as err:
        raise UserError(str(err)) from None
    except RuntimeError:  # torch's parser rejects unknown device strings this way
        raise UserError(f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'.") from None
    return params


def profile_datasets(params: Mapping[str, Any]) -> tuple[str, ...]:
    from .profiles import get_profile

    prof = get_profile(params.get("profile", "cpu"), params.get("overrides") or {})
    return tuple(prof.data.datasets)


def check_data(names: Sequence[str]) -> None:
    """Fail before the kernel starts when a dataset the run needs is not on disk."""
    try:
        from .data import status
    except ImportError:  # no data layer installed: nothing to check against
        return
    for entry in status():
        if entry.get("name") in names and not entry.get("present"):
            raise UserError(
                f"dataset {entry['name']!r} is missing at {entry.get('path')}; "
                f"run `ddrepro data fetch {entry['name']}` (or set DDREPRO_DATA)."
            )


def fetch_data(names: Sequence[str] | None = None, *, quiet: bool = False) -> Any:
    """``ddrepro.data.fetch``, with its failures (offline, bad checksum) as one-line user errors."""
    from .data import fetch

    try:
        return fetch(list(names) if names else None, quiet=quiet)
    except (OSError, RuntimeError, ValueError) as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise UserError(f"data fetch failed: {lines[-1]}") from None


__all__ = [
    "Page", "UserError", "build_dir", "check_data", "fetch_data", "find_root", "notebook_parameters",
    "front_matter", "myst_parameters_source", "notebook_metadata", "notebook_source", "notebooks",
    "pages", "parameters_cell", "parse_value", "profile_datasets",
    "resolve_chapter", "resolve_params", "site_dir", "split_params", "stage_dir",
]
