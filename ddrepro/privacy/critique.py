"""Chapter 2's critique, measured (Carlini, Feldman & Nasr 2022, "No Free Lunch in 'Privacy for Free'").

Three experiments beside the LiRA study of :mod:`ddrepro.privacy.membership`, sharing
its pool, shadows and targets where they can, and the ``critique`` grid's jobs:

* the *accuracy-matched naive baseline*: each LiRA model trains directly on a
  few real images per class of its half instead of a DM set distilled from it;
  the number per class is the candidate whose accuracy on a validation split
  (held out from the training pool) is closest to DM's, and membership is
  membership of the half, exactly as for DM;
* DP-SGD on T at several epsilon (:mod:`ddrepro.privacy.dpsgd`), attacked by the loss
  threshold;
* a canary audit: held-out images, some with a wrong label, inserted into the
  pool, and LiRA read on the canaries for DM (real and noise initialisation) and
  for models trained on T itself.

The statistics (AUC differences, how the interval narrows with more scores)
are here too; ROC/AUC come from scikit-learn, as in :mod:`ddrepro.privacy.lira`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..artifacts import cached
from .lira import balanced_membership
from ..config import AugConfig, EvalConfig, NetConfig, replace_checked
from ..data import ImageData, load
from ..evaluate import accuracy, probe
from .dp_lira import dp_lira_jobs, dp_lira_pool
from .dpsgd import dp_sgd_membership
from ..executor import Job
from .membership import (MembershipStudy, condenser_config, control_eval, lira_kwargs, lira_phi,
                         lira_seeds, membership_study, prepare, prepare_kwargs, shadow,
                         train_on_halves, train_on_masks, victim_eval)
from .options import shifted_jobs


# -- data ------------------------------------------------------------------------------------

def concat(first: ImageData, second: ImageData, **attrs: Tensor) -> ImageData:
    """``first`` then ``second`` as a new root set (identity hashed from pixels and labels),
    with per-row ``attrs``; ``source_index`` keeps both parts' indices into their root."""
    if first.shape != second.shape or first.classes != second.classes:
        raise ValueError("concat needs two sets of the same image shape and classes.")
    n = len(first) + len(second)
    for key, value in attrs.items():
        if value.shape[0] != n:
            raise ValueError(f"attrs[{key!r}] has {value.shape[0]} rows for {n} images.")
    return dataclasses.replace(
        first, images=torch.cat([first.images, second.images]),
        labels=torch.cat([first.labels, second.labels]), weights=None,
        source_index=torch.cat([first.source_index, second.source_index]), attrs=dict(attrs),
        content_id=None, root_id=None, root_rows=None, _digest=None)


def validation_split(prof: Any, study: MembershipStudy, seed: int) -> ImageData:
    """``val_per_class`` training images per class outside the study's pool (never the test set)."""
    full = load(prof.privacy.dataset, "train")
    return full.without(study.pool).subset_per_class(prof.critique.val_per_class, seed=seed + 1)


def per_class_subsets(halves: Tensor, labels: Tensor, per_class: int, seed: int) -> Tensor:
    """``(K, n)`` bool: for each row of ``halves``, ``per_class`` random members of every class.

    The naive baseline's training rows: a small real subset of each model's own half.
    """
    if halves.dtype != torch.bool or halves.dim() != 2 or halves.shape[1] != labels.shape[0]:
        raise ValueError("halves must be a (K, n) bool mask over the n labelled rows.")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class = {per_class!r} must be an int >= 1.")
    gen = torch.Generator().manual_seed(seed)
    out = torch.zeros_like(halves)
    for k, half in enumerate(halves):
        for c in labels.unique():
            rows = torch.nonzero(half & (labels == c)).flatten()
            if rows.numel() < per_class:
                raise ValueError(f"model {k} has {rows.numel()} members of class {int(c)}, fewer "
                                 f"than per_class = {per_class}; lower it.")
            out[k, rows[torch.randperm(rows.numel(), generator=gen)[:per_class]]] = True
    return out


