"""LiRA on DP-SGD (ddrepro.privacy.dp_lira): independent halves make leaving one model out honest."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ddrepro.privacy.dp_lira import dp_sgd_shadow, independent_halves, loo_per_target
from ddrepro.privacy.lira import balanced_membership

from helpers import toy_image_data


pytestmark = pytest.mark.usefixtures("private_cache")


def _phi(member: torch.Tensor, signal: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(500 + seed)
    k, n = member.shape
    mu = 2 * torch.randn(n, generator=gen, dtype=torch.float64)
    return mu + torch.randn(k, n, generator=gen, dtype=torch.float64) + signal * member.double()


def test_leave_one_out_on_independent_halves_is_unbiased_and_on_balanced_ones_is_not():
    n, k = 3000, 6
    independent = torch.rand(k, n, generator=torch.Generator().manual_seed(1)) < 0.5
    aucs, tprs, counts = loo_per_target(_phi(independent, 0.0), independent, fpr=0.01)
    assert aucs.shape == tprs.shape == counts.shape == (k,)
    assert abs(aucs.mean() - 0.5) < 0.012
    # the design the chapter's DM shadows use: leaving a balanced model out leaks its membership
    balanced = balanced_membership(n, k, seed=1)
    biased, _, _ = loo_per_target(_phi(balanced, 0.0), balanced, fpr=0.01)
    assert biased.mean() < 0.49


def test_leave_one_out_finds_a_known_shift():
    # 16 models, IN shifted by 1.5 sd: per-example means from ~7 models each side, pooled variance;
    # the attack's AUC approaches Phi(1.5 / sqrt 2) = 0.856 from below (noisy fits)
    member = torch.rand(16, 2000, generator=torch.Generator().manual_seed(2)) < 0.5
    aucs, tprs, counts = loo_per_target(_phi(member, 1.5), member, fpr=0.01)
    assert 0.75 < aucs.mean() <= stats.norm.cdf(1.5 / math.sqrt(2)) + 0.01
    assert (tprs > 0.01).all() and (counts >= 1990).all()  # an example IN (OUT) in all 15 others is rare
    with pytest.raises(ValueError, match="bool"):
        loo_per_target(_phi(member, 0.0), member.int(), fpr=0.01)


def test_examples_without_enough_in_or_out_among_the_others_are_left_out_per_target():
    t, f = True, False
    member = torch.tensor([[t, f, t, f, t, t], [f, t, t, f, f, t], [t, t, f, t, f, t]]).repeat(1, 50)
    _, _, counts = loo_per_target(_phi(member, 0.5), member, fpr=0.1)
    # with 2 others, a column counts when they disagree: target 0 keeps columns 0, 2, 3, target 1
    # columns 1-4, target 2 columns 0, 1, 4; column 5 (IN everywhere) never
    assert counts.tolist() == [150, 200, 150]


def test_independent_halves_hold_half_of_every_class_drawn_apart():
    pool = toy_image_data(n_per_class=10, classes=3, shape=(1, 6, 6), seed=0)
    masks = independent_halves(pool, 5, seed=0)
    assert masks.shape == (5, 30)
    for c in range(3):
        assert (masks[:, pool.labels == c].sum(1) == 5).all()
    assert len({tuple(m.tolist()) for m in masks}) == 5
    assert not (masks.sum(0) == masks.sum(0)[0]).all()   # not balanced: counts vary by example
    with pytest.raises(ValueError, match=">= 3"):
        independent_halves(pool, 2, seed=0)


def test_dp_sgd_shadow_runs_and_keeps_its_budget():
    from ddrepro.config import NetConfig

    pool = toy_image_data(n_per_class=8, classes=2, shape=(1, 8, 8), seed=1)
    subset = independent_halves(pool, 3, seed=1)[0]
    out = dp_sgd_shadow(pool=pool, subset=subset, val=pool, test=pool, epsilon=4.0, delta=1e-5,
                        epochs=1, expected_batch=4, clip=1.0, lr=0.1, momentum=0.0,
                        net_cfg=NetConfig(width=8, depth=1), seed=0, probe_flip=True, device="cpu",
                        quiet=True)
    assert out["phi"].shape == (16, 2) and torch.isfinite(out["phi"]).all()
    assert 0.0 <= out["val_acc"] <= 1.0 and out["epsilon_spent"] <= 4.0 + 1e-6
    with pytest.raises(ValueError, match="epsilon"):
        dp_sgd_shadow(pool=pool, subset=subset, val=pool, test=pool, epsilon=0.0, delta=1e-5, epochs=1,
                      expected_batch=4, clip=1.0, lr=0.1, momentum=0.0,
                      net_cfg=NetConfig(width=8, depth=1), seed=0, probe_flip=True)
