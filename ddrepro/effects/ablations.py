"""The jobs of ``book/05_effect_alignment/ead_ablations.md``: EAD with one choice changed at a time.

The page's ablations all start from the image step size chosen on a tuning sweep, so its grid
(:func:`ddrepro.effects.grids.ead_ablations`) is staged (:func:`ddrepro.staged.run_grid`): the
sweep first, then every variant at the chosen step. This module holds what the grid and the
page share, so the two cannot disagree:

- :data:`LR_GRID`, :func:`tuning_config`, :func:`chosen_lr`: the sweep (on the first seed's
  validation split) and the choice made on it (:func:`ddrepro.tuning.best_value`);
- :func:`ablation_variants`: the variants, one field of :class:`~ddrepro.condense.ead.EADConfig`
  (or the initialisation) changed around the chosen step; :func:`ablation_plan`: which job
  computes each (variant, seed), one job per distinct run;
- :func:`variant_cell`: one variant, condensed and scored on the validation images (the page's
  former ``score``, argument for argument, so its cached runs are the same artifacts).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from ..condense import condense
from ..condense.ead import EADConfig
from ..condense.expert import expert_checkpoints
from ..config import AugConfig, EvalConfig, NetConfig
from ..evaluate import EvalResult, evaluate
from ..profiles import Profile
from ..synthetic import SyntheticSet
from ..tuning import best_value

DATASET, IPC = "mnist", 1  # the ablations' data set and budget
# Adam steps on the images and on the label logits alike; the grid reaches two factors of ~3
# below 0.003, the lower edge an earlier grid's validation chose
LR_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03)


def tuning_config(cfg: EADConfig, lr: float) -> EADConfig:
    """EAD at image and label step size ``lr``: one cell of the sweep."""
    return dataclasses.replace(cfg, lr_img=lr, lr_label=lr)


def tune_name(lr: float) -> str:
    """The job of one step size of the sweep: ``"tune/lr_img=0.003"``."""
    return f"tune/lr_img={lr:g}"


def chosen_lr(done: Mapping[str, Any]) -> float:
    """The step size of :data:`LR_GRID` with the best validation accuracy (``best_value``: the
    first on a tie), read from the sweep's jobs in ``done`` (each a ``(set, EvalResult)``)."""
    return best_value({lr: float(done[tune_name(lr)][1].mean) for lr in LR_GRID})


def check_t_ms(prof: Profile, n_real: int) -> int:
    """The expert's checkpoints; raises before any run when ``effects.t_ms`` asks for more."""
    available = expert_checkpoints(n_real, prof.ead)
    too_many = [t for t in prof.effects.t_ms if t > available]
    if too_many:  # the profile's grid runs as named, or nothing runs
        raise ValueError(f"effects.t_ms {too_many} exceed the expert's {available} checkpoints; "
                         "shorten the grid or record the expert more often (ead.checkpoint_every).")
    return available


def paper_alphas(prof: Profile, n_real: int, num_classes: int) -> tuple[float, float]:
    """Eq. 7's alpha = (|D| - |S|) / |S| on our minibatches (``batch_real`` real against at most
    ``batch_syn`` synthetic images) and on the whole sets (the training set against the
    synthetic set)."""
    cfg, n_set = prof.ead, IPC * num_classes
    n_syn = min(cfg.batch_syn, n_set)
    return (cfg.batch_real - n_syn) / n_syn, (n_real - n_set) / n_set


def ablation_variants(prof: Profile, tuned: EADConfig, n_real: int, num_classes: int
                      ) -> list[tuple[str, EADConfig, str]]:
    """``(variant, config, init)`` for every ablation around ``tuned`` (EAD at the chosen step):
    each ``effects.t_ms``; each ``effects.alphas`` and the paper's two alphas
    (:func:`paper_alphas`); fixed hard labels; noise initialisation; an expert of the profile's
    and of twice its epochs (the same checkpoints per epoch, so every t_m stays valid). A variant
    named twice is kept once (the first)."""
    cfg, study = prof.ead, prof.effects
    alphas = dict.fromkeys([*study.alphas, *paper_alphas(prof, n_real, num_classes)])
    rows = [(f"t_m={t}", dataclasses.replace(tuned, t_m=t), "real") for t in study.t_ms]
    rows += [(f"alpha={a:g}", dataclasses.replace(tuned, alpha=a), "real") for a in alphas]
    rows += [("hard labels (fixed)", dataclasses.replace(tuned, soft_labels=False), "real"),
             ("noise init", tuned, "noise")]
    rows += [(f"expert {e} epochs", dataclasses.replace(tuned, expert_epochs=e), "real")
             for e in (cfg.expert_epochs, 2 * cfg.expert_epochs)]
    first: dict[str, tuple[str, EADConfig, str]] = {}
    for row in rows:
        first.setdefault(row[0], row)
    return list(first.values())


def ablation_plan(prof: Profile, seeds: list[int], best_lr: float, n_real: int, num_classes: int
                  ) -> list[tuple[str, int, str, EADConfig, str]]:
    """``(variant, seed, job, config, init)`` for every variant on every seed.

    ``job`` names the grid job that runs it: ``"s1/t_m=5"``, or an earlier job with the very
    same run (the same seed, config and initialisation: the reference at the chosen step is
    ``alpha=0``, the profile's ``t_m`` and expert length, and on the first seed the sweep's own
    cell ``"tune/lr_img=..."``), so that no run is made twice, on Ray at once.
    """
    tuned = tuning_config(prof.ead, best_lr)
    runs = {(seeds[0], tuning_config(prof.ead, lr), "real"): tune_name(lr) for lr in LR_GRID}
    plan = []
    for s in seeds:
        for variant, config, init in ablation_variants(prof, tuned, n_real, num_classes):
            job = runs.setdefault((s, config, init), f"s{s}/{variant}")
            plan.append((variant, s, job, config, init))
    return plan


def variant_cell(*, real: Any, held_out: Any, ipc: int, config: EADConfig, seed: int,
                 net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                 device: str | torch.device, quiet: bool | None, init: str | None = None,
                 record_every: int | None = None) -> tuple[SyntheticSet, EvalResult]:
    """EAD on ``real`` with ``config`` (both calls cached), scored on the validation images.

    ``condense("ead", ...)`` then ``evaluate`` on ``held_out`` with ``eval_cfg``, as the page
    always called them (``init``: the initialisation, None for EAD's default, real images;
    ``record_every``: keep the loss trace and the images' movement, ``syn.history``).
    """
    syn = condense("ead", real, ipc, config=config, init=init, seed=seed, net_cfg=net_cfg,
                   aug_cfg=aug_cfg, record_every=record_every, device=device, quiet=quiet)
    result = evaluate(syn, held_out, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=real.flip_ok, device=device, quiet=quiet)
    return syn, result


__all__ = ["DATASET", "IPC", "LR_GRID", "ablation_plan", "ablation_variants", "check_t_ms", "chosen_lr",
           "paper_alphas", "tune_name", "tuning_config", "variant_cell"]
