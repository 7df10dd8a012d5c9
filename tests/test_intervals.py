"""The one binomial interval the chapters use: exact Clopper-Pearson, as SciPy computes it."""

import numpy as np
import pytest
from scipy import stats

from ddrepro.intervals import clopper_pearson


def test_clopper_pearson_equals_scipys_binomtest():
    for k, n in [(0, 10), (3, 10), (10, 10), (7, 1000)]:
        low, high = clopper_pearson(k, n, 0.95)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert float(low) == pytest.approx(ci.low, abs=1e-9)
        assert float(high) == pytest.approx(ci.high, abs=1e-9)


def test_clopper_pearson_matches_known_intervals():
    low, high = clopper_pearson(0, 8)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 8), rel=1e-6)
    low, high = clopper_pearson(4, 8)
    assert low == pytest.approx(0.1570, abs=1e-3) and high == pytest.approx(0.8430, abs=1e-3)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)


def test_clopper_pearson_is_vectorised_and_checks_confidence():
    low, high = clopper_pearson(np.array([0, 4]), np.array([8, 8]))
    assert low.shape == high.shape == (2,)
    assert (low[1], high[1]) == clopper_pearson(4, 8)
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson(1, 2, confidence=1.0)


# -- intervals over independent units: which method is used when, and why (coverage) -----------

from ddrepro.intervals import (BOOTSTRAP_MIN_UNITS, cluster_estimate, paired_estimate,  # noqa: E402
                               unit_estimate)


def _coverage(make_interval, sampler, true_mean, reps, seed=0):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        low, high = make_interval(sampler(rng))
        hits += low <= true_mean <= high
    return hits / reps


def test_few_units_use_t_because_a_bootstrap_over_them_under_covers():
    """Five units from a skewed (exponential) law: the percentile bootstrap covers clearly less
    than 95 %, Student's t much closer to it; so below BOOTSTRAP_MIN_UNITS units we use t."""
    n, reps = 5, 400
    sampler = lambda rng: rng.exponential(1.0, size=n)

    def t_interval(x):
        return stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))

    def boot_interval(x):
        ci = stats.bootstrap((x,), np.mean, n_resamples=400, method="percentile",
                             random_state=np.random.default_rng(1)).confidence_interval
        return ci.low, ci.high

    t_cov = _coverage(t_interval, sampler, 1.0, reps)
    boot_cov = _coverage(boot_interval, sampler, 1.0, reps)
    assert boot_cov < 0.86 and t_cov > boot_cov + 0.03
    assert unit_estimate(sampler(np.random.default_rng(3)), unit="seeds").method == "t"


def test_many_units_use_a_bca_bootstrap_that_covers():
    n, reps = 40, 120
    assert n >= BOOTSTRAP_MIN_UNITS
    sampler = lambda rng: rng.exponential(1.0, size=n)

    def bca(x):
        est = unit_estimate(x, unit="targets")
        assert est.method == "BCa bootstrap"
        return est.low, est.high

    assert _coverage(bca, sampler, 1.0, reps) >= 0.88


def test_clustered_values_are_one_unit_per_cluster():
    # 3 targets x 4 runs: the runs of a target share its poisons, so n is 3, not 12
    values = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0]
    clusters = [0] * 4 + [1] * 4 + [2] * 4
    est = cluster_estimate(values, clusters, unit="targets")
    assert est.n == 3 and est.point == pytest.approx(0.5) and est.method == "t"
    assert est.values == (1.0, 0.0, 0.5)


def test_paired_differences_and_degenerate_inputs():
    est = paired_estimate([3.0, 4.0, 6.0], [1.0, 1.0, 2.0], unit="seeds")
    assert est.point == pytest.approx(3.0) and est.n == 3
    few_equal = unit_estimate([2.0, 2.0], unit="seeds")  # two networks both at chance: no certainty
    assert few_equal.low == -np.inf and few_equal.high == np.inf and few_equal.point == 2.0
    assert unit_estimate([2.0] * BOOTSTRAP_MIN_UNITS, unit="seeds").low == 2.0
    # differences that agree to float precision are no spread either (not a zero-width t interval)
    assert unit_estimate([0.1 + 0.2, 0.3], unit="seeds").high == np.inf
    lone = unit_estimate([5.0], unit="seeds")
    assert lone.low == -np.inf and lone.high == np.inf
    with pytest.raises(ValueError, match="one value per"):
        paired_estimate([1.0, 2.0], [1.0], unit="seeds")
    with pytest.raises(ValueError, match="finite values"):
        unit_estimate([], unit="seeds")
