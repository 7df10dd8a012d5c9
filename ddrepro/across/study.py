"""What the cross-chapter page measures, each with the chapters' own code.

1. RDM-DC under LiRA. Chapter 2's LiRA models (:func:`ddrepro.privacy.membership.shadow` on
   the study's shadow and target halves) condensed once with DM (Chapter 2's own syntheses, so
   cache hits) and once with RDM-DC (Chapter 3's :func:`ddrepro.poisoning.study.defense_config`);
   every model is the target in turn (:func:`loo_aucs`) and the two arms are paired on it.
2. RDM-DC on CMNIST-DD. Which real images the calibrated mean of Zheng & Li's Alg. 4 drops
   (:func:`calibrated_drops`, :func:`drop_counts`) and whether they are the bias-conflicting
   ones (:func:`drop_shares`); RDM-DC's cells beside Chapter 4's DM cells (same kwargs as its
   ``debiased`` grid, so the DM cells are cache hits).
3. Debiased DM under LiRA: Chapter 4's inverse-density weights (:func:`ddrepro.bias.debias.debiased`)
   on each LiRA half of a CMNIST-DD pool, the conflicting and aligned images scored apart.
4. EAD: Chapter 5's own rows, read from the build (:func:`read_scorecard`), not re-run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..bias import study as bs
from ..bias.biased import load_biased
from ..bias.debias import DebiasConfig, debiased
from ..augment import DSA, siamese_augment
from ..config import AugConfig, DMConfig, replace_checked
from ..data import ImageData
from ..executor import Job
from ..nets import build_net
from ..poisoning.study import defense_config
from ..privacy import membership
from ..privacy.lira import lira_scores
from ..robust import MeanEstimatorConfig, power_method, start_vector
from ..scorecard import SUFFIX, Row


# -- which rows the calibrated mean drops (Alg. 4) ------------------------------------------------

def calibrated_drops(feats: Tensor, k: int, iterations: int, start: Tensor | None = None) -> Tensor:
    """``(n,)`` bool: the ``k`` rows that :func:`ddrepro.robust.calibrated_mean` drops.

    Alg. 4's ranking, step for step: scores ``|<r_i - mean, v>|`` with ``v`` the covariance's
    top eigenvector (:func:`ddrepro.robust.power_method`, Alg. 5, from the same fixed start),
    the ``k`` highest dropped. The mean of the rows left is ``calibrated_mean`` exactly
    (``tests/across/test_study.py``).
    """
    if feats.ndim != 2 or not 0 <= k < feats.shape[0]:
        raise ValueError(f"calibrated_drops needs (n, d) features and 0 <= k < n; got shape "
                         f"{tuple(feats.shape)} and k = {k}.")
    centred = feats - feats.mean(0)
    start = start_vector(feats.shape[1], feats.dtype, feats.device) if start is None else start
    v = power_method(centred, iterations, start)
    keep = (centred @ v).abs().argsort()[: feats.shape[0] - k]  # calibrated_mean's own ordering
    dropped = torch.ones(feats.shape[0], dtype=torch.bool, device=feats.device)
    dropped[keep] = False
    return dropped


@torch.no_grad()
def drop_counts(real: ImageData, *, net_cfg: Any, batch_real: int, spec: MeanEstimatorConfig,
                draws: int, seed: int, aug_cfg: AugConfig | None = None) -> dict[str, Tensor]:
    """How often each row of ``real`` is drawn into a real batch and how often RDM-DC drops it.

    As DM's loop draws them (:func:`ddrepro.condense.dm.distribution_matching_run`): per draw a
    fresh network (:func:`ddrepro.nets.build_net`, seeded, in train mode), per class
    ``min(batch_real, smallest class)`` rows without replacement, augmented by DSA with one draw
    per class when ``aug_cfg`` is given (:func:`ddrepro.augment.siamese_augment`, as DM with
    ``dsa=True``), embedded; the calibrated mean drops ``spec.drop_count(N)`` of each class's
    batch (:func:`calibrated_drops`). Returns ``drawn`` and ``dropped``, ``(len(real),)`` counts.
    """
    if spec.name != "calibrated":
        raise ValueError(f"drop_counts measures the calibrated mean; got estimator {spec.name!r}.")
    gen = torch.Generator().manual_seed(seed)
    by_class = real.indices_by_class()
    n = min(batch_real, min(int(idx.numel()) for idx in by_class))
    k = spec.drop_count(n)
    aug = None if aug_cfg is None else DSA(aug_cfg, flip=real.flip_ok)
    drawn = torch.zeros(len(real), dtype=torch.long)
    dropped = torch.zeros(len(real), dtype=torch.long)
    channels, size = real.images.shape[1], real.images.shape[-1]
    for d in range(draws):
        net = build_net(net_cfg, channels, real.num_classes, size, seed=seed * 100_003 + d).train()
        rows = torch.stack([idx[torch.randperm(idx.numel(), generator=gen)[:n]] for idx in by_class])
        images = real.images[rows]                                    # (C, n, ch, H, W)
        if aug is not None:  # DM augments a synthetic batch alongside; one image stands in for it
            images, _ = siamese_augment(aug, gen, images, images[:, :1])
        feats = net.embed(images.flatten(0, 1)).reshape(len(by_class), n, -1).double()
        drawn[rows.flatten()] += 1
        for c in range(len(by_class)):
            dropped[rows[c][calibrated_drops(feats[c], k, spec.power_iterations)]] += 1
    return {"drawn": drawn, "dropped": dropped}


def drop_shares(drawn: Tensor, dropped: Tensor, flagged: Tensor) -> tuple[float, float]:
    """``(share of flagged rows among the dropped, share of flagged rows among the drawn)``,
    each draw counted once: what the calibrated mean removes against what it was given."""
    drawn, dropped, flagged = drawn.double(), dropped.double(), flagged.bool()
    if drawn.shape != dropped.shape or drawn.shape != flagged.shape:
        raise ValueError("drawn, dropped and flagged must have one entry per row.")
    if dropped.sum() == 0 or bool((dropped > drawn).any()):
        raise ValueError("nothing was dropped, or a row was dropped more often than drawn.")
    return float(dropped[flagged].sum() / dropped.sum()), float(drawn[flagged].sum() / drawn.sum())


# -- LiRA, every model the target in turn ----------------------------------------------------------

def paired_halves(pool: ImageData, models: int, seed: int) -> Tensor:
    """``(models, n)`` bool: pairs of complementary halves, model ``2j`` on a random half of every
    class (:func:`ddrepro.privacy.membership.half_mask`) and model ``2j + 1`` on the rest. Every
    image is IN for exactly half of the models and every model holds half of every class."""
    if models < 4 or models % 2:
        raise ValueError(f"paired_halves needs an even number of models >= 4, got {models}.")
    halves = [membership.half_mask(pool, seed=seed * 1000 + j) for j in range(models // 2)]
    return torch.stack([m for h in halves for m in (h, ~h)])


def loo_aucs(phi: Tensor, member: Tensor, examples: Tensor | None = None, *,
             pairs: bool = False) -> np.ndarray:
    """LiRA's AUC against each model in turn, attacked by the others (one value per model).

    ``phi`` ``(M, n[, q])``, ``member`` ``(M, n)`` bool; ``examples`` ``(n,)`` bool restricts the
    attack to some examples (both the Gaussians' fit and the AUC). Online LiRA with one global
    variance (:func:`ddrepro.privacy.lira.lira_scores`); for each target only the examples with
    at least one IN and one OUT model among the attackers are scored.

    With balanced halves the other models hold an example the target holds once less than one
    it does not, and the attack reads that as a signal: on pure noise the AUC comes out below
    0.5 (:func:`ddrepro.privacy.per_unit.per_target_auc`'s docstring). ``pairs=True`` (halves
    from :func:`paired_halves`) leaves the target's complement out as well, so every example has
    as many IN as OUT attackers and the bias is gone. Without pairs (Chapter 2's shadows), two
    arms attacked on the same halves share the bias, so their per-model *difference* is the
    quantity to read. ``tests/across/test_study.py`` measures both on noise.
    """
    if not isinstance(member, Tensor) or member.dtype != torch.bool or member.dim() != 2:
        raise ValueError("member must be an (M, n) bool tensor: model k trained on example j.")
    models, n = member.shape
    if models < (4 if pairs else 3) or tuple(phi.shape[:2]) != (models, n):
        raise ValueError(f"loo_aucs needs >= 3 models (>= 4 with pairs) and phi shaped "
                         f"{(models, n)} (+ queries); got {tuple(phi.shape)}.")
    keep = torch.ones(n, dtype=torch.bool) if examples is None else examples.bool().cpu()
    aucs = []
    if pairs and models % 2:
        raise ValueError(f"pairs=True needs complementary pairs of models, got {models} models.")
    for t in range(models):
        rest = [j for j in range(models) if j != t and not (pairs and j == t ^ 1)]
        inside = member[rest].sum(0)
        usable = keep & (inside >= 1) & (inside <= len(rest) - 1)
        truth = member[t, usable]
        if truth.all() or not truth.any():
            raise ValueError(f"model {t} holds all or none of the {int(usable.sum())} usable "
                             "examples; attack more examples.")
        scores = lira_scores(phi[t][usable], phi[rest][:, usable], member[rest][:, usable],
                             global_variance=True)
        aucs.append(float(roc_auc_score(truth.numpy(), scores.numpy())))
    return np.asarray(aucs)


def model_phi(results: Sequence[Any], flip: bool, name: str = "pool") -> Tensor:
    """``(M, n[, 2])``: LiRA's ``phi`` of each model's probe ``name`` (one network per set),
    with the mirror image as a second query when ``flip`` (:func:`membership.lira_phi`)."""
    return torch.stack([membership.lira_phi({k: v[0] for k, v in r.probes[name].items()}, flip)
                        for _, r in results])


# -- the jobs -------------------------------------------------------------------------------------

def rdm(prof: Any, dm_cfg: DMConfig) -> tuple[str, DMConfig]:
    """RDM-DC as Chapter 3 runs it: ``dm_cfg`` with the calibrated mean at ``across.eps_p``."""
    cfg = prof.across
    return defense_config("rdm", dm_cfg, cfg.eps_p, cfg.power_iterations)


def privacy_jobs(prof: Any, *, seed: int, device: Any, quiet: bool | None) -> list[Job]:
    """Question 1: every LiRA model of Chapter 2 (shadows then targets) with DM and with RDM-DC.
    The DM jobs carry :func:`ddrepro.privacy.membership.claims_jobs`' arguments (cache hits)."""
    study = membership.membership_study(prof, seed)
    shared = membership.lira_kwargs(prof, study, device=device, quiet=quiet)
    method, config = rdm(prof, shared["config"])
    masks = torch.cat([study.shadow_masks, study.target_masks])
    seeds = sum(membership.lira_seeds(prof, seed), [])
    arms = {"dm": {}, "rdm": dict(method=method, config=config)}
    return [Job(membership.shadow, dict(shared, subset=mask, seed=s, **extra), name=f"lira/{arm}/m{i}")
            for arm, extra in arms.items() for i, (mask, s) in enumerate(zip(masks, seeds))]


def bias_jobs(prof: Any, *, seed: int, device: Any, quiet: bool | None) -> list[Job]:
    """Question 2: DM (Chapter 4's ``debiased`` grid's cells, argument for argument) and RDM-DC
    at each of ``across.bias_ratios``, one job per seed ``seed + k`` (``k < bias.repeats``)."""
    bias, jobs = prof.bias, []
    test = bs.biased_test(prof, bias.severity, seed)
    dm_cfg = prof.condenser_config("dm")
    method, rdm_cfg = rdm(prof, dm_cfg)
    for ratio in prof.across.bias_ratios:
        for k in range(bias.repeats):
            common = dict(real=bs.biased_split(prof, ratio, bias.severity, seed + k), test=test,
                          ipc=bias.ipc, seed=seed + k, net_cfg=prof.net, aug_cfg=prof.aug,
                          eval_cfg=bs.condenser_eval_config(prof, "dm"), device=device, quiet=quiet)
            for arm, name, config in (("dm", "dm", dm_cfg), ("rdm", method, rdm_cfg)):
                jobs.append(Job(bs.distil_and_score, dict(common, method=name, config=config),
                                name=f"bias/{arm}/r{ratio:g}/k{k}"))
    return jobs


def debias_pool(prof: Any, seed: int) -> tuple[ImageData, Tensor]:
    """Question 3's CMNIST-DD pool (``across.lira_per_class`` per class at ``lira_ratio`` %
    aligned, severity ``bias.severity``) and its ``(lira_models, n)`` halves in complementary
    pairs (:func:`paired_halves`)."""
    cfg = prof.across
    pool = load_biased(prof.bias.dataset, "train", cfg.lira_ratio, prof.bias.severity,
                       seed=seed + 77, per_class=cfg.lira_per_class)
    return pool, paired_halves(pool, cfg.lira_models, seed=seed + 78)


def debiased_shadow(*, pool: ImageData, subset: Tensor, debias: DebiasConfig, seed: int,
                    **kwargs: Any) -> Any:
    """One LiRA model of debiased DM: Chapter 4's weights (:func:`ddrepro.bias.debias.debiased`)
    fitted on the model's half alone, then :func:`ddrepro.privacy.membership.shadow` on it."""
    half = debiased(pool.take(subset), debias, seed=seed)
    return membership.shadow(pool=half, subset=torch.ones(len(half), dtype=torch.bool), seed=seed,
                             **kwargs)


def debias_weights_config(prof: Any) -> DebiasConfig:
    """Chapter 4's reweighting as its ``debiased`` grid runs it (weighted class means)."""
    return DebiasConfig(bandwidth=prof.bias.debias_bandwidth, power=prof.bias.debias_power,
                        sampling="weights")


def debias_jobs(prof: Any, *, seed: int, device: Any, quiet: bool | None) -> list[Job]:
    """Question 3: every model of :func:`debias_pool` with plain DM and with debiased DM (noise
    initialisation, as Chapter 2's LiRA: a real initialisation leaks by itself), its victim
    trained as Chapter 2's (:func:`ddrepro.privacy.membership.victim_eval`), probed on the pool."""
    cfg = prof.across
    pool, member = debias_pool(prof, seed)
    dm_cfg = prof.condenser_config("dm")
    if cfg.lira_steps:
        dm_cfg = replace_checked(dm_cfg, steps=cfg.lira_steps)
    shared = dict(method="dm", ipc=cfg.lira_ipc, config=dm_cfg, init="noise", net_cfg=prof.net,
                  aug_cfg=prof.aug, eval_cfg=membership.victim_eval(prof),
                  test=bs.biased_test(prof, prof.bias.severity, seed), probes={"pool": pool},
                  probe_flip=pool.flip_ok, device=device, quiet=quiet)
    jobs = []
    for i, mask in enumerate(member):
        s = 10_000 * seed + 300 + i
        jobs.append(Job(membership.shadow, dict(shared, pool=pool, subset=mask, seed=s),
                        name=f"debias-lira/dm/m{i}"))
        jobs.append(Job(debiased_shadow, dict(shared, pool=pool, subset=mask, seed=s,
                                              debias=debias_weights_config(prof)),
                        name=f"debias-lira/debiased/m{i}"))
    return jobs


# -- Chapter 5's rows, read from the build ---------------------------------------------------------

def read_scorecard(stage: str | Path | None, page: str) -> list[Row] | None:
    """The rows page ``page`` (its toc path, e.g. ``book/05_effect_alignment/ead_privacy``)
    saved in the build ``stage``; None when that page has not run there."""
    if not stage:
        return None
    path = Path(stage) / f"{page}{SUFFIX}"
    if not path.is_file():
        return None
    return [Row(**row) for row in json.loads(path.read_text()).get("rows", [])]


__all__ = ["bias_jobs", "calibrated_drops", "debias_jobs", "debias_pool", "debias_weights_config",
           "debiased_shadow", "drop_counts", "drop_shares", "loo_aucs", "model_phi", "paired_halves",
           "privacy_jobs", "rdm", "read_scorecard"]
