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
