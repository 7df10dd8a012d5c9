"""The (eps, delta)-DP bound on a membership attack, as a scorecard quantity (issue 23, item 2).

Kairouz, Oh & Viswanath (ICML 2015, Thm. 2.1; the hypothesis-testing view of differential
privacy): a mechanism is (eps, delta)-DP iff every test of "x was in the training set" against
"it was not" has ``FPR + e^eps FNR >= 1 - delta`` (and the same with the roles swapped), i.e.
``TPR <= e^eps FPR + delta``. DP-SGD's accountant certifies (eps, delta), so LiRA's measured TPR at
an FPR cannot exceed the bound unless the implementation or the accountant is broken.

The bound depends on eps, so the scorecard judges the *excess* ``TPR - (e^eps FPR + delta)``
(points, one value per target network) against a fixed threshold of 0 (``criteria.csv``,
``crit_dp_bound``, ``at_most``): the interval's upper end at most 0 is the same statement as the
TPR interval's upper end at most the bound. Each target's TPR is read at the largest threshold
with FPR <= the judged FPR, so its actual FPR is at most that, and the bound at the judged FPR
is the loosest the operating point allows: a violation cannot come from reading the bound low.

Nothing cached imports this module.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..intervals import Estimate, unit_estimate


def tpr_bound(epsilon: float, fpr: float, delta: float) -> float:
    """``min(1, e^eps FPR + delta)``: the largest TPR any attack can reach at ``fpr`` against an
    (eps, delta)-DP training run (Kairouz et al. 2015, Thm. 2.1)."""
    if isinstance(epsilon, bool) or not (isinstance(epsilon, (int, float)) and 0 < epsilon < math.inf):
        raise ValueError(f"epsilon = {epsilon!r} must be a finite number > 0.")
    for name, value in (("fpr", fpr), ("delta", delta)):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise ValueError(f"{name} = {value!r} must lie in [0, 1).")
    return min(1.0, math.exp(epsilon) * fpr + delta)


def bound_excess(tprs: Sequence[float], epsilon: float, fpr: float, delta: float, *,
                 unit: str = "target networks") -> tuple[Estimate, float, bool]:
    """The measured TPR minus the DP bound, in points, over the target networks.

    ``tprs``: one TPR (a fraction) per target network, at FPR <= ``fpr``. Returns the
    :class:`~ddrepro.intervals.Estimate` of ``100 * (TPR - bound)``, the bound in percent, and
    whether the bound can be violated at all (False when it is 100 %: no TPR exceeds it, so a
    row judged from it could not fail and is recorded "not checked").
    """
    x = np.asarray(tprs, dtype=float).ravel()
    if x.size == 0 or not np.all((x >= 0) & (x <= 1)):
        raise ValueError(f"tprs must be one rate in [0, 1] per target network, got {tprs!r}.")
    bound = tpr_bound(epsilon, fpr, delta)
    return unit_estimate(100 * (x - bound), unit=unit), 100 * bound, bound < 1.0


__all__ = ["bound_excess", "tpr_bound"]
