"""Many condensations of many subsets of one pool: LiRA's shadow syntheses, leave-one-out sets.

:func:`condense_many` condenses ``real.take(subset)`` for every subset, each
with its own seed, and returns the synthetic sets in order. Each is an
ordinary :func:`~ddrepro.condense.base.condense` call, cached under its
*lineage* key (the pool's identity, the subset's rows, the seed, the config
and the method's code; no pixels are re-hashed), so a run resumes after a
kill and a later call finds the sets already made. The condensations are
independent jobs (:mod:`ddrepro.executor`): in this process by default, or
spread over a Ray cluster or a job array that fills the same cache.

Not batched *across* subsets: two syntheses share no network draw or real
batch, so batching them would only stack independent work, which a CPU runs
no faster (the evaluator's grouped-model engine measured 0.3-0.7x a loop on
this 2-core machine, ``benchmarks/bench_eval_batched.py``), while a single
paper-size DM step (2,560 real images through ConvNet-3 width 128) already
makes large kernels. Parallelism across syntheses comes from the executor.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..executor import Job, LocalExecutor
from ..synthetic import SyntheticSet
from .base import CONDENSERS, condense


def condense_subset(*, method: str, real: Any, subset: torch.Tensor, ipc: int,
                    **kwargs: Any) -> SyntheticSet:
    """``condense(method, real.take(subset), ipc, **kwargs)``: one job of :func:`condense_many`."""
    return condense(method, real.take(subset), ipc, **kwargs)


def _check_subsets(subsets: Sequence[torch.Tensor], n: int) -> list[torch.Tensor]:
    checked = []
    for i, subset in enumerate(subsets):
        ok = isinstance(subset, torch.Tensor) and subset.dim() == 1 and (
            subset.dtype == torch.int64 or (subset.dtype == torch.bool and subset.shape[0] == n))
        if not ok:
            what = (f"{subset.dtype} {tuple(subset.shape)}" if isinstance(subset, torch.Tensor)
                    else type(subset).__name__)
            raise ValueError(f"subset {i} must be int64 row indices or a bool mask of length {n}, "
                             f"got {what}.")
        checked.append(subset.cpu())
    if not checked:
        raise ValueError("condense_many needs at least one subset.")
    return checked


def condense_many(method: str, real: Any, ipc: int, *, subsets: Sequence[torch.Tensor],
                  seeds: int | Sequence[int] = 0, executor: Any = None,
                  quiet: bool | None = None, **kwargs: Any) -> list[SyntheticSet]:
    """N condensations: set i distils ``real.take(subsets[i])`` with seed ``seeds[i]``.

    ``subsets``: int64 row indices or bool masks over ``real``; ``seeds``: one
    int for all, or one per subset; ``executor``: where the jobs run
    (:class:`~ddrepro.executor.LocalExecutor` by default, or a
    :class:`~ddrepro.executor.RayExecutor`); ``kwargs`` go to every ``condense``
    call (``config``, ``init``, ``net_cfg``, ``aug_cfg``, ``device``, ...). Each
    set's ``meta["init_indices"]`` and the subset give exact membership in ``real``'s root.
    """
    CONDENSERS.get(method)  # an unknown method fails before anything runs
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ValueError(f"ipc must be an integer >= 1, got {ipc!r}.")
    subsets = _check_subsets(subsets, len(real))
    seeds = [seeds] * len(subsets) if isinstance(seeds, int) else list(seeds)
    if len(seeds) != len(subsets) or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be an int or {len(subsets)} ints (one per subset), got {seeds!r}.")
    jobs = [Job(condense_subset, dict(method=method, real=real, subset=subset, ipc=ipc, seed=seed,
                                      quiet=True if quiet is None else quiet, **kwargs),
                name=f"{method}/subset{i}/seed{seed}")
            for i, (subset, seed) in enumerate(zip(subsets, seeds))]
    return (executor or LocalExecutor()).map(jobs, quiet=quiet)


__all__ = ["condense_many", "condense_subset"]
