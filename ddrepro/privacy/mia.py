"""Loss-threshold membership inference (Dong et al. 2022, Eq. 7; Sablayrolles et al. 2019).

An image is called a member when the victim's loss on it is at most a
threshold tau: ``M(x) = 1(l(x) <= tau)``. The paper's protocol (Sec. 5.1):
choose tau to maximise the attack's accuracy on N members + N non-members,
then test that tau on a *disjoint* N + N, and report the advantage
``2 (acc - 50%)`` on the test half. Nothing of the test half is seen when
tau is chosen (``tests/test_mia.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..intervals import clopper_pearson


@dataclass(frozen=True)
class ThresholdAttack:
    """The chosen threshold, its accuracy on the selection half and on the test half (balanced),
    and the test advantage ``2 (accuracy - 1/2)``; ``n`` members and ``n`` non-members per half."""

    threshold: float
    select_accuracy: float
    accuracy: float
    advantage: float
    n: int


def _losses(name: str, values: Tensor) -> Tensor:
    if not isinstance(values, Tensor) or values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor of per-example losses.")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or inf losses; check the victim model's outputs.")
    return values.detach().double().cpu()


def threshold_accuracy(member_losses: Tensor, nonmember_losses: Tensor, threshold: float) -> float:
    """Balanced accuracy of ``1(loss <= threshold)``: the mean of the TPR and the TNR."""
    members = _losses("member_losses", member_losses)
    others = _losses("nonmember_losses", nonmember_losses)
    tpr = (members <= threshold).double().mean()
    tnr = (others > threshold).double().mean()
    return float((tpr + tnr) / 2)


def best_threshold(member_losses: Tensor, nonmember_losses: Tensor) -> tuple[float, float]:
    """The tau maximising :func:`threshold_accuracy` on these losses, and that accuracy.

    Candidates are every observed loss (and -inf: call nobody a member); ties
    between equally good thresholds go to the smallest.
    """
    members = _losses("member_losses", member_losses)
    others = _losses("nonmember_losses", nonmember_losses)
    values = torch.cat([members, others])
    is_member = torch.cat([torch.ones_like(members), torch.zeros_like(others)])
    order = values.argsort(stable=True)
    values, is_member = values[order], is_member[order]
    # calling the first k sorted losses members: TP = cumsum(members), FP = k - TP
    tp = torch.cat([torch.zeros(1, dtype=torch.float64), is_member.cumsum(0)])
    fp = torch.arange(len(values) + 1, dtype=torch.float64) - tp
    acc = (tp / len(members) + 1 - fp / len(others)) / 2
    # only cut between distinct values: a threshold includes all copies of a tied loss
    valid = torch.ones(len(values) + 1, dtype=torch.bool)
    valid[1:-1] = values[1:] != values[:-1]
    acc = torch.where(valid, acc, torch.full_like(acc, -1.0))
    k = int(acc.argmax())
    threshold = float("-inf") if k == 0 else float(values[k - 1])
    return threshold, float(acc[k])


def loss_threshold_attack(member_losses: Tensor, nonmember_losses: Tensor, *, n: int | None = None,
                          seed: int = 0) -> ThresholdAttack:
    """The paper's loss MIA: tau chosen on ``n`` + ``n``, tested on a disjoint ``n`` + ``n``.

    Members and non-members are shuffled (``seed``); the first ``n`` of each
    choose the threshold, the next ``n`` of each test it. ``n`` defaults to
    half the smaller group. Advantage = ``2 (accuracy - 1/2)`` on the test half.
    """
    members = _losses("member_losses", member_losses)
    others = _losses("nonmember_losses", nonmember_losses)
    largest = min(len(members), len(others)) // 2
    n = largest if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > largest:
        raise ValueError(f"n = {n!r} members and non-members per half needs 2n <= "
                         f"{min(len(members), len(others))} losses of each group; choose 1 <= n <= "
                         f"{largest} (or pass more losses).")
    gen = torch.Generator().manual_seed(seed)
    members = members[torch.randperm(len(members), generator=gen)]
    others = others[torch.randperm(len(others), generator=gen)]
    threshold, select_acc = best_threshold(members[:n], others[:n])
    acc = threshold_accuracy(members[n:2 * n], others[n:2 * n], threshold)
    return ThresholdAttack(threshold, select_acc, acc, 2 * (acc - 0.5), n)


def pooled_advantage_interval(attacks: Sequence[ThresholdAttack],
                              confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of the advantage ``2 acc - 1`` from several attacks' held-out
    decisions pooled (each of an attack's ``2n`` test images is decided once, by a threshold
    chosen without it; balanced halves, so ``acc * 2n`` decisions are correct)."""
    if not attacks or not all(isinstance(a, ThresholdAttack) for a in attacks):
        raise ValueError("pooled_advantage_interval needs a non-empty sequence of ThresholdAttack "
                         "results (from loss_threshold_attack).")
    correct = sum(round(a.accuracy * 2 * a.n) for a in attacks)
    total = sum(2 * a.n for a in attacks)
    low, high = clopper_pearson(correct, total, confidence)
    return 2 * low - 1, 2 * high - 1


__all__ = ["ThresholdAttack", "best_threshold", "loss_threshold_attack", "pooled_advantage_interval",
           "threshold_accuracy"]
