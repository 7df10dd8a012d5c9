"""The poisoned deviation of a class mean (Zheng & Li, UAI 2023, Sec. 4.2-4.3, Lemma 4.1), measured.

Definition 4.1: when a statistic splits as ``z = z_D + z_B`` into what the clean
data and what the poisons contribute, ``z_B`` is the *poisoned deviation*. For
DM's class mean of ``N`` representations, a fraction ``eps`` of them poisons
from a distribution B, it is ``eps (mu_B - mu_D)``: ``O(eps sqrt(d_r))`` when the
representations' scale is ``sqrt(d_r)`` (Eq. 6). Lemma 4.1: if
``||mu_D - mu_B||^2 >= alpha sigma^2 / eps`` (alpha > 2665/576), dropping the
representations far from the mean along the top eigenvector leaves
``Theta(eps^2 sqrt(d_r))``.

Here: clean ``N(0, sigma^2 I)`` representations plus poisons ``N(mu, sigma^2 I)``
(:func:`planted_features`); the *expected* deviation of an estimator,
``|| E[estimate - clean sample mean] ||`` averaged over trials so that sampling
noise does not hide the bias (:func:`expected_deviation`); sweeps over eps and
d_r (:func:`deviation_sweep`) and fitted log-log slopes (:func:`loglog_slope`).
:func:`trimming_residual` is our own closed form for what calibration with the
paper's ``k = ceil(3 eps N)`` leaves on Gaussians (not in the paper).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import optimize, stats

from ..filtering import filtered_mean
from ..robust import DROP_FACTOR, robust_mean
from ..runtime import make_generator

# the paper's estimators (Sec. 4.5) and the iterative filter of Diakonikolas et al. as a further
# baseline on planted Gaussians (it assumes unit-variance clean data, which real embeddings are not)
PAPER_ESTIMATORS = ("mean", "calibrated", "median", "trimmed", "truncated")
ESTIMATORS = PAPER_ESTIMATORS + ("filter",)
# Lemma 4.1's constant: the separation eps ||mu_D - mu_B||^2 / sigma^2 must exceed it.
LEMMA_ALPHA = 2665 / 576


def planted_features(n: int, d: int, eps: float, mu_norm: float, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows, ``round(eps n)`` of them poisons ``N(mu, I)`` with ``mu = mu_norm * 1 / sqrt(d)``, the
    rest clean ``N(0, I)``; returns (rows, the clean rows' mean)."""
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps = {eps!r} must be in (0, 0.5).")
    n_bad = max(1, round(eps * n))
    clean = torch.randn(n - n_bad, d, generator=generator, dtype=torch.float64)
    bad = mu_norm / math.sqrt(d) + torch.randn(n_bad, d, generator=generator, dtype=torch.float64)
    return torch.cat([clean, bad]), clean.mean(0)


def separation(eps: float, mu_norm: float, sigma: float = 1.0) -> float:
    """Lemma 4.1's ``eps ||mu_D - mu_B||^2 / sigma^2`` (must exceed :data:`LEMMA_ALPHA`)."""
    return eps * mu_norm ** 2 / sigma ** 2


def estimate(feats: torch.Tensor, name: str, eps: float, *, power_iterations: int = 10) -> torch.Tensor:
    """One estimator of :data:`ESTIMATORS` on ``feats`` ``(n, d)`` at assumed rate ``eps``.

    The trimming estimators drop ``k = ceil(3 eps n)`` rows (the paper's rule);
    the filter is told ``eps`` and decides itself how many to drop.
    """
    if name == "filter":
        return filtered_mean(feats, eps).mean
    k = 0 if name in ("mean", "median") else math.ceil(DROP_FACTOR * eps * feats.shape[0] - 1e-9)
    return robust_mean(feats, name, k, power_iterations)


def expected_deviation(n: int, d: int, eps: float, mu_norm: float, *, trials: int = 20, seed: int = 0,
                       estimators: Sequence[str] = ESTIMATORS, power_iterations: int = 10
                       ) -> dict[str, float]:
    """``|| mean over trials of (estimate - clean mean) ||`` per estimator, with ``k = ceil(3 eps n)``."""
    generator = make_generator(seed)
    total = {name: torch.zeros(d, dtype=torch.float64) for name in estimators}
    for _ in range(trials):
        feats, clean_mean = planted_features(n, d, eps, mu_norm, generator)
        for name in estimators:
            total[name] += estimate(feats, name, eps, power_iterations=power_iterations) - clean_mean
    return {name: float(total[name].norm() / trials) for name in estimators}