@dataclass
class CritiqueStudy:
    """The critique's data: the membership study, a validation split, the pool with the
    and the canary pool with its models' masks."""

    study: MembershipStudy
    val: ImageData
    canary_pool: ImageData
    canary_masks: Tensor

    @property
    def canary_rows(self) -> Tensor:
        return torch.nonzero(self.canary_pool.attrs["canary"]).flatten()


def canary_pool(prof: Any, study: MembershipStudy, val: ImageData, seed: int) -> ImageData:
    """A pool of ``canary_pool_per_class`` study-pool images per class plus ``canaries`` images
    from outside the pool and the validation split; the first ``canary_mislabelled`` fraction
    of the canaries get a wrong label (uniform among the others). Attrs ``canary`` and
    ``mislabelled`` mark them."""
    cfg = prof.critique
    full = load(prof.privacy.dataset, "train")
    base = study.pool.subset_per_class(cfg.canary_pool_per_class, seed=seed + 3)
    canaries = full.without(study.pool).without(val).subset(cfg.canaries, seed=seed + 4)
    wrong = round(cfg.canary_mislabelled * cfg.canaries)
    gen = torch.Generator().manual_seed(seed + 5)
    shift = torch.randint(1, canaries.num_classes, (wrong,), generator=gen)
    labels = canaries.labels.clone()
    labels[:wrong] = (labels[:wrong] + shift) % canaries.num_classes
    canaries = dataclasses.replace(canaries, labels=labels)
    mislabelled = torch.zeros(len(canaries), dtype=torch.bool)
    mislabelled[:wrong] = True
    n = len(base)
    return concat(base, canaries,
                  canary=torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(len(canaries), dtype=torch.bool)]),
                  mislabelled=torch.cat([torch.zeros(n, dtype=torch.bool), mislabelled]))


def critique_study(prof: Any, seed: int) -> CritiqueStudy:
    """Everything the critique draws from ``seed`` (the membership study's pool, masks, test set)."""
    study = membership_study(prof, seed)
    val = validation_split(prof, study, seed)
    cpool = canary_pool(prof, study, val, seed)
    cfg = prof.critique
    return CritiqueStudy(study, val, cpool, canary_membership(cpool, cfg.canary_shadows
                                                                         + cfg.canary_targets, seed + 6))


def canary_membership(pool: ImageData, models: int, seed: int) -> Tensor:
    """``(models, n)`` bool: LiRA's balanced halves drawn within each class of the ordinary rows
    and within the canaries, so that every model holds about half of each."""
    groups = [torch.nonzero(~pool.attrs["canary"] & (pool.labels == c)).flatten()
              for c in range(pool.num_classes)] + [torch.nonzero(pool.attrs["canary"]).flatten()]
    masks = torch.zeros(models, len(pool), dtype=torch.bool)
    for g, rows in enumerate(groups):
        if rows.numel():
            masks[:, rows] = balanced_membership(rows.numel(), models, seed=1000 * seed + g)
    return masks


# -- the accuracy-matched baseline -----------------------------------------------------------

def lira_masks(study: MembershipStudy) -> Tensor:
    """The LiRA models' halves over the pool: shadows first, then targets."""
    return torch.cat([study.shadow_masks, study.target_masks])


def real_subset_lira(*, pool: ImageData, member: Tensor, probes: ImageData, val: ImageData,
                     net_cfg: NetConfig, eval_cfg: EvalConfig, aug_cfg: AugConfig, seed: int,
                     probe_flip: bool, device: Any = "auto", quiet: bool | None = None) -> dict[str, Tensor]:
    """The naive baseline's models: model k trains on ``pool``'s rows ``member[k]`` (one batched
    :func:`~ddrepro.train.train_models` call, the DM victims' protocol) and is queried on
    ``probes`` only; cached.

    Returns ``phi`` ``(K, n_probes[, 2])`` (the mirror as a second query when
    ``probe_flip``) and ``val_acc`` ``(K,)``, each model's accuracy on ``val``.
    """
    parts = {"pool": pool.digest(), "member": member, "probes": probes.digest(), "val": val.digest(),
             "net": net_cfg, "eval": eval_cfg, "aug": aug_cfg, "seed": seed, "probe_flip": probe_flip}

    def compute() -> dict[str, Tensor]:
        models = train_on_masks(pool, member, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg,
                                seed=seed, device=device, quiet=quiet)
        out = probe(models, probes.images, probes.labels, flip=probe_flip)
        return {"phi": lira_phi(out, probe_flip), "val_acc": accuracy(models, val)}

    return cached("baseline-shadows", parts, compute,
                  code=(real_subset_lira, train_on_masks, lira_phi, "ddrepro.evaluate"))


