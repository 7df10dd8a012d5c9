"""Iterative filtering: a robust mean from the high-dimensional robust statistics literature.

Diakonikolas, Kamath, Kane, Li, Moitra & Stewart (FOCS 2016, "Robust estimators
in high dimensions without the computational intractability", Alg. "Filter" for
a Gaussian with unknown mean and identity covariance; made practical in their
ICML 2017 "Being robust (in high dimensions) can be practical"). It is the
baseline Chapter 3 sets beside RDM-DC's one-shot calibration (Zheng & Li, UAI
2023, Alg. 4): where calibration drops a *fixed* ``ceil(3 eps N)`` rows along
the top direction once, the filter keeps dropping rows along the current top
direction *while the data say there is something to drop*:

1. Spectral test: if the top eigenvalue ``lambda`` of the empirical covariance is
   at most ``1 + c eps log(1/eps)``, no direction carries the excess variance
   that ``eps``-fraction of shifted points would cause: return the mean.
2. Tail test: otherwise project on the top eigenvector ``v`` around the
   projections' median, and find the smallest ``T`` at which the share of rows
   beyond ``T + delta`` exceeds ``tail_factor`` times what a standard Gaussian
   puts there (plus the algorithm's slack); drop those rows and repeat.

The known-covariance filter assumes unit variance in every direction. Real
embeddings are not: :func:`filtered_mean` can first standardise each coordinate
by a robust scale (median and MAD, which a small poisoned share cannot move
much), filter, and average the kept rows in the original coordinates. That
standardisation is our choice for real data, not the papers'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import special
from torch import Tensor

# Their practical code's constants: the spectral threshold 1 + 3 eps log(1/eps),
# the shift delta = 2 eps of the tail test, and a tail factor of 2.5.
SPECTRAL_FACTOR = 3.0
TAIL_FACTOR = 2.5
# 1 / Phi^{-1}(3/4): MAD -> standard deviation for a Gaussian.
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class FilterResult:
    """What the filter kept: ``mean`` ``(d,)``, the boolean ``kept`` mask ``(n,)`` and its ``rounds``."""

    mean: Tensor
    kept: Tensor
    rounds: int


def robust_standardise(feats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(feats - median) / (1.4826 MAD)`` per coordinate; returns (scaled, centre, scale).

    A coordinate with zero MAD (e.g. a ReLU unit that is off for most rows) keeps
    scale 1 so that nothing is divided by zero.
    """
    centre = feats.median(0).values
    scale = MAD_TO_SD * (feats - centre).abs().median(0).values
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (feats - centre) / scale, centre, scale


def _tail_cut(projected: Tensor, eps: float, tau: float, tail_factor: float) -> float | None:
    """The cut ``T + delta`` of the tail test, or None when no ``T`` shows an excess tail.

    ``projected``: ``|<x - median, v>|`` per row. For each candidate ``T`` (the sorted
    projections minus ``delta``), compare the share of rows beyond it with
    ``tail_factor (P(|Z| > T) + 8 eps / (T^2 log(n log(n / (eps tau)))))``,
    the Gaussian two-sided tail plus the slack of the filter's tail condition.
    """
    n = projected.shape[0]
    delta = 2.0 * eps
    ordered = projected.sort().values.tolist()
    log_term = math.log(n * math.log(n / (eps * tau)))
    for i, value in enumerate(ordered):
        t = value - delta
        if t <= 0:
            continue
        beyond = (n - 1 - i) / n              # rows strictly after this one in the order
        expected = float(special.erfc(t / math.sqrt(2.0))) + 8.0 * eps / (t * t * log_term)
        if beyond > tail_factor * expected:
            return value
    return None


def filtered_mean(feats: Tensor, eps: float, *, standardise: bool = False, tau: float = 0.1,
                  spectral_factor: float = SPECTRAL_FACTOR, tail_factor: float = TAIL_FACTOR,
                  max_rounds: int | None = None) -> FilterResult:
    """The iterative filter's mean of ``feats`` ``(n, d)`` with assumed outlier share ``eps``.

    Repeats the spectral test and the tail test (module docstring) on the rows
    kept so far until the spectral test passes or the tail test finds nothing
    to drop. ``standardise``: filter in robust per-coordinate units first (real
    embeddings); the mean is always of the kept rows in the original units.
    ``tau``: the failure probability in the tail condition's slack.
    """
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"filtered_mean needs (n >= 2, d) rows; got shape {tuple(feats.shape)}.")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps = {eps!r}: the filter's assumed outlier share must be in (0, 0.5).")
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau = {tau!r} must be in (0, 1).")
    work = feats.double()
    if standardise:
        work = robust_standardise(work)[0]
    n = work.shape[0]
    kept = torch.ones(n, dtype=torch.bool, device=feats.device)
    limit = n if max_rounds is None else max_rounds
    threshold = 1.0 + spectral_factor * eps * math.log(1.0 / eps)
    rounds = 0
    while rounds < limit and int(kept.sum()) > 2:
        rows = work[kept]
        centred = rows - rows.mean(0)
        # top eigenpair of the covariance (1/(n-1) normalisation, as the algorithm's Sigma)
        values, vectors = torch.linalg.eigh(centred.T @ centred / (rows.shape[0] - 1))
        if float(values[-1]) <= threshold:
            break
        projection = rows @ vectors[:, -1]
        projected = (projection - projection.median()).abs()
        cut = _tail_cut(projected, eps, tau, tail_factor)
        if cut is None:
            break
        drop = projected > cut
        if bool(drop.all()):
            break
        kept[kept.clone()] = ~drop
        rounds += 1
    return FilterResult(mean=feats[kept].mean(0), kept=kept, rounds=rounds)


__all__ = ["FilterResult", "MAD_TO_SD", "SPECTRAL_FACTOR", "TAIL_FACTOR", "filtered_mean",
           "robust_standardise"]
