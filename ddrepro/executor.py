"""Run a grid of independent jobs here, on a Ray cluster, or one shard at a time.

A paper-scale grid (256 LiRA shadow condensations, the poisoning chapter's
targets x runs x defenses) outgrows one machine. Each :class:`Job` calls a
cached function (:func:`ddrepro.condense.condense`, :func:`ddrepro.evaluate.evaluate`,
...), so its result lands in the artifact cache (:mod:`ddrepro.artifacts`).
Afterwards the chapter notebook makes the *same* calls and finds every result
there: running a grid is only a way to fill the cache, the notebook joins.

Three ways to run one grid, all giving the same artifacts:

* :class:`LocalExecutor`: in this process, one job after the other;
* :class:`RayExecutor`: as Ray tasks, on a local or an existing cluster
  (``"auto"``, :func:`auto_executor`, picks this one on a multi-core machine without a GPU);
* :func:`shard`: a deterministic slice of the grid, for a job array
  (``ddrepro precompute CHAPTER --shard $SLURM_ARRAY_TASK_ID/16``).

A failing job raises :class:`JobError` naming it; whatever finished before is
already cached, so running the grid again resumes.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from .artifacts import cache_root, source_hash
from .registry import Registry
from .runtime import progress

RAY_INSTALL_HINT = "pip install 'ddrepro[ray]'"
# Arguments Ray may copy into every task without cost; anything else that
# several jobs share goes into the object store once.
_PLAIN = (str, bytes, int, float, bool, type(None))


class JobError(RuntimeError):
    """A job of a grid failed; the message names the job, the cause is chained."""


# --------------------------------------------------------------------------- jobs

def _is_importable(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` is found again by its module and qualified name (how pickle refers to it)."""
    target: Any = sys.modules.get(getattr(fn, "__module__", None) or "")
    for part in str(getattr(fn, "__qualname__", "<none>")).split("."):
        target = getattr(target, part, None)
    return target is fn


@dataclass(frozen=True)
class Job:
    """One independent unit of a grid: ``fn(**kwargs)``, known as ``name``.

    ``fn`` must be a module-level function (Ray pickles it by reference, so
    every worker imports it); ``name`` is unique within its grid and stable
    across runs (it is how shards and errors refer to a job). A job is
    identified by ``fn`` and ``name``: its ``kwargs`` hold tensors and data
    sets, which are not compared.
    """

    fn: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(compare=False, hash=False)
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Job.name must be a non-empty string, got {self.name!r}.")
        if not callable(self.fn) or not _is_importable(self.fn):
            raise ValueError(f"job {self.name!r}: fn must be a module-level function that a "
                             f"worker can import by name, got {self.fn!r}.")
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise ValueError(f"job {self.name!r}: kwargs must be a mapping with string keys.")
        object.__setattr__(self, "kwargs", dict(self.kwargs))  # the caller's dict may change later

    def run(self) -> Any:
        return self.fn(**self.kwargs)