def baseline_kwargs(prof: Any, crit: CritiqueStudy, per_class: int, *, seed: int, device: Any,
                    quiet: bool | None) -> dict[str, Any]:
    """:func:`real_subset_lira`'s arguments for the naive baseline at ``per_class`` images per
    class: model k trains on that many real images of LiRA model k's half, with the DM victims'
    protocol (:func:`~ddrepro.privacy.membership.victim_eval`), and is queried on LiRA's probe rows."""
    study = crit.study
    chosen = per_class_subsets(lira_masks(study), study.pool.labels, per_class,
                               seed=10_000 * seed + 300 + per_class)
    return dict(pool=study.pool, member=chosen, probes=study.probes, val=crit.val, net_cfg=prof.net,
                eval_cfg=victim_eval(prof), aug_cfg=prof.aug, seed=10_000 * seed + 400 + per_class,
                probe_flip=study.pool.flip_ok, device=device, quiet=quiet)


def closest(candidates: dict[int, float], target: float) -> int:
    """The key whose value is nearest ``target`` (ties: the smaller key)."""
    if not candidates:
        raise ValueError("no candidates to choose from.")
    return min(sorted(candidates), key=lambda k: abs(candidates[k] - target))


# -- canaries ----------------------------------------------------------------------------------

def canary_dm_kwargs(prof: Any, crit: CritiqueStudy, init: str, *, device: Any,
                     quiet: bool | None) -> dict[str, Any]:
    """What the canary study's DM syntheses share (``canary_ipc`` per class; the paper's DM
    rate for the nearest r_ipc, the study's step count); probed on the canaries."""
    cfg = prof.critique
    per_class = len(crit.canary_pool) // (2 * crit.canary_pool.num_classes)
    config = replace_checked(condenser_config(prof, "dm", min(0.5, cfg.canary_ipc / per_class)),
                             steps=prof.privacy.dm_steps or prof.dm.steps)
    return dict(method="dm", pool=crit.canary_pool, ipc=cfg.canary_ipc, config=config, init=init,
                net_cfg=prof.net, aug_cfg=prof.aug, eval_cfg=victim_eval(prof), test=crit.study.test,
                probes={"canaries": crit.canary_pool.take(crit.canary_rows)},
                probe_flip=crit.canary_pool.flip_ok, device=device, quiet=quiet)


def canary_seeds(prof: Any, seed: int) -> list[int]:
    """Seeds of the canary study's models (shadows, then targets)."""
    cfg = prof.critique
    return [10_000 * seed + 600 + k for k in range(cfg.canary_shadows + cfg.canary_targets)]


def canary_real_kwargs(prof: Any, crit: CritiqueStudy, *, seed: int, device: Any,
                       quiet: bool | None) -> dict[str, Any]:
    """Models trained on T itself in the canary study: the real-data control's protocol, the
    victims' recipe (:func:`~ddrepro.privacy.membership.control_eval`)."""
    masks = crit.canary_masks
    eval_cfg = control_eval(prof, n_models=masks.shape[0])
    return dict(pool=crit.canary_pool, member=masks, net_cfg=prof.net, eval_cfg=eval_cfg,
                aug_cfg=prof.aug, seed=10_000 * seed + 700, probe_flip=crit.canary_pool.flip_ok,
                device=device, quiet=quiet)