def deviation_sweep(eps_values: Sequence[float], dims: Sequence[int], *, n: int, mu_norm: float | None = None,
                    mu_per_dim: float | None = None, trials: int = 20, seed: int = 0,
                    estimators: Sequence[str] = ESTIMATORS) -> pd.DataFrame:
    """One row per (eps, d, estimator): the expected deviation, and the plain mean's ``eps ||mu||``.

    Give ``mu_norm`` (fixed ``||mu_B - mu_D||``: the eps sweep) or ``mu_per_dim``
    (``||mu|| = mu_per_dim sqrt(d)``, representations whose scale grows as
    ``sqrt(d_r)``: the d_r sweep).
    """
    if (mu_norm is None) == (mu_per_dim is None):
        raise ValueError("give exactly one of mu_norm (eps sweep) and mu_per_dim (d_r sweep).")
    rows = []
    for eps in eps_values:
        for d in dims:
            norm = mu_norm if mu_norm is not None else mu_per_dim * math.sqrt(d)
            found = expected_deviation(n, d, eps, norm, trials=trials, seed=seed, estimators=estimators)
            for name, value in found.items():
                rows.append({"eps": eps, "d": d, "estimator": name, "deviation": value,
                             "mu_norm": norm, "separation": separation(eps, norm)})
    return pd.DataFrame(rows)


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("loglog_slope needs at least two points with positive x and y.")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def trimming_residual(eps: float, mu_norm: float) -> float:
    """Our closed form (not the paper's) of what calibration leaves on unit Gaussians, large N.

    Assume the top direction is ``mu``'s and every poison is dropped; the other
    ``k - eps N = 2 eps N`` dropped rows are clean, a fraction
    ``q = 2 eps / (1 - eps)`` of them, cut symmetrically around the *poisoned*
    centre ``delta = eps ||mu||``: ``P(x < delta - t) + P(x > delta + t) = q``.
    The kept clean rows then average ``(phi(t - delta) - phi(t + delta)) / (1 - q)``
    along ``mu``, about ``2 eps^2 ||mu|| t^2`` for small ``delta``, with
    ``t^2 ~ 2 log(1 / eps)``: second order in eps up to a logarithm.
    """
    delta = eps * mu_norm
    q = 2 * eps / (1 - eps)

    def mass(t: float) -> float:
        return stats.norm.cdf(delta - t) + stats.norm.sf(delta + t) - q

    t = optimize.brentq(mass, 0.0, delta + 40.0)
    return float((stats.norm.pdf(t - delta) - stats.norm.pdf(t + delta)) / (1 - q))




def mixed_batch_deviation(clean: torch.Tensor, poisons: torch.Tensor, counts: Sequence[int], *,
                          estimators: Sequence[str] = PAPER_ESTIMATORS, power_iterations: int = 10
                          ) -> pd.DataFrame:
    """How far ``m`` poisons move each estimator on one class's real embeddings (Definition 4.1).

    ``clean`` ``(n, d)``: the class's clean embeddings, the first ``len(poisons)``
    of them the originals of ``poisons`` ``(P, d)``. For each ``m`` in
    ``counts`` the batch is the class with its first ``m`` images replaced by
    their poisons (eps = m / n, k = ceil(3 eps n) for the trimming estimators,
    on both batches). ``deviation``: ``|| estimate(poisoned) - estimate(clean) ||``,
    the part of the estimate the poisons cause; ``from clean mean``:
    ``|| estimate(poisoned) - mean(clean) ||``, which adds the estimator's own
    bias on skewed (e.g. ReLU) embeddings.
    """
    n = clean.shape[0]
    rows = []
    for m in counts:
        if not 1 <= m <= poisons.shape[0]:
            raise ValueError(f"count {m} must be in [1, {poisons.shape[0]}] (the poisons available).")
        batch = torch.cat([poisons[:m], clean[m:]])
        eps = m / n
        for name in estimators:
            poisoned = estimate(batch, name, eps, power_iterations=power_iterations)
            reference = estimate(clean, name, eps, power_iterations=power_iterations)
            rows.append({"eps": eps, "poisons": m, "estimator": name,
                         "deviation": float((poisoned - reference).norm()),
                         "from clean mean": float((poisoned - clean.mean(0)).norm())})
    return pd.DataFrame(rows)


def seed_slopes(eps_values: Sequence[float], d: int, *, n: int, mu_norm: float, trials: int,
                seeds: Sequence[int], estimator: str = "calibrated") -> np.ndarray:
    """One log-log slope of ``estimator``'s expected deviation against eps per seed: each seed an
    independent :func:`deviation_sweep` of ``trials`` draws (the unit a slope's interval resamples;
    splitting one seed's trials would raise the noise floor of the small deviations, not add units)."""
    if len(eps_values) < 2 or not seeds:
        raise ValueError("seed_slopes needs at least two eps values and one seed.")
    return np.array([loglog_slope(eps_values, deviation_sweep(eps_values, [d], n=n, mu_norm=mu_norm,
                                                             trials=trials, seed=int(s),
                                                             estimators=(estimator,)).deviation)
                     for s in seeds])


def unit_slopes(frame: pd.DataFrame, *, by: str, x: str = "eps", y: str = "deviation") -> pd.Series:
    """The log-log slope of ``y`` against ``x`` per value of ``by`` (e.g. one per random network of
    :func:`mixed_batch_deviation`'s frames): one value per independent unit."""
    for name in (by, x, y):
        if name not in frame.columns:
            raise ValueError(f"unit_slopes: no column {name!r}; the frame has {', '.join(frame.columns)}.")
    return frame.groupby(by, sort=False).apply(lambda g: loglog_slope(g[x], g[y])).astype(float)


__all__ = ["ESTIMATORS", "LEMMA_ALPHA", "PAPER_ESTIMATORS", "deviation_sweep", "estimate", "expected_deviation", "loglog_slope",
           "mixed_batch_deviation", "planted_features", "seed_slopes", "separation", "trimming_residual",
           "unit_slopes"]
