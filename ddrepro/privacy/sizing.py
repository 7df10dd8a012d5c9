"""How large a canary audit would answer its claim (issue 23, item 5), from what a run measured.

The canary rows are judged on one LiRA AUC per target model (:mod:`ddrepro.privacy.per_unit`),
so a run decides a claim when the interval of the mean AUC over targets clears the criterion's
bound. Two things size that interval, and one thing sizes the shadows:

* **canaries per target.** One target's AUC over ``m`` canaries (half IN) has the sampling
  variance of Hanley & McNeil (Radiology 1982, Eq. 2) at the measured AUC,
  :func:`auc_variance`; the rest of the measured spread between targets (the targets'
  training runs, the shadows' fits) is kept as it is. :func:`canary_plan` finds, for a number
  of targets, the fewest canaries whose interval's half width (Student t over the targets, at
  the confidence the criterion reads) is at most the distance from the measured AUC to the
  criterion's nearest bound, i.e. the run that would decide if the AUC stayed where it is.
* **shadows.** Per-example variances (LiRA's online attack at its strongest) pay off only when
  the canaries' variances differ. The log of a sample variance from ``k`` Gaussian values has
  variance ``psi'((k - 1) / 2)`` (the trigamma function), so the measured spread of the
  canaries' log variances, less that sampling part, estimates their true spread ``tau^2``;
  :func:`shadows_for_variances` gives the shadows per side whose sampling noise is at most
  ``share`` of ``tau^2`` (None: no spread measurable, a pooled variance is as good).

Both extrapolate from a small run under the stated assumptions: the AUC and the spreads stay
where they were measured, and scores of different targets are independent.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy import special, stats
from torch import Tensor

from ..verdicts import EQUIVALENCE_CONFIDENCE, Criterion


def auc_variance(auc: float, positives: int, negatives: int) -> float:
    """The sampling variance of an AUC over ``positives`` and ``negatives`` independent scores
    (Hanley & McNeil 1982, Eq. 2, with their exponential approximations of Q1 and Q2); at 0.5
    it is exactly the Mann-Whitney null variance ``(n1 + n2 + 1) / (12 n1 n2)``."""
    if not 0.0 <= auc <= 1.0 or positives < 1 or negatives < 1:
        raise ValueError(f"auc = {auc!r} must lie in [0, 1] with >= 1 positive and negative score.")
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    return (auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2)
            + (negatives - 1) * (q2 - auc ** 2)) / (positives * negatives)


def _distance(criterion: Criterion, point: float) -> float:
    """How far ``point`` lies from the criterion's nearest bound (what a half width must beat)."""
    if criterion.kind in ("at_least", "at_most"):
        return abs(point - criterion.threshold)
    if criterion.kind == "equivalent":
        return min(abs(point - (criterion.center - criterion.margin)),
                   abs(point - (criterion.center + criterion.margin)))
    raise ValueError(f"canary_plan sizes at_least / at_most / equivalent criteria, not {criterion.kind!r}.")


def _quantile(criterion: Criterion) -> float:
    """The upper quantile of the two-sided interval the criterion reads (90 % for equivalence)."""
    confidence = EQUIVALENCE_CONFIDENCE if criterion.kind == "equivalent" else 0.95
    return 0.5 + confidence / 2


def canary_plan(aucs: Sequence[float], positives: float, negatives: float, criterion: Criterion, *,
                targets: Sequence[int], limit: int = 10 ** 6) -> list[dict[str, float]]:
    """For each number of targets in ``targets``: the fewest canaries per target (half IN) whose
    interval would decide ``criterion`` at the measured AUC (module docstring); ``inf`` where
    the spread between targets left after the canaries' part forbids it within ``limit``.

    ``aucs``: the run's AUC per target model (>= 2), over ``positives`` IN and ``negatives``
    OUT canaries per target (means over targets).
    """
    values = np.asarray(aucs, dtype=float).ravel()
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError("canary_plan needs >= 2 finite per-target AUCs (a spread between targets).")
    point = float(values.mean())
    distance = _distance(criterion, point)
    measured = float(values.var(ddof=1))
    rest = max(0.0, measured - auc_variance(point, max(1, round(positives)), max(1, round(negatives))))
    q = _quantile(criterion)
    rows = []
    for t in targets:
        if t < 2:
            raise ValueError(f"targets = {t}: an interval over targets needs >= 2.")
        factor = stats.t.ppf(q, t - 1) / math.sqrt(t)

        def decides(m: int) -> bool:
            half = m // 2
            return factor * math.sqrt(auc_variance(point, half, m - half) + rest) <= distance

        needed = math.inf
        if distance > 0 and decides(limit):
            lo, hi = 2, limit      # decides() is monotone in m: bisect for the smallest
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if decides(mid) else (mid + 1, hi)
            needed = lo
        rows.append({"targets": t, "canaries per target": needed, "AUC": point,
                     "distance to bound": distance, "sd between targets (rest)": math.sqrt(rest)})
    return rows


def log_variance_spread(phi: Tensor, member: Tensor) -> tuple[float, float, int]:
    """The canaries' log sample variances over the models that hold them (IN) and that do not
    (OUT), each side's values pooled: their measured variance across canaries, the sampling
    part ``psi'((k - 1) / 2)`` averaged over them, and the fewest models on a side."""
    if not isinstance(member, Tensor) or member.dtype != torch.bool or member.dim() != 2 \
            or tuple(phi.shape[:2]) != tuple(member.shape):
        raise ValueError("phi (K, n[, q]) and member (K, n) bool must match.")
    phi = phi.double()
    phi = phi if phi.dim() == 2 else phi.mean(-1)   # one value per model and canary
    logs, sampling = [], []
    for mask in (member, ~member):
        for j in range(mask.shape[1]):
            x = phi[mask[:, j], j]
            if x.numel() >= 3:
                logs.append(math.log(max(float(x.var(unbiased=True)), 1e-300)))
                sampling.append(float(special.polygamma(1, (x.numel() - 1) / 2)))
    if len(logs) < 2:
        raise ValueError("fewer than 2 canary sides with >= 3 models: no variance spread to measure.")
    fewest = int(min(member.sum(0).min(), (~member).sum(0).min()))
    return float(np.var(logs, ddof=1)), float(np.mean(sampling)), fewest


def shadows_for_variances(phi: Tensor, member: Tensor, *, share: float = 0.25,
                          limit: int = 100_000) -> tuple[float, int | None]:
    """The canaries' true spread of log variance ``tau^2`` (measured less sampling) and the
    shadows per side whose sampling variance ``psi'((k - 1) / 2)`` is at most ``share * tau^2``;
    None when ``tau^2 <= 0`` (no measurable spread: a pooled variance loses nothing)."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share = {share!r} must lie in (0, 1].")
    measured, sampling, _ = log_variance_spread(phi, member)
    tau2 = measured - sampling
    if tau2 <= 0:
        return tau2, None
    lo, hi = 3, limit
    if special.polygamma(1, (hi - 1) / 2) > share * tau2:
        return tau2, None
    while lo < hi:  # trigamma falls with k: bisect for the smallest k
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if special.polygamma(1, (mid - 1) / 2) <= share * tau2 else (mid + 1, hi)
    return tau2, lo


__all__ = ["auc_variance", "canary_plan", "log_variance_spread", "shadows_for_variances"]