# -- DP-SGD --------------------------------------------------------------------------------

def dp_kwargs(prof: Any, crit: CritiqueStudy, epsilon: float | None, *, seed: int, device: Any,
              quiet: bool | None) -> dict[str, Any]:
    """:func:`~ddrepro.privacy.dpsgd.dp_sgd_membership`'s arguments: T and its non-members are the first
    preparation's halves (``dp_per_class`` of each per class)."""
    cfg = prof.critique
    members, nonmembers = crit.study.preparations[0]
    members = members.subset_per_class(cfg.dp_per_class, seed=seed)
    nonmembers = nonmembers.subset_per_class(cfg.dp_per_class, seed=seed)
    n_probe = min(prof.privacy.mia_n * 2, len(members), len(nonmembers))
    return dict(members=members, nonmembers=nonmembers, test=crit.study.test, epsilon=epsilon,
                delta=cfg.dp_delta, epochs=cfg.dp_epochs, expected_batch=min(cfg.dp_batch, len(members)),
                clip=cfg.dp_clip, lr=cfg.dp_lr, momentum=cfg.dp_momentum, net_cfg=prof.net,
                seed=10_000 * seed + 800, n_probe=n_probe, device=device, quiet=quiet)


def dp_settings(prof: Any) -> list[float | None]:
    """The DP-SGD runs: every ``dp_epsilons`` and the non-private reference (None)."""
    return [*prof.critique.dp_epsilons, None]


# -- the grid --------------------------------------------------------------------------------

def critique_jobs(prof: Any, *, seed: int, device: Any, quiet: bool | None) -> list[Job]:
    """Every expensive call of ``book/02_privacy/critique.md``: the DM LiRA syntheses of the
    ``claims`` grid (same names and arguments, so shared cache), the baseline at every candidate
    size (``baseline/{n}``), DM's first loss-attack preparation at ``lira_r_ipc`` (also
    ``claims``'), DP-SGD (``dp/eps{e}``, ``dp/none``) and the canary study
    (``canary/dm-{init}/model{k}``, ``canary/on-T``), LiRA's options on shifted queries
    (:func:`~ddrepro.privacy.options.shifted_jobs`) and LiRA on DP-SGD
    (:func:`~ddrepro.privacy.dp_lira.dp_lira_jobs`)."""
    crit = critique_study(prof, seed)
    study = crit.study
    shared = lira_kwargs(prof, study, device=device, quiet=quiet)
    shadow_seeds, target_seeds = lira_seeds(prof, seed)
    masks = [("shadow", k, m, s) for k, (m, s) in enumerate(zip(study.shadow_masks, shadow_seeds))]
    masks += [("target", t, m, s) for t, (m, s) in enumerate(zip(study.target_masks, target_seeds))]
    jobs = [Job(shadow, dict(shared, subset=mask, seed=s), name=f"lira/{kind}{k}")
            for kind, k, mask, s in masks]
    jobs += [Job(real_subset_lira, baseline_kwargs(prof, crit, n, seed=seed, device=device, quiet=quiet),
                 name=f"baseline/{n}") for n in prof.critique.baseline_per_class]
    r_ipc = prof.privacy.lira_r_ipc  # DM beside DP-SGD: the claims grid's first preparation
    jobs.append(Job(prepare, prepare_kwargs(prof, study, 0, "dm", "noise", r_ipc, seed=seed, device=device,
                                            quiet=quiet), name=f"prep0/dm/noise/r{r_ipc}"))
    jobs += [Job(dp_sgd_membership, dp_kwargs(prof, crit, e, seed=seed, device=device, quiet=quiet),
                 name=f"dp/eps{e:g}" if e is not None else "dp/none") for e in dp_settings(prof)]
    for init in ("noise", "real"):
        kw = canary_dm_kwargs(prof, crit, init, device=device, quiet=quiet)
        jobs += [Job(shadow, dict(kw, subset=mask, seed=s), name=f"canary/dm-{init}/model{k}")
                 for k, (mask, s) in enumerate(zip(crit.canary_masks, canary_seeds(prof, seed)))]
    jobs.append(Job(train_on_halves, canary_real_kwargs(prof, crit, seed=seed, device=device, quiet=quiet),
                    name="canary/on-T"))
    jobs += shifted_jobs(prof, study, seed=seed, device=device, quiet=quiet)  # LiRA's options
    dp_pool = dp_lira_pool(prof, study.pool, seed)                           # LiRA on DP-SGD
    jobs += dp_lira_jobs(prof, dp_pool, crit.val, study.test, seed=seed, device=device, quiet=quiet)[1]
    return jobs