def check_jobs(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` as a list, after checking that each is a :class:`Job` and the names are unique."""
    jobs = list(jobs)
    wrong = [type(j).__name__ for j in jobs if not isinstance(j, Job)]
    if wrong:
        raise ValueError(f"a grid is a list of Job objects; got {', '.join(sorted(set(wrong)))}.")
    twice = sorted(name for name, n in Counter(j.name for j in jobs).items() if n > 1)
    if twice:
        raise ValueError(f"job names must be unique in a grid; repeated: {', '.join(twice)}.")
    return jobs


def _failure(job_name: str, err: BaseException) -> JobError:
    first = (str(err).strip().splitlines() or [""])[0]
    detail = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return JobError(f"job {job_name!r} failed: {detail}")


# --------------------------------------------------------------------------- shards

def shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Jobs ``index, index + count, index + 2 * count, ...`` of the grid, in grid order.

    Over ``index = 0 .. count - 1`` the shards cover every job exactly once;
    round robin spreads the expensive methods of a grid over the shards.
    """
    for what, value in (("index", index), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"shard {what} must be an integer, got {value!r}.")
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}.")
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..{count - 1} for {count} shard(s), got {index}.")
    return check_jobs(jobs)[index::count]


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/16"`` -> ``(3, 16)``; the index counts from 0 (SLURM: ``--array=0-15``)."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not found or not int(found[1]) < int(found[2]):
        raise ValueError(f"shard {text!r} must be INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4 "
                         "(the index counts from 0).")
    return int(found[1]), int(found[2])


# --------------------------------------------------------------------------- executors

def _check_cpus(cpus_per_job: Any, *, optional: bool) -> None:
    if optional and cpus_per_job is None:
        return
    if isinstance(cpus_per_job, bool) or not isinstance(cpus_per_job, int) or cpus_per_job < 1:
        raise ValueError(f"cpus_per_job must be an integer >= 1, got {cpus_per_job!r}.")


@dataclass(frozen=True)
class LocalExecutor:
    """Run the jobs in this process, one after the other, with a progress bar.

    ``cpus_per_job``: torch's thread count while the jobs run (None: leave
    it as it is); restored afterwards.
    """

    cpus_per_job: int | None = None

    def __post_init__(self) -> None:
        _check_cpus(self.cpus_per_job, optional=True)

    def map(self, jobs: Sequence[Job], *, quiet: bool | None = None) -> list[Any]:
        """Every job's result, in job order; the first failure raises :class:`JobError`."""
        jobs = check_jobs(jobs)
        threads = torch.get_num_threads()
        if self.cpus_per_job is not None:
            torch.set_num_threads(self.cpus_per_job)
        try:
            results = []
            for job in progress(jobs, desc="jobs", total=len(jobs), quiet=quiet):
                try:
                    results.append(job.run())
                except Exception as err:  # noqa: BLE001  re-raised with the job's name
                    raise _failure(job.name, err) from err
            return results
        finally:
            torch.set_num_threads(threads)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(f"the ray executor needs Ray, which is not installed; "
                          f"run `{RAY_INSTALL_HINT}`.") from None
    return ray


def _run_in_worker(fn: Callable[..., Any], keys: tuple[str, ...], threads: int, source: str,
                   *values: Any) -> Any:
    """The Ray task: ``fn(**dict(zip(keys, values)))`` with ``threads`` torch threads.

    Ray resolves the ObjectRefs among ``values`` (top-level arguments) before
    the call. The worker must import the driver's ddrepro: the artifact keys
    hash the package source, so other code would fill keys nobody reads.
    """
    if source_hash() != source:
        where = os.path.dirname(os.path.abspath(__file__))
        raise RuntimeError(f"this Ray worker imports ddrepro from {where}, whose source differs "
                           "from the driver's; install the same ddrepro on every node or set "
                           "PYTHONPATH to the driver's checkout.")
    torch.set_num_threads(threads)
    return fn(**dict(zip(keys, values)))


def shared_arguments(jobs: Sequence[Job]) -> list[Any]:
    """Argument objects (not plain scalars) that more than one job holds, each once (by identity)."""
    counts: Counter[int] = Counter()
    objects: dict[int, Any] = {}
    for job in jobs:
        for value in job.kwargs.values():
            if not isinstance(value, _PLAIN):
                counts[id(value)] += 1
                objects[id(value)] = value
    return [objects[i] for i, n in counts.items() if n > 1]


@dataclass(frozen=True)
class RayExecutor:
    """Run the jobs as Ray tasks: a local cluster, or the one at ``address`` (``"auto"``).

    Workers get ``DDREPRO_CACHE`` and ``DDREPRO_DATA`` as absolute paths,
    resolved here: on a multi-node cluster both must be on a filesystem that
    every node mounts at the same path, or results land where no notebook
    reads them. ``PYTHONPATH`` (when set) and ``DDREPRO_QUIET`` travel too;
    workers are quiet unless ``DDREPRO_QUIET`` says otherwise, since
    progress bars from many processes interleave. Each task reserves
    ``cpus_per_job`` CPUs (and torch uses as many threads) and ``gpus_per_job`` GPUs;
    ``num_cpus`` caps a local cluster started here (None: all cores).
    An argument object shared by several jobs (the same ``ImageData``,
    hundreds of MB at paper scale) is ``ray.put`` once, not pickled per job.
    """

    address: str | None = None
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        _check_cpus(self.cpus_per_job, optional=False)
        if isinstance(self.gpus_per_job, bool) or not isinstance(self.gpus_per_job, (int, float)) \
                or self.gpus_per_job < 0:
            raise ValueError(f"gpus_per_job must be a number >= 0, got {self.gpus_per_job!r}.")
        _check_cpus(self.num_cpus, optional=True)
        _import_ray()  # fail now, before a grid is built, when Ray is missing

    def worker_env(self, *, quiet: bool | None = None) -> dict[str, str]:
        """The environment variables every task runs with (read from this process now)."""
        from .data.catalog import data_root

        env = {"DDREPRO_CACHE": str(cache_root().resolve()),
               "DDREPRO_DATA": str(data_root().resolve()),
               "DDREPRO_QUIET": "1" if quiet else os.environ.get("DDREPRO_QUIET", "1")}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return env

    def _ensure_ray(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            local = {"num_cpus": self.num_cpus} if self.address is None else {}
            # ERROR: Ray's start-up notices would otherwise land in every notebook that runs a grid
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.ERROR, **local)
        return ray

    def map(self, jobs: Sequence[Job], *, quiet: bool | None = None) -> list[Any]:
        """Every job's result, in job order; a failure raises :class:`JobError` naming the job."""
        jobs = check_jobs(jobs)
        if not jobs:
            return []
        ray = self._ensure_ray()
        refs_of = {id(v): ray.put(v) for v in shared_arguments(jobs)}
        task = ray.remote(_run_in_worker).options(
            num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job,
            runtime_env={"env_vars": self.worker_env(quiet=quiet)})
        source = source_hash()
        refs = [task.remote(job.fn, tuple(job.kwargs), self.cpus_per_job, source,
                            *(refs_of.get(id(v), v) for v in job.kwargs.values()))
                for job in jobs]
        position = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(jobs)
        for ref in progress(_as_completed(ray, refs), desc="ray jobs", total=len(refs),
                            quiet=quiet):
            try:
                results[position[ref]] = ray.get(ref)
            except Exception as err:  # noqa: BLE001  re-raised with the job's name
                # cancel only what still runs: cancelling a finished task (the failed one
                # included) can abort Ray's core worker (a "task was not pending" check)
                others = [r for r in refs if r is not ref]
                _, running = ray.wait(others, num_returns=len(others), timeout=0) if others \
                    else ([], [])
                for other in running:
                    ray.cancel(other)
                cause = getattr(err, "cause", None) or err
                raise _failure(jobs[position[ref]].name, cause) from err
        return results


def _as_completed(ray: Any, refs: list[Any]) -> Iterator[Any]:
    """The task references in the order the tasks finish."""
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield done[0]


EXECUTORS: Registry[type] = Registry("executor")
EXECUTORS.register("local")(LocalExecutor)
EXECUTORS.register("ray")(RayExecutor)


def auto_executor() -> LocalExecutor | RayExecutor:
    """A local Ray cluster over this machine's cores, one job per core on one thread, when Ray is
    installed, there is more than one core and no CUDA device; else :class:`LocalExecutor`.

    Why: a grid's jobs are small networks, which a second torch thread speeds up by 1.7x at
    best (a Chapter 3 cell on a 2-core machine: 61 s on one thread, 36 s on two). Measured on
    Chapter 3's ``beyond`` page, cold on 2 idle cores: 17m02s as one job after another on two
    threads, 12m38s as two single-thread Ray jobs side by side. On a GPU the jobs run one after
    another in this process, on the device.
    """
    if (os.cpu_count() or 1) > 1 and not torch.cuda.is_available():
        try:
            return RayExecutor()
        except ImportError:
            pass
    return LocalExecutor()


EXECUTOR_NAMES = ("auto", *EXECUTORS.names())


def get_executor(name: str = "local", **kwargs: Any) -> LocalExecutor | RayExecutor:
    """``"local"``, ``"ray"`` (built with ``kwargs``, e.g. ``address="auto"``, ``cpus_per_job=2``)
    or ``"auto"`` (:func:`auto_executor`, no options)."""
    if name == "auto":
        if kwargs:
            raise ValueError(f"the auto executor takes no options (got {', '.join(kwargs)}); "
                             "choose local or ray to set them.")
        return auto_executor()
    if name not in EXECUTORS:
        raise ValueError(f"Unknown executor {name!r}; known: {', '.join(EXECUTOR_NAMES)}.")
    return EXECUTORS.get(name)(**kwargs)


__all__ = [
    "EXECUTORS", "EXECUTOR_NAMES", "Job", "JobError", "LocalExecutor", "RAY_INSTALL_HINT", "RayExecutor",
    "auto_executor", "check_jobs", "get_executor", "parse_shard", "shard", "shared_arguments",
]
