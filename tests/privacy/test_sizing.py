"""Canary sizing (ddrepro.privacy.sizing): known variances, a brute-force search, simulated spreads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from ddrepro.privacy.sizing import (auc_variance, canary_plan, log_variance_spread,
                                    shadows_for_variances)
from ddrepro.verdicts import Criterion

EQUIV = Criterion("equivalent", margin=0.01, center=0.5, unit="target models", source="test")
AT_LEAST = Criterion("at_least", threshold=0.55, unit="target models", source="test")


@pytest.mark.parametrize("n1,n2", [(10, 10), (20, 7), (500, 500)])
def test_auc_variance_at_one_half_is_the_mann_whitney_null_variance(n1, n2):
    assert auc_variance(0.5, n1, n2) == pytest.approx((n1 + n2 + 1) / (12 * n1 * n2))


def test_auc_variance_matches_a_simulation_of_separated_gaussians():
    rng = np.random.default_rng(0)
    auc = stats.norm.cdf(1 / math.sqrt(2))                   # N(1, 1) against N(0, 1)
    from sklearn.metrics import roc_auc_score
    truth = np.r_[np.ones(40), np.zeros(40)]
    draws = [roc_auc_score(truth, np.r_[rng.normal(1, 1, 40), rng.normal(0, 1, 40)]) for _ in range(3000)]
    assert auc_variance(auc, 40, 40) == pytest.approx(np.var(draws), rel=0.1)


def test_canary_plan_is_the_smallest_size_a_brute_force_search_finds():
    # two targets whose spread is exactly the canaries' sampling part at 40 + 40: nothing else
    sd = math.sqrt(auc_variance(0.52, 40, 40))
    aucs = [0.52 - sd / math.sqrt(2), 0.52 + sd / math.sqrt(2)]    # sample variance = sd^2
    rows = canary_plan(aucs, 40, 40, AT_LEAST, targets=[2, 8])
    for row in rows:
        t = row["targets"]
        factor = stats.t.ppf(0.975, t - 1) / math.sqrt(t)
        brute = next(m for m in range(2, 200_000)
                     if factor * math.sqrt(auc_variance(0.52, m // 2, m - m // 2)) <= 0.03)
        assert row["canaries per target"] == brute
        assert row["sd between targets (rest)"] == pytest.approx(0.0, abs=1e-9)
    assert rows[1]["canaries per target"] < rows[0]["canaries per target"]  # more targets, fewer each


def test_canary_plan_is_infinite_when_the_spread_between_targets_alone_forbids_it():
    aucs = [0.40, 0.60]                                 # a spread no number of canaries removes
    rows = canary_plan(aucs, 1000, 1000, EQUIV, targets=[2, 4, 10_000])
    assert math.isinf(rows[0]["canaries per target"]) and math.isinf(rows[1]["canaries per target"])
    assert math.isfinite(rows[2]["canaries per target"])
    with pytest.raises(ValueError, match="at_least"):
        canary_plan(aucs, 10, 10, Criterion("within", low=0, high=1, source="t"), targets=[2])
    with pytest.raises(ValueError, match=">= 2"):
        canary_plan([0.5], 10, 10, EQUIV, targets=[2])


def _canaries(n, k, tau2, seed=0):
    """phi of n canaries under k models: per canary a log-variance drawn with spread tau2."""
    gen = torch.Generator().manual_seed(seed)
    sd = torch.exp(0.5 * math.sqrt(tau2) * torch.randn(n, generator=gen, dtype=torch.float64))
    member = torch.rand(k, n, generator=gen) < 0.5
    return sd * torch.randn(k, n, generator=gen, dtype=torch.float64), member


def test_log_variance_spread_recovers_a_known_heterogeneity():
    phi, member = _canaries(4000, 40, tau2=0.5)
    measured, sampling, fewest = log_variance_spread(phi, member)
    assert measured - sampling == pytest.approx(0.5, abs=0.05)
    assert fewest >= 3
    tau2, k = shadows_for_variances(phi, member, share=0.25)
    assert k is not None
    assert special.polygamma(1, (k - 1) / 2) <= 0.25 * tau2 < special.polygamma(1, (k - 2) / 2)


def test_no_heterogeneity_means_a_pooled_variance_suffices():
    phi, member = _canaries(4000, 40, tau2=0.0, seed=1)
    tau2, k = shadows_for_variances(phi, member)
    assert abs(tau2) < 0.02 and (k is None or k > 500)
