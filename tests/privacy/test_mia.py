"""The loss-threshold attack (ddrepro.privacy.mia): known answers and the held-out protocol."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from ddrepro.privacy.mia import best_threshold, loss_threshold_attack, threshold_accuracy


def gaussian_losses(n: int, shift: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen), torch.randn(n, generator=gen) + shift


def test_advantage_matches_the_optimal_test_between_two_shifted_gaussians():
    # members' losses ~ N(0, 1), non-members' ~ N(delta, 1): the best threshold is delta / 2 and
    # its balanced accuracy Phi(delta / 2), so the advantage is 2 Phi(delta / 2) - 1.
    for delta in (0.0, 1.0, 2.0):
        members, others = gaussian_losses(20000, delta, seed=int(10 * delta))
        attack = loss_threshold_attack(members, others, seed=1)
        expected = 2 * stats.norm.cdf(delta / 2) - 1
        assert attack.advantage == pytest.approx(expected, abs=0.03)
        if delta > 0:
            assert attack.threshold == pytest.approx(delta / 2, abs=0.15)


def test_best_threshold_is_the_brute_force_optimum():
    members, others = gaussian_losses(60, 0.7, seed=3)
    members[:5] = others[:5]  # ties between the groups
    threshold, acc = best_threshold(members, others)
    candidates = [float("-inf")] + torch.cat([members, others]).tolist()
    best = max(threshold_accuracy(members, others, t) for t in candidates)
    assert acc == pytest.approx(best)
    assert threshold_accuracy(members, others, threshold) == pytest.approx(best)


def test_threshold_selection_never_looks_at_the_test_half():
    members, others = gaussian_losses(400, 1.0, seed=4)
    n = 100
    attack = loss_threshold_attack(members, others, n=n, seed=7)
    # the same shuffles the attack draws; garble everything outside its selection half
    gen = torch.Generator().manual_seed(7)
    pm, po = torch.randperm(400, generator=gen), torch.randperm(400, generator=gen)
    garbled_m, garbled_o = members.clone(), others.clone()
    garbled_m[pm[n:]] = 50.0 + torch.arange(300.0)
    garbled_o[po[n:]] = -50.0 - torch.arange(300.0)
    again = loss_threshold_attack(garbled_m, garbled_o, n=n, seed=7)
    assert again.threshold == attack.threshold
    assert again.select_accuracy == attack.select_accuracy
    assert again.accuracy == 0.0  # the test half changed, and only it decides the accuracy
    assert again.advantage == -1.0


def test_independent_losses_give_no_advantage():
    gen = torch.Generator().manual_seed(5)
    advs = [loss_threshold_attack(torch.rand(2000, generator=gen), torch.rand(2000, generator=gen),
                                  seed=s).advantage for s in range(5)]
    assert abs(sum(advs) / len(advs)) < 0.03
    assert all(math.isfinite(a) for a in advs)


@pytest.mark.parametrize("n", [0, 51, True])
def test_bad_sample_sizes_fail_before_compute(n):
    members, others = gaussian_losses(100, 1.0)
    with pytest.raises(ValueError, match="n ="):
        loss_threshold_attack(members, others, n=n)


def test_bad_losses_fail():
    with pytest.raises(ValueError, match="non-empty"):
        loss_threshold_attack(torch.tensor([]), torch.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        loss_threshold_attack(torch.tensor([1.0, float("nan")]), torch.ones(4))


def test_pooled_interval_is_clopper_pearson_on_all_held_out_decisions():
    from ddrepro.privacy.mia import ThresholdAttack, pooled_advantage_interval
    from ddrepro.intervals import clopper_pearson

    # two attacks: 15 of 20 and 28 of 40 test decisions correct
    attacks = [ThresholdAttack(0.0, 0.8, 0.75, 0.5, 10), ThresholdAttack(0.0, 0.6, 0.7, 0.4, 20)]
    low, high = pooled_advantage_interval(attacks)
    cp_low, cp_high = clopper_pearson(43, 60)
    assert (low, high) == pytest.approx((2 * cp_low - 1, 2 * cp_high - 1))
    assert low < 2 * 43 / 60 - 1 < high
    # more decisions at the same accuracy give a narrower interval
    wide = pooled_advantage_interval(attacks[:1])
    assert wide[1] - wide[0] > high - low
    # null attacks: the interval covers 0 about 95 % of the time
    gen = torch.Generator().manual_seed(11)
    covered = [pooled_advantage_interval([loss_threshold_attack(torch.rand(200, generator=gen),
                                                                torch.rand(200, generator=gen), seed=s)])
               for s in range(200)]
    assert sum(lo <= 0 <= hi for lo, hi in covered) >= 180
    with pytest.raises(ValueError, match="non-empty"):
        pooled_advantage_interval([])
