"""One value per independent unit, for the chapter's scorecard rows (:mod:`ddrepro.intervals`).

LiRA's scores share their target model and the loss attack's decisions share their
preparation, so an interval over pooled scores or pooled decisions uses the wrong unit.
The functions here reduce an attack to one number per *target model*
(:func:`per_target_auc`, :func:`per_target_tpr`: each independent target attacked by the
shadows), and measure how a quantity scales
with a size (:func:`scaling_slope`, the ``O(|S|/|T|)`` of Dong et al.'s Prop. 4.10).
The notebooks import this module; no cached computation does, so editing it re-keys nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor

from .lira import lira_scores


def per_target_auc(phi: Tensor, member: Tensor, shadows: int, *, online: bool = True,
                   global_variance: bool = True, fit: str = "mean") -> np.ndarray:
    """LiRA's ROC AUC against each target model, one value per target: the unit of Fig. 2's claim.

    ``phi`` ``(K + T, n[, q])`` and ``member`` ``(K + T, n)`` bool, the first ``shadows`` = K
    rows the shadow models, the other T rows the targets (independent preparations). Each
    target is attacked by the K shadows (:func:`ddrepro.privacy.lira.lira_scores`) and its
    AUC is taken over the examples it holds and does not hold.

    Why not every model as the target in turn (:func:`ddrepro.privacy.lira.leave_one_out_scores`):
    the shadows are drawn with :func:`~ddrepro.privacy.lira.balanced_membership` (each example
    IN for exactly K/2 of them), so among the *other* shadows an example has K/2 - 1 IN models
    when the left-out one holds it and K/2 when it does not: the design itself tells the attack
    the answer: on pure noise the mean AUC comes out about 0.47 at K = 6, 0.48 at K = 10 and
    0.49-0.50 at K = 18 (``tests/privacy/test_per_unit.py`` measures it), a bias as large as
    Fig. 2's margin of 0.01. The targets' membership is independent
    of the shadows', so their AUCs are honest units.
    """
    if not isinstance(member, Tensor) or member.dtype != torch.bool or member.dim() != 2:
        raise ValueError("member must be a (K + T, n) bool tensor: model k trained on example j.")
    if not isinstance(phi, Tensor) or tuple(phi.shape[:2]) != tuple(member.shape):
        raise ValueError(f"phi must be shaped {tuple(member.shape)} (+ queries), like member; got "
                         f"{tuple(phi.shape) if isinstance(phi, Tensor) else type(phi).__name__}.")
    return np.asarray([float(roc_auc_score(truth, scores)) for scores, truth in
                       _target_scores(phi, member, shadows, online, global_variance, fit)])


def _target_scores(phi: Tensor, member: Tensor, shadows: int, online: bool,
                   global_variance: bool, fit: str = "mean") -> list[tuple[np.ndarray, np.ndarray]]:
    """Each target's LiRA scores and membership (numpy), the targets attacked by the shadows."""
    total = member.shape[0]
    if isinstance(shadows, bool) or not isinstance(shadows, int) or not 2 <= shadows < total:
        raise ValueError(f"shadows = {shadows!r}: need 2 <= shadows < {total} (the rows after the "
                         "shadows are the targets).")
    out = []
    for t in range(shadows, total):
        truth = member[t]
        if truth.all() or not truth.any():
            raise ValueError(f"target {t - shadows} holds all or none of the {truth.numel()} probed "
                             "examples; probe more examples.")
        scores = lira_scores(phi[t], phi[:shadows], member[:shadows], online=online,
                             global_variance=global_variance, fit=fit)
        out.append((scores.double().numpy(), truth.numpy()))
    return out


def tpr_at(scores: np.ndarray, truth: np.ndarray, fpr: float) -> float:
    """The largest TPR of a threshold on ``scores`` whose FPR is at most ``fpr`` (scikit-learn's ROC)."""
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr = {fpr!r} must lie in (0, 1).")
    rates_f, rates_t, _ = roc_curve(truth, scores)
    return float(rates_t[rates_f <= fpr].max())  # roc_curve starts at (0, 0)


def per_target_tpr(phi: Tensor, member: Tensor, shadows: int, fpr: float, *, online: bool = True,
                   global_variance: bool = True, fit: str = "mean") -> np.ndarray:
    """LiRA's TPR at FPR <= ``fpr`` against each target model, one value per target (the unit of
    Carlini et al.'s low-FPR criterion); arguments as :func:`per_target_auc`. Below one false
    positive per target (``fpr`` x non-members < 1) it is the TPR at FPR 0."""
    if not isinstance(member, Tensor) or member.dtype != torch.bool or member.dim() != 2:
        raise ValueError("member must be a (K + T, n) bool tensor: model k trained on example j.")
    return np.asarray([tpr_at(scores, truth, fpr) for scores, truth in
                       _target_scores(phi, member, shadows, online, global_variance, fit)])


def scaling_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares slope of ``log(values)`` against ``log(sizes)``: 1 for a quantity that
    grows linearly in the size, 0 for one that does not depend on it."""
    x = np.asarray(sizes, dtype=float).ravel()
    y = np.asarray(values, dtype=float).ravel()
    if x.shape != y.shape or x.size < 2 or np.unique(x).size < 2:
        raise ValueError(f"scaling_slope needs >= 2 distinct sizes with one value each; got "
                         f"{x.size} sizes ({np.unique(x).size} distinct) and {y.size} values.")
    if np.any(x <= 0) or np.any(y <= 0) or not np.all(np.isfinite(y)):
        raise ValueError("scaling_slope needs positive, finite sizes and values (a log-log fit).")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


__all__ = ["per_target_auc", "per_target_tpr", "scaling_slope", "tpr_at"]
