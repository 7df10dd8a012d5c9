"""Confidence intervals for the success rates the chapters report (attack success, TPR, FPR).

One function, shared by the membership attacks (Chapter 2) and the poisoning grid
(Chapter 3): the exact Clopper-Pearson interval, from SciPy's beta quantiles.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def clopper_pearson(k, n, confidence: float = 0.95):
    """Exact (Clopper-Pearson) two-sided interval for ``k`` successes in ``n`` trials.

    Vectorised over arrays of ``k`` and ``n`` (then returns two arrays); Python
    floats for scalar input. Equal to
    ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="exact")``.
    """
    if isinstance(confidence, bool) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence!r} must lie strictly between 0 and 1.")
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


__all__ = ["clopper_pearson"]
