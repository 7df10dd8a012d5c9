"""Confidence intervals over what was repeated independently: the one place the chapters get them.

Every scorecard row is judged from an interval (:mod:`ddrepro.verdicts`), and an interval is
only as good as its unit: a poisoning target's runs share its poisons, LiRA's scores share
their target model, a seed's evaluation networks share its synthetic set. So the functions
here take one value *per independent unit* (or the values and their clusters) and return an
:class:`Estimate` that names the unit and the method:

- :func:`clopper_pearson` / :func:`proportion_estimate`: the exact binomial interval, for
  successes in *independent* trials only;
- :func:`unit_estimate`: a mean over independent units. With fewer than
  ``BOOTSTRAP_MIN_UNITS`` units, Student's t over the unit values (a bootstrap over 2-8
  units under-covers: ``tests/test_intervals.py`` measures both); with more, SciPy's BCa
  bootstrap over the units;
- :func:`cluster_estimate`: values with cluster labels reduced to one mean per cluster,
  then :func:`unit_estimate` (a cluster bootstrap when there are many clusters);
- :func:`paired_estimate`: two methods on the same units (shared seeds, targets), the
  interval of the per-unit differences;
- :func:`exact_estimate`: a deterministic quantity (no sampling error: the interval is the point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_MIN_UNITS = 20
Z_POWER = stats.norm.ppf(0.8)  # the smallest detectable difference is quoted at 80 % power


def _check_confidence(confidence: float) -> None:
    if isinstance(confidence, bool) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence!r} must lie strictly between 0 and 1.")


def clopper_pearson(k, n, confidence: float = 0.95):
    """Exact (Clopper-Pearson) two-sided interval for ``k`` successes in ``n`` trials.

    Vectorised over arrays of ``k`` and ``n`` (then returns two arrays); Python
    floats for scalar input. Equal to
    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="exact")``.
    """
    _check_confidence(confidence)
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if np.any(n_arr < 1) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}.")
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(k_arr > 0, stats.beta.ppf(alpha / 2, k_arr, n_arr - k_arr + 1), 0.0)
        high = np.where(k_arr < n_arr, stats.beta.ppf(1 - alpha / 2, k_arr + 1, n_arr - k_arr), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


@dataclass(frozen=True)
class Estimate:
    """A measured quantity: its point, its interval over ``n`` independent ``unit`` s, and how.

    ``values``: the per-unit values the interval was computed from (empty for a
    proportion or an exact quantity), kept so :meth:`at` can recompute the
    interval at another confidence (a two one-sided test at level alpha reads
    the ``1 - 2 alpha`` interval).
    """

    point: float
    low: float
    high: float
    n: int
    unit: str
    method: str
    confidence: float = 0.95
    values: tuple[float, ...] = field(default=(), repr=False)
    counts: tuple[int, int] | None = None  # (successes, trials) of a Clopper-Pearson estimate

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)
        if not (self.low <= self.point <= self.high) and not math.isnan(self.point):
            raise ValueError(f"Estimate: point {self.point} outside its interval [{self.low}, {self.high}].")

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def detectable(self) -> float:
        """The smallest difference from a threshold this run would detect with 80 % power
        (two-sided, at this confidence): the half width scaled by ``(z_a/2 + z_0.8) / z_a/2``."""
        z = stats.norm.ppf(0.5 + self.confidence / 2)
        return self.half_width * (z + Z_POWER) / z

    def at(self, confidence: float) -> "Estimate":
        """The same estimate at another confidence (recomputed from the unit values)."""
        if confidence == self.confidence:
            return self
        if self.method.startswith("exact"):
            return replace(self, confidence=confidence)
        if self.counts is not None:
            return proportion_estimate(*self.counts, unit=self.unit, confidence=confidence)
        if not self.values:
            raise ValueError(f"this {self.method} estimate keeps no unit values; build it at "
                             f"confidence {confidence} instead.")
        return unit_estimate(self.values, unit=self.unit, confidence=confidence)

    def text(self, digits: int = 3) -> str:
        """``0.42 [0.31, 0.55], 8 targets (t)``: what a scorecard row shows."""
        fmt = lambda x: f"{x:.{digits}g}" if math.isfinite(x) else ("-inf" if x < 0 else "inf")
        if self.method.startswith("exact"):
            return f"{fmt(self.point)} (exact)"
        return f"{fmt(self.point)} [{fmt(self.low)}, {fmt(self.high)}], {self.n} {self.unit} ({self.method})"


def exact_estimate(value: float, *, unit: str = "deterministic") -> Estimate:
    """A quantity with no sampling error (a closed form, a checksum, a count by construction)."""
    value = float(value)
    return Estimate(value, value, value, 1, unit, "exact")


def proportion_estimate(k: int, n: int, *, unit: str = "independent trials",
                        confidence: float = 0.95) -> Estimate:
    """``k`` of ``n`` *independent* trials: the rate with its Clopper-Pearson interval."""
    low, high = clopper_pearson(k, n, confidence)
    return Estimate(k / n, low, high, int(n), unit, "Clopper-Pearson", confidence, counts=(int(k), int(n)))


def unit_estimate(values: Sequence[float], *, unit: str, confidence: float = 0.95,
                  n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """The mean of one value per independent unit, with its interval (t below
    ``BOOTSTRAP_MIN_UNITS`` units, BCa bootstrap at or above). One unit: an unbounded interval."""
    _check_confidence(confidence)
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"unit_estimate needs finite values, one per {unit}; got {values!r}.")
    mean = float(x.mean())
    kept = tuple(float(v) for v in x)
    if x.size == 1:
        return Estimate(mean, -math.inf, math.inf, 1, unit, "one unit: no interval", confidence, kept)
    if np.ptp(x) <= 1e-9 * max(1.0, float(np.abs(x).max())):  # equal up to float rounding
        # A few equal values (two networks both at chance) say nothing about the spread: t and the
        # bootstrap would give a zero-width interval and a false certainty. A deterministic
        # quantity is an exact_estimate instead.
        if x.size < BOOTSTRAP_MIN_UNITS:
            return Estimate(mean, -math.inf, math.inf, x.size, unit, "no spread: no interval",
                            confidence, kept)
        return Estimate(mean, mean, mean, x.size, unit, "no spread", confidence, kept)
    if x.size < BOOTSTRAP_MIN_UNITS:
        low, high = stats.t.interval(confidence, x.size - 1, loc=mean, scale=stats.sem(x))
        return Estimate(mean, float(low), float(high), x.size, unit, "t", confidence, kept)
    boot = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                           method="BCa", random_state=np.random.default_rng(seed))
    low, high = boot.confidence_interval
    return Estimate(mean, min(float(low), mean), max(float(high), mean), x.size, unit, "BCa bootstrap",
                    confidence, kept)


def cluster_means(values: Sequence[float], clusters: Sequence) -> np.ndarray:
    """One mean per cluster (in order of first appearance): the independent unit of clustered trials."""
    x = np.asarray(values, dtype=float).ravel()
    labels = list(clusters)
    if len(labels) != x.size:
        raise ValueError(f"{x.size} values but {len(labels)} cluster labels.")
    order = list(dict.fromkeys(labels))
    return np.array([x[[i for i, c in enumerate(labels) if c == key]].mean() for key in order])


def cluster_estimate(values: Sequence[float], clusters: Sequence, *, unit: str,
                     confidence: float = 0.95) -> Estimate:
    """Values that share clusters (a target's runs, a target model's scores): the mean over
    cluster means, its interval over clusters (:func:`unit_estimate`)."""
    return unit_estimate(cluster_means(values, clusters), unit=unit, confidence=confidence)


def paired_estimate(a: Sequence[float], b: Sequence[float], *, unit: str,
                    confidence: float = 0.95) -> Estimate:
    """``a - b`` on the same units (shared seeds or targets, in the same order)."""
    a_arr, b_arr = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired_estimate needs one value per {unit} on both sides; got "
                         f"{a_arr.size} and {b_arr.size}.")
    return unit_estimate(a_arr - b_arr, unit=unit, confidence=confidence)


__all__ = ["BOOTSTRAP_MIN_UNITS", "Estimate", "clopper_pearson", "cluster_estimate", "cluster_means",
           "exact_estimate", "paired_estimate", "proportion_estimate", "unit_estimate"]
