"""Chapter 3's scorecard inputs: one value per independent unit (a target, a run), never per trial.

Zheng & Li's ASR is a mean over 5 targets x 5 runs (Sec. 5.1), but a target's runs share its
poisons, so its trials are not independent: the unit an interval may resample is the *target*
(or, for the untargeted attack, which has no target, the victim *run*). Here the grid's rows
(one per target, run and victim network) become one value per unit (:func:`unit_values`), two
methods on the same units become aligned pairs (:func:`paired_units`), and a success rate becomes
an :class:`~ddrepro.intervals.Estimate` over targets (:func:`asr_estimate`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..intervals import Estimate, proportion_estimate, unit_estimate


def unit_values(frame: pd.DataFrame, column: str = "success", *, by: str = "target") -> pd.Series:
    """The mean of ``column`` per unit ``by`` (a target's success fraction over its runs and
    networks), in the order the units first appear."""
    for name in (column, by):
        if name not in frame.columns:
            raise ValueError(f"unit_values: no column {name!r}; the frame has {', '.join(frame.columns)}.")
    if frame.empty:
        raise ValueError(f"unit_values: no rows to reduce to one {column!r} per {by}.")
    return frame.groupby(by, sort=False)[column].mean().astype(float)


def paired_units(a: pd.DataFrame, b: pd.DataFrame, column: str = "success", *, by: str = "target"
                 ) -> tuple[np.ndarray, np.ndarray, list]:
    """One value per unit of ``a`` and of ``b`` on the units both hold, aligned (``a``'s order):
    the input of :func:`ddrepro.intervals.paired_estimate`. Returns ``(a_values, b_values, units)``."""
    left, right = unit_values(a, column, by=by), unit_values(b, column, by=by)
    shared = [u for u in left.index if u in right.index]
    if not shared:
        raise ValueError(f"paired_units: the two frames share no {by} "
                         f"({list(left.index)} against {list(right.index)}).")
    return left.loc[shared].to_numpy(), right.loc[shared].to_numpy(), shared


def asr_estimate(frame: pd.DataFrame, *, by: str = "target", confidence: float = 0.95) -> Estimate:
    """The attack success rate (a fraction) with its interval over targets.

    Each target contributes one success fraction (its runs and networks share its poisons).
    When every target has exactly one trial, the targets are independent Bernoulli trials and
    the interval is Clopper-Pearson over them. When every target's fraction is 0 (or every one
    1), a t interval would collapse to the point; Clopper-Pearson over the targets, each counted
    as a single trial, is then the conservative interval (a cluster carries at most one trial's
    information when its trials agree completely). Otherwise: Student's t / BCa over the
    targets' fractions (:func:`ddrepro.intervals.unit_estimate`).
    """
    if "success" not in frame.columns:
        raise ValueError("asr_estimate needs a boolean 'success' column, one row per trial.")
    fractions = unit_values(frame, "success", by=by)
    trials = frame.groupby(by, sort=False).size()
    n = len(fractions)
    if (trials == 1).all():  # one trial per target: independent trials
        return proportion_estimate(int(round(float(fractions.sum()))), n, unit=f"{by}s", confidence=confidence)
    if fractions.eq(0).all() or fractions.eq(1).all():  # complete agreement within every target
        return proportion_estimate(int(fractions.iloc[0]) * n, n, unit=f"{by}s", confidence=confidence)
    return unit_estimate(fractions.to_numpy(), unit=f"{by}s", confidence=confidence)


def asr_text(estimate: Estimate) -> str:
    """``25 % (95 % CI 3-65 %, 8 targets)``: an ASR estimate in the pages' words."""
    pct = lambda x: f"{100 * x:.0f}" if np.isfinite(x) else ("-inf" if x < 0 else "inf")
    return (f"{pct(estimate.point)} % ({100 * estimate.confidence:.0f} % CI {pct(estimate.low)}-"
            f"{pct(estimate.high)} %, {estimate.n} {estimate.unit}, {estimate.method})")


def untestable_defence(undefended: pd.DataFrame) -> str | None:
    """Why "the defence stops the attack" cannot be judged on these targets, or None if it can.

    A defended success rate near 0 shows a defence only where the same attack succeeds without
    it: if the attack flips none of its targets against plain DM, zeros against the defence
    say nothing about the defence, and enough of them would pass an "equivalent to 0" criterion
    vacuously. The paired "lowers" row is the comparison; this is the guard on "stops".
    """
    if undefended.empty:
        return "the attack did not run against plain DM on these targets"
    wins = int((unit_values(undefended, "success") > 0).sum())
    if wins == 0:
        return (f"the attack flipped none of its {undefended['target'].nunique()} target(s) against "
                "plain DM here, so a defence cannot be seen to stop it")
    return None


__all__ = ["asr_estimate", "asr_text", "paired_units", "unit_values", "untestable_defence"]
