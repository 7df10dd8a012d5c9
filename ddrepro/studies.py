"""The chapters' study packages, found as plugins so that the engine names none of them.

A study package (``ddrepro.privacy``, ``ddrepro.poisoning``, ...) registers, when
imported, its profile sections (:func:`ddrepro.profiles.register_section`) and its
grids (:func:`ddrepro.grids.register_grid`). It declares itself in
``pyproject.toml``::

    [project.entry-points."ddrepro.studies"]
    poisoning = "ddrepro.poisoning"

and :func:`load_studies` imports every package so declared, once, before a
profile is resolved or a grid is looked up. A package outside this repository
can add a chapter the same way, without an edit to the engine.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

GROUP = "ddrepro.studies"

_loaded: list[str] | None = None


def study_packages() -> list[str]:
    """The module names declared under the ``ddrepro.studies`` entry-point group, in order."""
    seen: dict[str, None] = {}
    for entry in entry_points(group=GROUP):
        seen.setdefault(entry.value, None)
    return list(seen)


def load_studies() -> list[str]:
    """Import every declared study package (once per process); returns their module names."""
    global _loaded
    if _loaded is None:
        names = study_packages()
        if not names:
            raise RuntimeError(
                "no ddrepro study package is declared: ddrepro is not installed as a distribution "
                "(its entry points are missing). Install it with `pip install -e .` "
                "(`bash tools/dev.sh test` does this)."
            )
        _loaded = names  # set first: a study package that resolves a profile at import can't recurse
        for name in names:
            importlib.import_module(name)
    return list(_loaded)


__all__ = ["GROUP", "load_studies", "study_packages"]
