"""One value per independent unit, for Chapter 5's scorecard rows (:mod:`ddrepro.intervals`).

A seed's evaluation networks share its synthetic set, so an EAD row's unit is the
*distillation seed* (:func:`seed_values`: one accuracy per seed, the mean over its
networks); two methods run on the same seeds are compared on their per-seed differences
(:func:`ddrepro.intervals.paired_estimate`). The estimator study draws its (G, A) pairs
independently of each other, so there the unit is the *pair*: :func:`rank_correlation`
bootstraps a Spearman correlation over pairs, and :func:`loglog_slopes` reduces a pair's
errors over the horizons to one growth exponent. The notebooks import this module; no
cached computation does, so editing it re-keys nothing.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..intervals import BOOTSTRAP_MIN_UNITS, Estimate


def seed_values(frame: pd.DataFrame, value: str, seeds: Sequence[int], **where: Any) -> np.ndarray:
    """``frame[value]`` on the rows matching ``where`` (column == value), one per seed, in the
    order of ``seeds`` (the ``seed`` column): the values a paired comparison lines up."""
    missing = sorted({value, "seed", *where} - set(frame.columns))
    if missing:
        raise ValueError(f"seed_values: frame has no column {', '.join(missing)}; it has "
                         f"{', '.join(map(str, frame.columns))}.")
    hit = frame
    for column, want in where.items():
        hit = hit[hit[column] == want]
    out = []
    for s in seeds:
        rows = hit[hit["seed"] == s]
        if len(rows) != 1:
            raise ValueError(f"seed_values: {len(rows)} rows for seed {s} where {where}; "
                             "need exactly one per seed.")
        out.append(float(rows[value].iloc[0]))
    return np.asarray(out)


def rank_correlation(x: Sequence[float], y: Sequence[float], *, unit: str = "pairs",
                     confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Spearman's rho of ``(x_i, y_i)``, its interval a BCa bootstrap over the pairs ``i``.

    The pairs must be independent draws (the estimator study's random (G, A) pairs are).
    Below ``BOOTSTRAP_MIN_UNITS`` pairs a bootstrap under-covers and Fisher's z misbehaves
    near |rho| = 1, so the interval is unbounded (the row is inconclusive). Where BCa is undefined
    (every resample ranks alike, e.g. rho = 1) the percentile interval is used. The estimate keeps
    no unit values: build it at the confidence its criterion reads (0.90 for ``equivalent``).
    """
    a, b = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape or a.size < 3:
        raise ValueError(f"rank_correlation needs two equal-length samples of >= 3 {unit}; got "
                         f"{a.size} and {b.size}.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("rank_correlation needs finite, non-constant values on both sides.")
    rho = float(stats.spearmanr(a, b).statistic)
    if a.size < BOOTSTRAP_MIN_UNITS:
        return Estimate(rho, -math.inf, math.inf, int(a.size), unit,
                        f"under {BOOTSTRAP_MIN_UNITS} {unit}: no interval", confidence)

    method = "BCa"
    with warnings.catch_warnings():  # a degenerate bootstrap distribution (rho = +-1) is handled below
        warnings.simplefilter("ignore")
        for method in ("BCa", "percentile"):
            boot = stats.bootstrap((a, b), _spearman, paired=True, vectorized=True, method=method,
                                   confidence_level=confidence, n_resamples=n_resamples,
                                   random_state=np.random.default_rng(seed))
            low, high = (float(v) for v in boot.confidence_interval)
            if math.isfinite(low) and math.isfinite(high):
                break
    if not (math.isfinite(low) and math.isfinite(high)):  # resamples with all ties: no interval
        low, high, method = -1.0, 1.0, "no finite bootstrap:"
    return Estimate(rho, min(low, rho), max(high, rho), int(a.size), unit,
                    f"{method} bootstrap over {unit}", confidence)


def _spearman(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along ``axis`` (Pearson's r of the ranks, ties averaged): vectorised over
    bootstrap resamples; a constant resample gives NaN."""
    ru, rv = stats.rankdata(u, axis=axis), stats.rankdata(v, axis=axis)
    ru = ru - ru.mean(axis=axis, keepdims=True)
    rv = rv - rv.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ru * rv).sum(axis) / np.sqrt((ru ** 2).sum(axis) * (rv ** 2).sum(axis))


def loglog_slopes(horizons: Sequence[float], errors: Any, *, floor: float = 1e-12) -> np.ndarray:
    """One growth exponent per pair: the least-squares slope of ``log |error|`` on ``log T``.

    ``errors`` is ``(len(horizons), pairs)``; an error below ``floor`` is read as ``floor``
    (a log needs a positive value). A slope of 2 means the error grows like ``T^2``.
    """
    t = np.asarray(horizons, dtype=float).ravel()
    e = np.abs(np.asarray(errors, dtype=float))
    if e.ndim != 2 or e.shape[0] != t.size:
        raise ValueError(f"loglog_slopes: errors must be (horizons, pairs) = ({t.size}, n); got "
                         f"shape {e.shape}.")
    if t.size < 2 or np.unique(t).size < 2 or np.any(t <= 0):
        raise ValueError(f"loglog_slopes needs >= 2 distinct positive horizons; got {t.tolist()}.")
    if not np.all(np.isfinite(e)):
        raise ValueError("loglog_slopes: errors must be finite.")
    return np.polyfit(np.log(t), np.log(np.maximum(e, floor)), 1)[0]


def trained_horizon(horizons: Sequence[int], train_accuracy: Sequence[float],
                    train_loss: Sequence[float], *, target: float = 0.9,
                    plateau: float = 0.05) -> tuple[int, str]:
    """The horizon at which the run on D counts as trained, and why: read from training alone.

    The first horizon whose training accuracy reaches ``target``; failing that,
    the first whose training loss fell by less than ``plateau`` (relative) since
    the previous horizon; failing both, the longest. Def. 3.1 is about the
    trained model, so the estimator is scored there, a choice that looks at
    no effect and no estimate.
    """
    t = [int(h) for h in horizons]
    acc, loss = list(map(float, train_accuracy)), list(map(float, train_loss))
    if not t or len(acc) != len(t) or len(loss) != len(t):
        raise ValueError(f"trained_horizon needs one accuracy and one loss per horizon; got "
                         f"{len(t)} horizons, {len(acc)} accuracies, {len(loss)} losses.")
    if t != sorted(set(t)):
        raise ValueError(f"horizons must be increasing, got {t}.")
    for h, a in zip(t, acc):
        if a >= target:
            return h, f"training accuracy {100 * a:.1f} % >= {100 * target:.0f} %"
    for i in range(1, len(t)):
        if loss[i - 1] > 0 and (loss[i - 1] - loss[i]) / loss[i - 1] < plateau:
            return t[i], f"training loss plateau ({loss[i - 1]:.3f} -> {loss[i]:.3f})"
    return t[-1], f"the longest horizon (accuracy {100 * acc[-1]:.1f} %, no plateau)"


__all__ = ["loglog_slopes", "rank_correlation", "seed_values", "trained_horizon"]
