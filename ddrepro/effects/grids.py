"""Chapter 5's grid (``book/05_effect_alignment/ead.md``): every expensive call of the EAD page.

``ddrepro precompute ead`` fills the cache with these jobs; the page builds the same list
(:func:`ead`) and runs it with its executor, so on a warm cache every job is a hit.
"""

from __future__ import annotations

from typing import Any

import torch

from ..executor import Job
from ..experiment import real_and_test
from ..grids import register_grid
from ..profiles import Profile
from .cells import (COSTED, TRACED, cost_cell, distil_cell, equal_batches, eval_config,
                    matched_mtt, record_every, soft_start_cell, train_experts)

# the table's methods, in Chapter 1's order, then MTT and EAD
METHODS = ("random", "herding", "dc", "dsa", "dm", "mtt", "ead")


def seeds_of(prof: Profile, seed: int) -> list[int]:
    """The distillation seeds of every cell: ``seed``, ``seed + 1``, ... (``effects.seeds``)."""
    return [seed + i for i in range(prof.effects.seeds)]


def config_for(prof: Profile, method: str, dataset: str) -> Any:
    """The profile's config of ``method``; MTT's with ``dataset``'s image step (``mtt_lr_img``,
    chosen on ead_ablations)."""
    config = prof.condenser_config(method)
    return prof.mtt_lr_img.apply(config, dataset) if method == "mtt" else config


def cell_name(dataset: str, seed: int, ipc: int, what: str) -> str:
    """A job's name: ``"mnist/s0/ipc10/ead"`` (``what``: a method, ``soft-start``,
    ``mtt-matched`` or ``cost-<method>``)."""
    return f"{dataset}/s{seed}/ipc{ipc}/{what}"


@register_grid("ead")
def ead(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """The EAD page's jobs, per data set and distillation seed (:func:`seeds_of`):

    - ``"mnist/s0/expert-ead"``, ``"mnist/s0/expert-mtt"``: EAD's expert and MTT's buffer
      (:func:`~ddrepro.effects.cells.train_experts`), first so that they are trained once;
    - per IPC, one :func:`~ddrepro.effects.cells.distil_cell` per method of :data:`METHODS`
      (``"mnist/s0/ipc1/dm"``; EAD and MTT with their loss traces), EAD's start with soft
      labels (``".../soft-start"``), MTT at EAD's gradient evaluations (``".../mtt-matched"``,
      :func:`~ddrepro.effects.cells.matched_mtt`), and EAD, MTT and DM at equal batch sizes for
      time and peak memory (``".../cost-ead"``, :func:`~ddrepro.effects.cells.cost_cell`).

    Every set is evaluated with ``effects.eval_models`` networks
    (:func:`~ddrepro.effects.cells.eval_config`).
    """
    eval_cfg = eval_config(prof)
    common = dict(net_cfg=prof.net, aug_cfg=prof.aug, device=device, quiet=quiet)
    first, cells = [], []
    for name in prof.data.datasets:
        for s in seeds_of(prof, seed):
            real, test = real_and_test(prof, name, s)  # a seed draws the real and test subsets
            for method in TRACED:
                first.append(Job(train_experts, dict(real=real, method=method, seed=s,
                                                     config=config_for(prof, method, name), **common),
                                 name=f"{name}/s{s}/expert-{method}"))
            for ipc in prof.ipcs:
                data = dict(real=real, test=test, ipc=ipc, seed=s, eval_cfg=eval_cfg, **common)
                for method in METHODS:
                    config = config_for(prof, method, name)
                    trace = record_every(config) if method in TRACED else None
                    cells.append(Job(distil_cell, dict(method=method, config=config, record_every=trace,
                                                       **data), name=cell_name(name, s, ipc, method)))
                cells.append(Job(soft_start_cell, dict(config=prof.ead, **data),
                                 name=cell_name(name, s, ipc, "soft-start")))
                matched = matched_mtt(prof.ead, config_for(prof, "mtt", name), ipc, real.num_classes)
                cells.append(Job(distil_cell, dict(method="mtt", config=matched,
                                                   record_every=record_every(matched), **data),
                                 name=cell_name(name, s, ipc, "mtt-matched")))
                for method in COSTED:
                    config = equal_batches(prof, method, config_for(prof, method, name), ipc,
                                           real.num_classes)
                    cells.append(Job(cost_cell, dict(method=method, real=real, ipc=ipc, config=config,
                                                     seed=s, **common),
                                     name=cell_name(name, s, ipc, f"cost-{method}")))
    return first + cells


__all__ = ["METHODS", "cell_name", "config_for", "ead", "seeds_of"]
