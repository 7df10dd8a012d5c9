"""LiRA against DP-SGD (issue 23, item 1): the critique's DP-SGD arms attacked by the chapter's
LiRA pipeline, so that their points in the central figure and DM's come from the same attack.

At each target epsilon, ``dp_lira_models`` networks are trained by DP-SGD
(:func:`ddrepro.privacy.dpsgd.dp_sgd`, the critique's settings) on independent random halves of
a pool of ``2 * dp_per_class`` images per class, and queried on the whole pool (the image and its
mirror). Every model is the target in turn, the others its shadows
(:func:`ddrepro.privacy.lira.leave_one_out_scores`): its shadows are trained by DP-SGD at the same
epsilon, as Carlini et al. train shadows like the target.

Why leaving one out is honest here and not for the chapter's DM shadows: those are drawn with
``balanced_membership`` (every example IN for exactly half the models), so leaving out a model
that holds an example leaves one IN shadow fewer, and the design leaks the answer
(:func:`ddrepro.privacy.per_unit.per_target_auc` measures it). Here each model's half is drawn
independently of the others' (:func:`independent_halves`), so the other models' memberships
carry nothing about the target's; examples with too few IN or OUT models among the others are
left out per target, a choice that depends on the others only (:func:`loo_per_target`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..artifacts import cached
from ..config import NetConfig
from ..data import ImageData
from ..evaluate import accuracy, probe
from ..executor import Job
from .dpsgd import check_privacy_target, dp_sgd
from .lira import leave_one_out_scores
from .membership import half_mask, lira_phi
from .per_unit import tpr_at


def independent_halves(pool: ImageData, models: int, seed: int) -> Tensor:
    """``(models, n)`` bool: model k holds a random half of every class of ``pool``, drawn
    independently for each model (unlike ``balanced_membership``)."""
    if isinstance(models, bool) or not isinstance(models, int) or models < 3:
        raise ValueError(f"models = {models!r}: leave-one-out LiRA needs >= 3 models.")
    return torch.stack([half_mask(pool, seed=1000 * seed + k) for k in range(models)])


def loo_per_target(phi: Tensor, member: Tensor, *, fpr: float, global_variance: bool = True,
                   fit: str = "mean") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every model the target in turn (:func:`~ddrepro.privacy.lira.leave_one_out_scores`), on the
    examples with enough IN and OUT models among the *others* (>= 1 with ``global_variance``,
    else >= 2). Returns per target model the AUC, the TPR at FPR <= ``fpr`` and the number of
    examples scored; a target whose scored examples are all IN or all OUT raises."""
    if not isinstance(member, Tensor) or member.dtype != torch.bool or member.dim() != 2:
        raise ValueError("member must be a (K, n) bool tensor: model k trained on example j.")
    need = 1 if global_variance else 2
    aucs, tprs, counts = [], [], []
    for t in range(member.shape[0]):
        others = torch.cat([member[:t], member[t + 1:]])
        keep = (others.sum(0) >= need) & ((~others).sum(0) >= need)
        scores, truth = leave_one_out_scores(phi[:, keep], member[:, keep], [t], fit=fit,
                                             global_variance=global_variance)
        s, y = scores[0].numpy(), truth[0].numpy()
        if y.all() or not y.any():
            raise ValueError(f"target {t} holds all or none of its {y.size} scored examples.")
        aucs.append(float(roc_auc_score(y, s)))
        tprs.append(tpr_at(s, y, fpr))
        counts.append(int(keep.sum()))
    return np.asarray(aucs), np.asarray(tprs), np.asarray(counts)


def dp_sgd_shadow(*, pool: ImageData, subset: Tensor, val: ImageData, test: ImageData, epsilon: float,
                  delta: float, epochs: int, expected_batch: int, clip: float, lr: float, momentum: float,
                  net_cfg: NetConfig, seed: int, probe_flip: bool, device: Any = "auto",
                  quiet: bool | None = None) -> dict[str, Any]:
    """One DP-SGD model of the LiRA study: trained on ``pool``'s rows ``subset`` at
    ``(epsilon, delta)``, queried on the whole pool. Returns ``phi`` ``(n[, 2])``, the accuracy
    on ``val`` and on ``test`` and the accountant's ``epsilon_spent``; cached."""
    check_privacy_target(epsilon, delta)
    parts = {"pool": pool.digest(), "subset": subset, "val": val.digest(), "test": test.digest(),
             "epsilon": epsilon, "delta": delta, "epochs": epochs, "batch": expected_batch,
             "clip": clip, "lr": lr, "momentum": momentum, "net": net_cfg, "seed": seed,
             "probe_flip": probe_flip}

    def compute() -> dict[str, Any]:
        members = pool.take(subset)
        model, record = dp_sgd(members.images, members.labels, net_cfg=net_cfg,
                               num_classes=pool.num_classes, epsilon=epsilon, delta=delta,
                               epochs=epochs, expected_batch=expected_batch, clip=clip, lr=lr,
                               momentum=momentum, seed=seed, device=device, quiet=quiet)
        out = probe(model, pool.images, pool.labels, flip=probe_flip)
        return {"phi": lira_phi(out, probe_flip)[0], "val_acc": float(accuracy(model, val)[0]),
                "test_acc": float(accuracy(model, test)[0]), "epsilon_spent": record["epsilon_spent"]}

    return cached("dp-lira", parts, compute, code=(dp_sgd_shadow, lira_phi, "ddrepro.privacy.dpsgd"))


def dp_lira_pool(prof: Any, pool: ImageData, seed: int) -> ImageData:
    """The DP-SGD LiRA pool: ``2 * dp_per_class`` images per class of the study's pool (all of it
    when ``dp_per_class`` is None), so each model trains on as many as the loss attack's run."""
    per_class = prof.critique.dp_per_class
    return pool if per_class is None else pool.subset_per_class(2 * per_class, seed=seed + 7)


def dp_lira_kwargs(prof: Any, pool: ImageData, val: ImageData, test: ImageData, epsilon: float, *,
                   device: Any, quiet: bool | None) -> dict[str, Any]:
    """What every DP-SGD LiRA model at ``epsilon`` shares (the critique's DP-SGD settings)."""
    cfg = prof.critique
    per_model = len(pool) // 2
    return dict(pool=pool, val=val, test=test, epsilon=epsilon, delta=cfg.dp_delta, epochs=cfg.dp_epochs,
                expected_batch=min(cfg.dp_batch, per_model), clip=cfg.dp_clip, lr=cfg.dp_lr,
                momentum=cfg.dp_momentum, net_cfg=prof.net, probe_flip=pool.flip_ok, device=device,
                quiet=quiet)


def dp_lira_jobs(prof: Any, pool: ImageData, val: ImageData, test: ImageData, *, seed: int,
                 device: Any, quiet: bool | None) -> tuple[Tensor, list[Job]]:
    """The models' halves ``(dp_lira_models, n)`` and one job per epsilon and model
    (``dp-lira/eps{e}/model{k}``)."""
    models = prof.critique.dp_lira_models
    masks = independent_halves(pool, models, seed=10_000 * seed + 850)
    jobs = [Job(dp_sgd_shadow, dict(dp_lira_kwargs(prof, pool, val, test, eps, device=device, quiet=quiet),
                                    subset=masks[k], seed=10_000 * seed + 860 + k),
                name=f"dp-lira/eps{eps:g}/model{k}")
            for eps in prof.critique.dp_epsilons for k in range(models)]
    return masks, jobs


__all__ = ["dp_lira_jobs", "dp_lira_kwargs", "dp_lira_pool", "dp_sgd_shadow", "independent_halves",
           "loo_per_target"]
