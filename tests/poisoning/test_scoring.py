"""Chapter 3's scorecard inputs (ddrepro/poisoning/scoring.py): one value per target, not per trial."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ddrepro.intervals import clopper_pearson
from ddrepro.poisoning.scoring import asr_estimate, asr_text, paired_units, unit_values, untestable_defence


def trials(rows):
    return pd.DataFrame(rows, columns=["target", "run", "success", "adv prob"])


def test_a_targets_runs_become_one_value():
    frame = trials([(7, 0, True, 0.9), (7, 1, True, 0.7), (7, 2, False, 0.2), (3, 0, False, 0.1)])
    values = unit_values(frame)
    assert list(values.index) == [7, 3]  # order of first appearance
    assert values.to_numpy() == pytest.approx([2 / 3, 0.0])
    assert unit_values(frame, "adv prob").to_numpy() == pytest.approx([0.6, 0.1])
    with pytest.raises(ValueError, match="no column 'accuracy'"):
        unit_values(frame, "accuracy")
    with pytest.raises(ValueError, match="no rows"):
        unit_values(frame.iloc[:0])


def test_one_trial_per_target_is_clopper_pearson_over_targets():
    frame = trials([(t, 0, t < 2, 0.5) for t in range(8)])
    est = asr_estimate(frame)
    low, high = clopper_pearson(2, 8)
    assert (est.point, est.low, est.high, est.n, est.unit) == (0.25, low, high, 8, "targets")
    assert "25 %" in asr_text(est) and "8 targets" in asr_text(est)


def test_runs_sharing_poisons_are_not_counted_as_independent_trials():
    # 4 targets x 5 runs, 2 targets always flipped: 10 of 20 trials. Clopper-Pearson over the 20
    # trials would be too narrow; the interval must be over the 4 targets' fractions.
    frame = trials([(t, r, t < 2, 0.5) for t in range(4) for r in range(5)])
    est = asr_estimate(frame)
    assert est.n == 4 and est.method == "t"
    naive_low, naive_high = clopper_pearson(10, 20)
    assert est.low < naive_low and est.high > naive_high


def test_no_success_anywhere_keeps_an_interval_over_the_targets():
    # a t interval over identical fractions collapses to the point; 0 successes on 8 targets
    # must still leave the Clopper-Pearson upper bound of 8 trials, not of 40
    frame = trials([(t, r, False, 0.1) for t in range(8) for r in range(5)])
    est = asr_estimate(frame)
    assert est.point == 0 and est.n == 8
    assert est.high == pytest.approx(clopper_pearson(0, 8)[1])
    assert asr_estimate(frame, confidence=0.9).high == pytest.approx(1 - 0.05 ** (1 / 8))
    flipped = asr_estimate(trials([(t, r, True, 0.9) for t in range(3) for r in range(2)]))
    assert flipped.point == 1 and flipped.low == pytest.approx(clopper_pearson(3, 3)[0])


def test_one_target_has_no_finite_interval_from_its_runs():
    est = asr_estimate(trials([(0, r, r == 0, 0.5) for r in range(4)]))
    assert est.n == 1 and math.isinf(est.high)


def test_pairs_align_on_the_targets_both_hold():
    a = trials([(0, 0, True, 0.9), (1, 0, True, 0.8), (2, 0, False, 0.3)])
    b = trials([(2, 0, False, 0.1), (0, 0, False, 0.2)])
    left, right, shared = paired_units(a, b)
    assert shared == [0, 2]
    assert list(left) == [1.0, 0.0] and list(right) == [0.0, 0.0]
    lp, rp, _ = paired_units(a, b, "adv prob")
    assert list(lp) == pytest.approx([0.9, 0.3]) and list(rp) == pytest.approx([0.2, 0.1])
    with pytest.raises(ValueError, match="share no target"):
        paired_units(a.iloc[1:2], b)


def test_stops_is_judged_only_where_the_attack_works_without_the_defence():
    never = trials([(t, r, False, 0.1) for t in range(14) for r in range(2)])
    reason = untestable_defence(never)
    assert reason and "none of its 14 target(s)" in reason
    # 14 zeros would otherwise pass "equivalent to 0 within 0.2" (90 % Clopper-Pearson upper bound)
    assert asr_estimate(never, confidence=0.90).high < 0.2
    once = trials([(0, 0, True, 0.9), (0, 1, False, 0.2), (1, 0, False, 0.1)])
    assert untestable_defence(once) is None
    assert "did not run" in untestable_defence(never.iloc[:0])
