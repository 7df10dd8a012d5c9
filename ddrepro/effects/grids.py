"""Chapter 5's grids: every expensive call of the EAD page (``book/05_effect_alignment/ead.md``)
and of its ablations (``ead_ablations.md``).

``ddrepro precompute ead`` fills the cache with the first grid's jobs; the page builds the same
list (:func:`ead`) and runs it with its executor, so on a warm cache every job is a hit. The
ablations' grid (:func:`ead_ablations`) is staged (:func:`ddrepro.staged.run_grid`): its second
stage starts from the step size its first stage's sweep chooses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from ..executor import Job
from ..experiment import real_and_test, real_val_and_test
from ..grids import register_grid
from ..profiles import Profile
from .ablations import (DATASET, IPC, LR_GRID, ablation_plan, check_t_ms, chosen_lr, tune_name,
                        tuning_config, variant_cell)
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


def start_name(seed: int, labels: str) -> str:
    """EAD's start on seed ``seed`` with ``labels`` ``"hard"`` or ``"soft"``: ``"s0/start-soft"``."""
    return f"s{seed}/start-{labels}"


def mtt_name(dataset: str, lr_img: float) -> str:
    """One cell of MTT's image-step sweep: ``"mtt/mnist/lr_img=10"``."""
    return f"mtt/{dataset}/lr_img={lr_img:g}"


LONG = "long"  # the one EAD run at effects.long_factor times the steps, with its trace


def ablation_splits(prof: Profile, seed: int) -> dict[int, tuple[Any, Any]]:
    """Per distillation seed, the training subset and the validation split held out from it
    (``experiment.real_val_and_test``, ``effects.val_per_class`` images per class)."""
    return {s: real_val_and_test(prof, DATASET, s, prof.effects.val_per_class)[:2]
            for s in seeds_of(prof, seed)}


@register_grid("ead_ablations")
def ead_ablations(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None,
                  done: Mapping[str, Any] | None = None) -> list[Job]:
    """The ablation page's jobs (MNIST, IPC 1, every set scored on its seed's validation split
    with the profile's evaluation), in two stages.

    Stage 1, which needs no result:

    - ``"tune/lr_img=0.003"``: EAD at each image (and label) step size of
      :data:`~ddrepro.effects.ablations.LR_GRID`, on the first seed's split;
    - per seed, EAD's starting point with no EAD step: the random real images with hard labels
      (``"s0/start-hard"``, the ``random`` cell) and with the expert's soft labels
      (``"s0/start-soft"``, :func:`~ddrepro.effects.cells.soft_start_cell`);
    - ``"mtt/mnist/lr_img=10"``: MTT at each of ``mtt_lr_img.values`` per data set, on the
      page's seed's split, evaluated at MTT's learned step.

    Stage 2, once the sweep is in ``done``: the step size :func:`~ddrepro.effects.ablations.chosen_lr`
    picks, then the run at ``effects.long_factor`` times the steps with its trace (``"long"``),
    and every ablation variant per seed (:func:`~ddrepro.effects.ablations.ablation_plan`:
    ``"s1/t_m=5"``, ``"s0/noise init"``, ...; a run that an earlier job already makes is not
    named twice). ``effects.t_ms`` beyond the expert's checkpoints raise before anything runs.
    """
    cfg, study, done = prof.ead, prof.effects, done or {}
    splits = ablation_splits(prof, seed)
    seeds = list(splits)
    real, val = splits[seeds[0]]  # the sweep's split
    check_t_ms(prof, len(real))
    common = dict(ipc=IPC, net_cfg=prof.net, aug_cfg=prof.aug, eval_cfg=prof.eval, device=device,
                  quiet=quiet)
    jobs = [Job(variant_cell, dict(real=real, held_out=val, config=tuning_config(cfg, lr), seed=seeds[0],
                                   init="real", **common), name=tune_name(lr)) for lr in LR_GRID]
    for s, (train, held_out) in splits.items():
        start = dict(real=train, test=held_out, seed=s, **common)
        jobs += [Job(distil_cell, dict(method="random", config=None, **start), name=start_name(s, "hard")),
                 Job(soft_start_cell, dict(config=cfg, **start), name=start_name(s, "soft"))]
    choice = prof.mtt_lr_img
    for name in prof.data.datasets:
        real_d, val_d, _ = real_val_and_test(prof, name, seed, study.val_per_class)
        for value in choice.values:
            jobs.append(Job(distil_cell, dict(method="mtt", real=real_d, test=val_d, seed=seed,
                                              config=dataclasses.replace(prof.mtt, lr_img=value),
                                              **(common | {"ipc": choice.ipc})),
                            name=mtt_name(name, value)))
    if not all(tune_name(lr) in done for lr in LR_GRID):
        return jobs  # stage 1
    best_lr = chosen_lr(done)
    long_cfg = dataclasses.replace(tuning_config(cfg, best_lr), steps=study.long_factor * cfg.steps)
    jobs.append(Job(variant_cell, dict(real=real, held_out=val, config=long_cfg, seed=seeds[0],
                                       record_every=max(1, long_cfg.steps // 200), **common), name=LONG))
    named = {job.name for job in jobs}
    for _, s, job, config, init in ablation_plan(prof, seeds, best_lr, len(real), real.num_classes):
        if job not in named:
            train, held_out = splits[s]
            jobs.append(Job(variant_cell, dict(real=train, held_out=held_out, config=config, seed=s,
                                               init=init, **common), name=job))
            named.add(job)
    return jobs


__all__ = ["LONG", "METHODS", "ablation_splits", "cell_name", "config_for", "ead", "ead_ablations",
           "mtt_name", "seeds_of", "start_name"]
