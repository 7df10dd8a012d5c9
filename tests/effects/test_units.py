"""Chapter 5's per-unit values: one accuracy per distillation seed, Spearman bootstrapped over
independent (G, A) pairs, one growth exponent per pair."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ddrepro.effects.units import loglog_slopes, rank_correlation, seed_values, trained_horizon


def frame():
    rows = [{"dataset": "mnist", "method": m, "ipc": 1, "seed": s, "accuracy": acc}
            for m, accs in (("ead", (50.0, 60.0, 55.0)), ("random", (40.0, 45.0, 41.0)))
            for s, acc in zip((0, 1, 2), accs)]
    return pd.DataFrame(rows)


def test_seed_values_follow_the_order_of_the_seeds_and_the_filter():
    values = seed_values(frame(), "accuracy", [2, 0], method="ead", ipc=1)
    assert values.tolist() == [55.0, 50.0]
    assert seed_values(frame(), "accuracy", [0, 1, 2], method="random").tolist() == [40.0, 45.0, 41.0]


def test_seed_values_refuse_a_missing_or_a_duplicated_seed():
    with pytest.raises(ValueError, match="0 rows for seed 7"):
        seed_values(frame(), "accuracy", [0, 7], method="ead")
    with pytest.raises(ValueError, match="2 rows for seed 0"):
        seed_values(frame(), "accuracy", [0], ipc=1)   # two methods match: not one value per seed
    with pytest.raises(ValueError, match="no column"):
        seed_values(frame(), "accuracy", [0], net="mlp")


def test_rank_correlation_covers_the_population_rho_over_independent_pairs():
    # bivariate normal with correlation 0.6: Spearman's population value is 6/pi asin(0.3)
    truth = 6 / math.pi * math.asin(0.3)
    rng = np.random.default_rng(0)
    hits, trials = 0, 200
    for t in range(trials):
        z = rng.standard_normal((80, 2))
        x, y = z[:, 0], 0.6 * z[:, 0] + 0.8 * z[:, 1]
        est = rank_correlation(x, y, n_resamples=400, seed=t)
        assert est.low <= est.point <= est.high and est.n == 80 and est.unit == "pairs"
        assert est.point == pytest.approx(stats.spearmanr(x, y).statistic)
        hits += est.low <= truth <= est.high
    assert hits / trials >= 0.90   # nominal 0.95 (measured 0.937 over 300 trials); 200 trials: sd 0.016


def test_rank_correlation_without_enough_pairs_gives_no_interval():
    est = rank_correlation([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert math.isinf(est.low) and math.isinf(est.high) and est.n == 5
    with pytest.raises(ValueError, match=">= 3"):
        rank_correlation([1, 2], [1, 2])
    with pytest.raises(ValueError, match="non-constant"):
        rank_correlation([1.0] * 30, list(range(30)))


def test_rank_correlation_at_another_confidence_is_narrower():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(60)
    y = x + rng.standard_normal(60)
    wide, narrow = rank_correlation(x, y, confidence=0.95), rank_correlation(x, y, confidence=0.90)
    assert narrow.confidence == 0.90 and narrow.high - narrow.low < wide.high - wide.low


def test_loglog_slopes_recover_each_pairs_exponent():
    t = np.array([1, 2, 5, 10, 20])
    errors = np.stack([0.1 * t ** 2, 3e-3 * t ** 0.5, -2.0 * t], axis=1)   # sign is ignored
    assert loglog_slopes(t, errors) == pytest.approx([2.0, 0.5, 1.0])
    zero = np.stack([np.zeros(5), t ** 1.0], axis=1)                      # a zero error: the floor
    assert loglog_slopes(t, zero) == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="horizons, pairs"):
        loglog_slopes(t, errors[:3])
    with pytest.raises(ValueError, match="distinct positive"):
        loglog_slopes([5, 5], np.ones((2, 3)))


def test_rank_correlation_of_a_perfect_ranking_falls_back_to_the_percentile_interval():
    x = np.arange(30.0)
    est = rank_correlation(x, x ** 3)
    assert est.point == 1.0 and est.low == est.high == 1.0 and est.method.startswith("percentile")


def test_trained_horizon_reads_accuracy_then_plateau_then_the_longest():
    hs = (1, 10, 100, 200)
    assert trained_horizon(hs, [0.2, 0.6, 0.93, 0.95], [2.0, 1.0, 0.4, 0.3])[0] == 100
    h, why = trained_horizon(hs, [0.2, 0.5, 0.6, 0.7], [2.0, 1.0, 0.98, 0.5])
    assert h == 100 and "plateau" in why
    assert trained_horizon(hs, [0.2, 0.5, 0.6, 0.7], [2.0, 1.0, 0.5, 0.2])[0] == 200
    with pytest.raises(ValueError, match="one accuracy"):
        trained_horizon(hs, [0.1], [1.0] * 4)
