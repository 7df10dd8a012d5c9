"""LiRA on every arm (issue 23, item 1): DM with real initialisation, KIP, and a non-private model
trained on the full members, attacked by the pipeline that attacks DM with noise initialisation.

Each arm trains one victim per LiRA half of the membership study, the halves and seeds of DM's
LiRA (:func:`ddrepro.privacy.critique.lira_masks`, :func:`ddrepro.privacy.membership.lira_seeds`:
the K balanced shadow halves, then the T independent target halves), with the DM victims' recipe
(:func:`~ddrepro.privacy.membership.victim_eval`: optimiser, epochs, batch, DSA), and queries it on
LiRA's probe rows and on the validation split (for the accuracy axis of the critique's figure).
Only what trains the victim differs from DM's noise-initialised arm:

* ``dm-real``: DM from real images of the half (``init="real"``), Table 1's leaking case;
* ``kip``: KIP (Nguyen et al. 2021) from noise, as the paper's Fig. 2 attacks it (no ZCA; Siamese
  DSA and the paper's rate at ``lira_r_ipc``, App. E.1, :func:`~ddrepro.privacy.membership.study_config`);
* ``full``: no distillation at all, the network trained on the whole half
  (:func:`full_members`, :func:`ddrepro.evaluate.train_full`): what the member set gives a
  model without DM, the reference point of "privacy for free".

The attack is DM's: the T targets are attacked by the K shadows, one AUC / TPR per target model
(:func:`ddrepro.privacy.per_unit.per_target_auc`). Not every shadow the target in turn: the
shadows' halves are balanced (every example IN for exactly K/2 of them), so leaving one out tells
the attack the answer (:mod:`ddrepro.privacy.per_unit` measures the bias); the targets' halves are
independent of the shadows', which keeps each target an honest unit. Reusing DM's halves and
seeds means the arms differ from DM's arm, and from each other, only in how the victim is trained.

Nothing cached imports this module (the grid and the page do), so editing it re-keys nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import AugConfig, EvalConfig, NetConfig
from ..data import ImageData
from ..evaluate import EvalResult, train_full
from ..executor import Job
from .critique import CritiqueStudy, lira_masks
from .membership import lira_kwargs, lira_phi, lira_seeds, shadow, study_config

ARMS = ("dm-real", "kip", "full")  # job names lira-{arm}/shadow{k}, lira-{arm}/target{t}
LABELS = {"dm-real": "DM real init", "kip": "KIP noise init", "full": "trained on the full half"}


def full_members(*, pool: ImageData, subset: Tensor, test: ImageData, probes: dict[str, Any],
                 probe_flip: bool, seed: int, net_cfg: NetConfig, eval_cfg: EvalConfig,
                 aug_cfg: AugConfig, device: Any = "auto", quiet: bool | None = None) -> EvalResult:
    """The non-private victim: a network trained on ``pool``'s rows ``subset`` (the whole half)
    with the victims' recipe, tested on ``test`` and queried on ``probes``; cached by
    :func:`~ddrepro.evaluate.train_full` (the engine's whole-data protocol)."""
    if subset.dtype != torch.bool or subset.shape != (len(pool),):
        raise ValueError(f"subset must be a ({len(pool)},) bool mask over the pool.")
    return train_full(pool.take(subset), test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg,
                      seed=seed, flip=pool.flip_ok, probes=probes, probe_flip=probe_flip,
                      device=device, quiet=quiet)


def arm_kwargs(prof: Any, crit: CritiqueStudy, arm: str, *, device: Any,
               quiet: bool | None) -> dict[str, Any]:
    """What every model of ``arm`` shares: DM's LiRA arguments
    (:func:`~ddrepro.privacy.membership.lira_kwargs`) with the arm's change, probed on LiRA's
    rows (``"pool"``) and the validation split (``"val"``)."""
    if arm not in ARMS:
        raise ValueError(f"arm = {arm!r}: choose one of {ARMS}.")
    study = crit.study
    shared = lira_kwargs(prof, study, device=device, quiet=quiet)
    probes = {"pool": study.probes, "val": crit.val}
    if arm == "dm-real":
        return dict(shared, init="real", probes=probes)
    if arm == "kip":
        return dict(shared, method="kip", config=study_config(prof, "kip", prof.privacy.lira_r_ipc),
                    probes=probes)
    return dict(pool=study.pool, test=study.test, probes=probes, probe_flip=shared["probe_flip"],
                net_cfg=prof.net, eval_cfg=shared["eval_cfg"], aug_cfg=prof.aug, device=device,
                quiet=quiet)


def model_names(prof: Any) -> list[str]:
    """LiRA's models in the order of :func:`~ddrepro.privacy.critique.lira_masks`."""
    cfg = prof.privacy
    return [f"shadow{k}" for k in range(cfg.shadows)] + [f"target{t}" for t in range(cfg.lira_targets)]


def arm_jobs(prof: Any, crit: CritiqueStudy, *, seed: int, device: Any,
             quiet: bool | None) -> list[Job]:
    """One job per arm and LiRA model (``lira-{arm}/shadow{k}``, ``lira-{arm}/target{t}``), on DM's
    halves with DM's seeds."""
    halves = lira_masks(crit.study)
    shadow_seeds, target_seeds = lira_seeds(prof, seed)
    jobs = []
    for arm in ARMS:
        fn = full_members if arm == "full" else shadow
        shared = arm_kwargs(prof, crit, arm, device=device, quiet=quiet)
        jobs += [Job(fn, dict(shared, subset=mask, seed=s), name=f"lira-{arm}/{name}")
                 for name, mask, s in zip(model_names(prof), halves, shadow_seeds + target_seeds)]
    return jobs


def arm_results(done: dict[str, Any], prof: Any, arm: str) -> list[EvalResult]:
    """The arm's victims' evaluations, shadows then targets, from the grid's outputs by name."""
    outs = [done[f"lira-{arm}/{name}"] for name in model_names(prof)]
    return [out[1] if isinstance(out, tuple) else out for out in outs]  # shadow() gives (S, result)


def arm_phi(results: list[EvalResult], probe_flip: bool) -> Tensor:
    """LiRA's ``phi`` ``(K + T, n[, 2])`` on the probe rows (the mirror as a second query)."""
    return torch.cat([lira_phi(r.probes["pool"], probe_flip) for r in results])


def arm_val_acc(results: list[EvalResult], val: ImageData) -> np.ndarray:
    """Each victim's accuracy on the validation split, from its ``"val"`` probe's logits."""
    return np.asarray([float((r.probes["val"]["logits"].argmax(-1) == val.labels).float().mean())
                       for r in results])


__all__ = ["ARMS", "LABELS", "arm_jobs", "arm_kwargs", "arm_phi", "arm_results", "arm_val_acc",
           "full_members", "model_names"]
