"""Staged grids: a grid whose later jobs' arguments depend on its earlier jobs' results.

A grid builder (:mod:`ddrepro.grids`) returns the jobs of a chapter's expensive calls. Some grids
cannot name them all up front: Chapter 5's ablations all start from the image step size chosen
on a tuning sweep, so their arguments depend on the sweep's results. Such a builder takes a
keyword ``done`` (the results of the jobs run so far, by job name) and returns every job it can
name from them: the first stage when ``done`` is empty, the first and the second once the first
stage's results are there, and so on. :func:`run_grid` builds, runs the jobs not yet done, and
builds again until the builder names no new job; a builder without ``done`` is one stage, as
``executor.map(builder(...))`` always ran it.

    results = run_grid("ead_ablations", prof, seed=0, device="auto", quiet=None, executor="ray")

``ddrepro precompute`` runs every grid through :func:`run_staged` (with ``--shard``, each
stage's new jobs are sharded). This module is apart from :mod:`ddrepro.grids`, which the code
closure of several chapters' cached jobs imports (through their ``grids.py``): a change here
re-keys no artifact.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from .executor import Job, check_jobs, get_executor, shard
from .grids import GRIDS, GridBuilder

MAX_STAGES = 16  # a builder still naming new jobs after this many stages never converges


def is_staged(builder: GridBuilder) -> bool:
    """True when ``builder`` takes the keyword ``done`` (the results so far): a staged grid."""
    try:
        return "done" in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False


class _Done(Mapping[str, Any]):
    """The results a staged builder sees: those run here, and (in a shard) the earlier stages'
    jobs of other shards, each run here (with the grid's executor) the first time the builder
    reads it.

    So a shard runs exactly the earlier-stage jobs that a later stage's choice reads (a cache hit
    once the shard that owns the job computed it), never the ones no choice reads.
    """

    def __init__(self, executor: Any, quiet: bool | None) -> None:
        self.executor, self.quiet = executor, quiet
        self.results: dict[str, Any] = {}
        self.elsewhere: dict[str, Job] = {}  # named, another shard's: run on first read
        self.pulled: list[str] = []

    def __getitem__(self, name: str) -> Any:
        if name not in self.results and name in self.elsewhere:
            job = self.elsewhere.pop(name)
            self.results[name] = self.executor.map([job], quiet=self.quiet)[0]
            self.pulled.append(name)
        return self.results[name]

    def __contains__(self, name: object) -> bool:
        return name in self.results or name in self.elsewhere

    def __iter__(self) -> Iterator[str]:
        yield from self.results
        yield from (n for n in list(self.elsewhere) if n not in self.results)

    def __len__(self) -> int:
        return len(self.results) + len(self.elsewhere.keys() - self.results.keys())


@dataclass(frozen=True)
class GridRun:
    """What :func:`run_staged` did: ``results`` by job name (this shard's jobs and the earlier-stage
    jobs it read; every job without shards), ``stages`` the job names each stage added, in order,
    ``ran`` the names run here (this shard's, then the other shards' that a later stage read)."""

    results: dict[str, Any]
    stages: tuple[tuple[str, ...], ...]
    ran: tuple[str, ...]

    @property
    def jobs(self) -> int:
        """How many jobs the grid named, over all stages (all shards)."""
        return sum(len(stage) for stage in self.stages)


def run_staged(name_or_builder: str | GridBuilder, prof: Any, *, seed: int, device: Any,
               quiet: bool | None, executor: Any = "local", shard_of: tuple[int, int] = (0, 1),
               max_stages: int = MAX_STAGES) -> GridRun:
    """Run a grid, stage by stage, and say what ran (:func:`run_grid` returns its ``results``).

    Build the jobs (a staged builder gets ``done=``, the results so far), run those not yet done
    with ``executor`` (a name for :func:`~ddrepro.executor.get_executor`, or an executor), merge,
    build again; stop when the builder names no new job. A rebuild must name every job it named
    before (a builder names what it can from ``done``; it never takes a job back), and a builder
    still naming new jobs after ``max_stages`` stages raises :class:`RuntimeError`.

    Shards (``shard_of=(index, count)``, a job array): each stage's *new* jobs are sharded round
    robin (:func:`ddrepro.executor.shard`), so every shard runs its share of every stage. To build
    the next stage a shard needs the results its choice reads, some of them other shards' jobs:
    the builder sees those as done, and the first read runs the job here (a cache hit when the
    shard that owns it finished first, else computed twice, to the same artifact). So each shard
    runs exactly the earlier jobs that a later stage's choice reads: for Chapter 5's ablations,
    the step-size sweep, not the starts or MTT's sweep. The shards together cover every job; a
    shard's ``results`` hold its jobs and the ones it read.
    """
    builder = GRIDS.get(name_or_builder) if isinstance(name_or_builder, str) else name_or_builder
    staged = is_staged(builder)
    run = get_executor(executor) if isinstance(executor, str) else executor
    index, count = shard_of
    done = _Done(run, quiet)
    stages: list[tuple[str, ...]] = []
    ran: list[str] = []
    while True:
        extra = {"done": done} if staged else {}
        jobs = check_jobs(builder(prof, seed=seed, device=device, quiet=quiet, **extra))
        named = {job.name for job in jobs}
        dropped = [n for stage in stages for n in stage if n not in named]
        if dropped:
            raise ValueError(f"a staged grid builder must name every job it named before; this "
                             f"stage dropped {', '.join(dropped[:5])}"
                             + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "") + ".")
        new = [job for job in jobs if job.name not in done]
        if not new:
            break
        if len(stages) == max_stages:
            raise RuntimeError(f"the grid builder still names new jobs after {max_stages} stages "
                               f"(now {', '.join(j.name for j in new[:5])}, ...): a staged builder "
                               "must name no new job once every job it named is done.")
        stages.append(tuple(job.name for job in new))
        mine = shard(new, index, count)
        done.results.update(zip([job.name for job in mine], run.map(mine, quiet=quiet)))
        ran += [job.name for job in mine]
        done.elsewhere.update({job.name: job for job in new if job.name not in done.results})
        if not staged:
            break
    ran += done.pulled
    order = [n for stage in stages for n in stage]
    return GridRun({n: done.results[n] for n in order if n in done.results}, tuple(stages), tuple(ran))


def run_grid(name_or_builder: str | GridBuilder, prof: Any, *, seed: int, device: Any,
             quiet: bool | None, executor: Any = "local", shard: tuple[int, int] = (0, 1)
             ) -> dict[str, Any]:
    """Every job's result by name, the grid run stage by stage (:func:`run_staged`; with
    ``shard``, this shard's jobs and the earlier-stage ones its later stages read)."""
    return run_staged(name_or_builder, prof, seed=seed, device=device, quiet=quiet,
                      executor=executor, shard_of=shard).results


__all__ = ["GridRun", "MAX_STAGES", "is_staged", "run_grid", "run_staged"]