# -- statistics ---------------------------------------------------------------------------------

def _auc_boot(scores: np.ndarray, member: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        pick = rng.integers(0, len(scores), len(scores))
        while member[pick].all() or not member[pick].any():  # both classes needed
            pick = rng.integers(0, len(scores), len(scores))
        out[i] = roc_auc_score(member[pick], scores[pick])
    return out


def auc_difference(scores_a: Tensor, member_a: Tensor, scores_b: Tensor, member_b: Tensor, *,
                   n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
                   ) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) and its percentile bootstrap interval, the two resampled independently
    (the attacks' scores come from different models)."""
    if not 0 < confidence < 1 or n_bootstrap < 10:
        raise ValueError("confidence must lie in (0, 1) and n_bootstrap be >= 10.")
    sa, ya = scores_a.double().flatten().numpy(), member_a.bool().flatten().numpy()
    sb, yb = scores_b.double().flatten().numpy(), member_b.bool().flatten().numpy()
    rng = np.random.default_rng(seed)
    diff = _auc_boot(sa, ya, rng, n_bootstrap) - _auc_boot(sb, yb, rng, n_bootstrap)
    alpha = (1 - confidence) / 2
    point = roc_auc_score(ya, sa) - roc_auc_score(yb, sb)
    return float(point), float(np.quantile(diff, alpha)), float(np.quantile(diff, 1 - alpha))


def ci_width_by_size(scores: Tensor, member: Tensor, sizes: list[int], *, repeats: int,
                     n_bootstrap: int = 200, seed: int = 0) -> list[dict[str, float]]:
    """The 95 % bootstrap interval's width of the AUC on random subsamples of ``sizes`` scores
    (``repeats`` each, mean width): how the interval narrows with more (target, example) scores."""
    s, y = scores.double().flatten().numpy(), member.bool().flatten().numpy()
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        if not 2 <= size <= len(s):
            raise ValueError(f"subsample size {size} must lie in [2, {len(s)}].")
        widths = []
        for _ in range(repeats):
            pick = rng.choice(len(s), size, replace=False)
            if y[pick].all() or not y[pick].any():
                continue
            boot = _auc_boot(s[pick], y[pick], rng, n_bootstrap)
            widths.append(np.quantile(boot, 0.975) - np.quantile(boot, 0.025))
        rows.append({"scores": size, "width": float(np.mean(widths)) if widths else math.nan})
    return rows


def scores_to_separate(width_a: float, width_b: float, n: int, difference: float) -> float:
    """Scores per attack needed for the difference's 95 % interval to exclude 0, if each
    interval's width shrinks as ``1 / sqrt(n)`` (independent scores) and the difference stays
    at ``difference``: half-width of the difference ``sqrt(a^2 + b^2) / 2`` at ``n``."""
    if difference == 0:
        return math.inf
    half = math.hypot(width_a, width_b) / 2
    return n * (half / abs(difference)) ** 2


__all__ = ["CritiqueStudy", "auc_difference", "baseline_kwargs", "canary_dm_kwargs", "canary_pool",
           "canary_real_kwargs", "canary_seeds", "ci_width_by_size", "closest", "concat",
           "critique_jobs", "critique_study", "dp_kwargs", "dp_settings", "lira_masks",
           "per_class_subsets", "real_subset_lira", "scores_to_separate", "validation_split"]
