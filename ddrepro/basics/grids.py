"""Chapter 1's grid: the "does it work?" table as independent jobs (``book/01_basics/does_it_work``)."""

from __future__ import annotations

import torch

from ..evaluate import train_full
from ..executor import Job
from ..experiment import condense_and_evaluate, real_and_test
from ..grids import register_grid
from ..profiles import Profile


@register_grid("does_it_work")
def does_it_work(prof: Profile, *, seed: int, device: str | torch.device,
                 quiet: bool | None) -> list[Job]:
    """Chapter 1's table: per data set, one job per (ipc, method), then the full-data ceiling.

    Job names: ``"mnist/dm/ipc10"`` and ``"mnist/full"``. A job's result is
    ``(SyntheticSet, EvalResult)``, or the ceiling's ``EvalResult``.
    """
    jobs = []
    for name in prof.data.datasets:
        real, test = real_and_test(prof, name, seed)  # loaded once, shared by this data set's jobs
        for ipc in prof.ipcs:
            for method in prof.methods:
                kwargs = dict(method=method, real=real, test=test, ipc=ipc,
                              config=prof.condenser_config(method), seed=seed, net_cfg=prof.net,
                              aug_cfg=prof.aug, eval_cfg=prof.eval, device=device, quiet=quiet)
                jobs.append(Job(condense_and_evaluate, kwargs, name=f"{name}/{method}/ipc{ipc}"))
        full = dict(real=real, test=test, net_cfg=prof.net, eval_cfg=prof.full, aug_cfg=prof.aug,
                    seed=seed, device=device, quiet=quiet)
        jobs.append(Job(train_full, full, name=f"{name}/full"))
    return jobs


__all__ = ["does_it_work"]
