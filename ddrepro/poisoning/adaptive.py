"""The adaptive attacker's losses against RDM-DC (ours, beyond Zheng & Li, UAI 2023).

DM poisoning (Alg. 2, :mod:`ddrepro.poisoning.poison`) matches the target's
embedding with the *plain* mean of the poisons. An attacker who knows that the
victim condenses with RDM-DC's calibrated mean (Alg. 3-5) can instead match it
through that mean, or keep the poisons low on the one direction the
calibration ranks by. The crafting loop of ``poison.py`` takes either loss
through ``DMPoisonConfig.loss`` ("through", "spread", "batches").
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..robust import MeanEstimatorConfig, calibrated_mean, power_method


def through_poison_loss(target_feats: Tensor, poison_feats: Tensor, context_feats: Tensor, k: int,
                        iterations: int) -> tuple[Tensor, Tensor]:
    """Eq. 5 through RDM-DC's calibrated mean (ours): ``|| Phi(x_t) - cmean_k(poisons + context) ||^2``.

    ``target_feats`` ``(R, d)``, ``poison_feats`` ``(R, P, d)``, ``context_feats`` ``(R, m, d)``
    (the clean images of the poisons' class, under the restart's DSA draw); ``cmean_k`` is
    :func:`ddrepro.robust.calibrated_mean` (Alg. 4, power method of Alg. 5) dropping ``k`` of the
    ``P + m`` rows. Returns the losses ``(R,)`` and the share of poisons the calibration kept ``(R,)``.

    Gradients: the ranking (power method, argsort) is piecewise constant, so it passes none; the
    mean of the kept rows does. A poison dropped at a step gets no gradient from that step (signed
    Adam's momentum still moves it by earlier steps'); only kept poisons are pulled towards the
    target, and the sum over restarts and steps decides which get through. With ``k = 0`` and no
    context the loss is Eq. 5.
    """
    batch = torch.cat([poison_feats, context_feats], 1)
    losses = torch.stack([(target - calibrated_mean(feats, k, iterations)).pow(2).sum()
                          for target, feats in zip(target_feats, batch)])
    with torch.no_grad():  # the same ranking as calibrated_mean's, to count the poisons it keeps
        scores = top_direction_scores(poison_feats, context_feats, iterations, all_rows=True).abs()
        keep = scores.argsort(1)[:, : batch.shape[1] - k]
        kept = (keep < poison_feats.shape[1]).sum(1) / poison_feats.shape[1]
    return losses, kept.float()


def top_direction_scores(poison_feats: Tensor, context_feats: Tensor, iterations: int,
                         all_rows: bool = False) -> Tensor:
    """The poisons' scores ``<phi_p - mean, v>`` ``(R, P)`` on the top direction ``v`` of the batch
    (poisons and context), as Alg. 4 scores them (``all_rows``: every row's, ``(R, P + m)``);
    ``v`` is a constant (no gradient through the power method), the batch mean is not."""
    feats = torch.cat([poison_feats, context_feats], 1)
    centre = feats.mean(1, keepdim=True)
    detached = (feats - centre).detach()
    v = torch.stack([power_method(rows, iterations) for rows in detached])   # (R, d)
    return ((feats if all_rows else poison_feats) - centre).mul(v[:, None]).sum(-1)


def spread_penalty(poison_feats: Tensor, context_feats: Tensor, iterations: int) -> Tensor:
    """``mean_p <phi_p - mean, v>^2`` per restart ``(R,)`` (ours): the poisons' mean squared score
    on the batch's top direction, which the ``"spread"`` loss adds to Eq. 5 so no poison scores high."""
    return top_direction_scores(poison_feats, context_feats, iterations).pow(2).mean(1)


def batches_poison_loss(target_feats: Tensor, poison_feats: Tensor, context_feats: Tensor, batch: int,
                        eps_p: float, iterations: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Eq. 5 through RDM-DC's calibrated mean *of the victim's batches* (ours, issue 24).

    RDM-DC does not rank the whole class: each DM step it calibrates a batch of ``batch``
    (``batch_real``) rows drawn from the class, poisons and clean alike, dropping
    ``k = ceil(3 eps_p batch)`` of them. So, per restart, the class (``P`` poisons and the ``m``
    rows of ``context_feats``) is split at random into batches of ``batch`` (the last, partial one
    is left out, as DM draws full batches; the whole class is one batch if it is smaller), and
    the loss is the mean over batches of ``|| Phi(x_t) - cmean_k(batch) ||^2``. Every poison sits
    in one batch per step and gets a gradient when its batch's calibration keeps it; through the
    whole class ("through") the share ``3 eps_p`` dropped is the same, but the poisons compete
    with every clean row of the class at once. Returns the losses ``(R,)`` and the share of
    poisons kept ``(R,)``.
    """
    restarts, poisons = poison_feats.shape[:2]
    rows = torch.cat([poison_feats, context_feats], 1)
    n = rows.shape[1]
    size = min(batch, n)
    k = MeanEstimatorConfig("calibrated", rate=eps_p, power_iterations=iterations).drop_count(size)
    losses, kept = [], []
    for r in range(restarts):
        order = torch.randperm(n, generator=generator).to(rows.device)
        chunks = [order[i: i + size] for i in range(0, n - size + 1, size)]
        total = sum((target_feats[r] - calibrated_mean(rows[r, idx], k, iterations)).pow(2).sum()
                    for idx in chunks)
        losses.append(total / len(chunks))
        with torch.no_grad():  # the ranking calibrated_mean uses, to count the poisons it keeps
            count = 0
            for idx in chunks:
                centred = rows[r, idx] - rows[r, idx].mean(0)
                scores = (centred @ power_method(centred, iterations)).abs()
                count += int((idx[scores.argsort()[: size - k]] < poisons).sum())
        kept.append(count / poisons)
    return torch.stack(losses), torch.tensor(kept, dtype=torch.float32)


__all__ = ["batches_poison_loss", "spread_penalty", "through_poison_loss", "top_direction_scores"]
