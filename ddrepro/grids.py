"""The registry of the chapters' grids of independent jobs, so a cluster can fill the cache a
notebook reads.

A grid builder takes the resolved profile and the notebook's ``seed``,
``device`` and ``quiet`` and returns the :class:`ddrepro.executor.Job` list
that computes a chapter's expensive results. Each job calls the cached
functions with *exactly* the arguments the notebook passes, so the artifact
keys agree: after ``ddrepro precompute CHAPTER`` (on Ray, or as shards of a
job array) the notebook's own calls are cache hits, and the notebook, run by
``ddrepro run CHAPTER``, only joins results.

Each study package registers its own grids (``ddrepro/poisoning/grids.py``,
...); looking a grid up loads the study packages first
(:func:`ddrepro.studies.load_studies`), so this module imports none of them.

    jobs = GRIDS.get("does_it_work")(prof, seed=0, device="auto", quiet=None)
    results = get_executor("ray").map(jobs)
"""

from __future__ import annotations

from typing import Callable

from .executor import Job
from .registry import Registry

# (prof, *, seed, device, quiet) -> list[Job]
GridBuilder = Callable[..., list[Job]]


class _GridRegistry(Registry[GridBuilder]):
    """A :class:`~ddrepro.registry.Registry` that loads the study packages before any look-up."""

    def get(self, name: str) -> GridBuilder:
        _load()
        return super().get(name)

    def names(self) -> list[str]:
        _load()
        return super().names()

    def __contains__(self, name: object) -> bool:
        _load()
        return super().__contains__(name)


def _load() -> None:
    from .studies import load_studies

    load_studies()


GRIDS: Registry[GridBuilder] = _GridRegistry("grid")


def register_grid(name: str, *, replace: bool = False) -> Callable[[GridBuilder], GridBuilder]:
    """Decorator: ``@register_grid("does_it_work")`` above a grid builder; ``name`` is the chapter's stem."""
    return Registry.register(GRIDS, name, replace=replace)


__all__ = ["GRIDS", "GridBuilder", "register_grid"]
