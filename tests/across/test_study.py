"""The cross-chapter page's measurements on small cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddrepro.across.config import AcrossConfig
from ddrepro.across.study import (calibrated_drops, drop_counts, drop_shares, loo_aucs,
                                  paired_halves, read_scorecard)
from ddrepro.config import AugConfig, NetConfig
from ddrepro.intervals import exact_estimate
from ddrepro.privacy.lira import balanced_membership
from ddrepro.robust import MeanEstimatorConfig, calibrated_mean
from ddrepro.scorecard import Scorecard
from ddrepro.verdicts import Criterion

from helpers import toy_image_data


# -- which rows the calibrated mean drops ----------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, 5, 12])
def test_the_rows_kept_are_exactly_calibrated_mean(k):
    feats = torch.randn(40, 6, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    dropped = calibrated_drops(feats, k, iterations=10)
    assert int(dropped.sum()) == k
    torch.testing.assert_close(feats[~dropped].mean(0), calibrated_mean(feats, k, 10))


def test_planted_outliers_along_the_top_direction_are_dropped():
    gen = torch.Generator().manual_seed(0)
    feats = 0.1 * torch.randn(50, 4, generator=gen, dtype=torch.float64)
    feats[:3, 0] += 5.0  # three rows far out along one axis
    assert calibrated_drops(feats, 3, iterations=20).nonzero().flatten().tolist() == [0, 1, 2]


def test_calibrated_drops_refuses_dropping_everything():
    with pytest.raises(ValueError, match="0 <= k < n"):
        calibrated_drops(torch.randn(4, 2), 4, iterations=3)


def test_drop_shares_on_a_planted_count():
    drawn = torch.tensor([4, 4, 4, 4, 4, 4, 4, 4, 4, 4])
    dropped = torch.tensor([4, 4, 0, 0, 0, 0, 0, 0, 0, 0])  # the two flagged rows, every time
    flagged = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.bool)
    assert drop_shares(drawn, dropped, flagged) == (1.0, 0.2)
    spread = torch.ones(10, dtype=torch.long)  # dropped as often as drawn: the class's share
    assert drop_shares(drawn, spread, flagged) == pytest.approx((0.2, 0.2))


def test_drop_shares_refuses_impossible_counts():
    flagged = torch.zeros(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="nothing was dropped"):
        drop_shares(torch.ones(3), torch.zeros(3), flagged)
    with pytest.raises(ValueError, match="more often than drawn"):
        drop_shares(torch.ones(3), torch.full((3,), 2), flagged)


@pytest.mark.parametrize("aug_cfg", [None, AugConfig()], ids=["plain", "dsa"])
def test_drop_counts_draws_as_dm_and_drops_k_per_class_batch(one_thread, aug_cfg):
    real = toy_image_data(n_per_class=12, classes=3, shape=(1, 8, 8))
    spec = MeanEstimatorConfig("calibrated", rate=0.1, power_iterations=3)
    counts = drop_counts(real, net_cfg=NetConfig(width=8, depth=2), batch_real=10, spec=spec,
                         draws=4, seed=0, aug_cfg=aug_cfg)
    k = spec.drop_count(10)  # ceil(3 * 0.1 * 10) = 3
    assert int(counts["drawn"].sum()) == 4 * 3 * 10
    assert int(counts["dropped"].sum()) == 4 * 3 * k
    assert bool((counts["dropped"] <= counts["drawn"]).all())
    again = drop_counts(real, net_cfg=NetConfig(width=8, depth=2), batch_real=10, spec=spec,
                        draws=4, seed=0, aug_cfg=aug_cfg)
    assert torch.equal(again["dropped"], counts["dropped"])  # seeded: the same networks, batches


# -- LiRA, every model the target in turn ----------------------------------------------------------

def test_paired_halves_are_complementary_and_balanced_per_class():
    pool = toy_image_data(n_per_class=10, classes=3)
    member = paired_halves(pool, 6, seed=0)
    assert member.shape == (6, 30)
    assert torch.equal(member[1], ~member[0])
    assert bool((member.sum(0) == 3).all())
    for c in range(3):
        assert bool((member[:, pool.labels == c].sum(1) == 5).all())
    with pytest.raises(ValueError, match="even number"):
        paired_halves(pool, 5, seed=0)


def _noise(member: torch.Tensor, signal: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*member.shape, generator=gen, dtype=torch.float64) + signal * member.double()


def test_a_planted_signal_is_found_for_every_model():
    member = balanced_membership(300, 6, seed=0)
    aucs = loo_aucs(_noise(member, 3.0, 1), member)
    assert aucs.shape == (6,) and (aucs > 0.9).all()


def test_on_noise_pairs_remove_the_leave_one_out_bias():
    pool = toy_image_data(n_per_class=200, classes=4)
    unpaired, paired = [], []
    for rep in range(4):
        member = paired_halves(pool, 8, seed=rep)
        phi = _noise(member, 0.0, 100 + rep)
        unpaired.append(loo_aucs(phi, member).mean())
        paired.append(loo_aucs(phi, member, pairs=True).mean())
    assert np.mean(unpaired) < 0.485  # the others' IN/OUT counts give the target away
    assert abs(np.mean(paired) - 0.5) < 0.01


def test_on_noise_two_arms_on_the_same_halves_differ_by_nothing_on_average():
    member = balanced_membership(1500, 8, seed=0)
    diffs = [loo_aucs(_noise(member, 0.0, 2 * rep), member)
             - loo_aucs(_noise(member, 0.0, 2 * rep + 1), member) for rep in range(4)]
    assert abs(np.mean(diffs)) < 0.01  # the design bias cancels in the paired difference


def test_examples_restrict_the_attack():
    member = balanced_membership(200, 6, seed=0)
    phi = _noise(member, 0.0, 3)
    leaky = torch.arange(200) < 100
    phi[:, :100] += 4.0 * member[:, :100].double()  # only the first half leaks
    assert (loo_aucs(phi, member, leaky) > 0.9).all()
    assert (loo_aucs(phi, member, ~leaky) < 0.75).all()


def test_loo_aucs_refuses_too_few_models():
    member = balanced_membership(20, 2, seed=0)
    with pytest.raises(ValueError, match=">= 3 models"):
        loo_aucs(torch.zeros(2, 20), member)


# -- configuration and Chapter 5's rows --------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [({"bias_ratios": (50.0,)}, "bias_ratios"),
                                           ({"lira_models": 5}, "lira_models"),
                                           ({"eps_p": 0.5}, "eps_p"),
                                           ({"lira_ratio": 100.0}, "lira_ratio")])
def test_bad_settings_fail_at_construction(kwargs, field):
    with pytest.raises(ValueError, match=f"AcrossConfig.{field}"):
        AcrossConfig(**kwargs)


def test_read_scorecard_returns_the_saved_rows_or_none(tmp_path):
    card = Scorecard("5 Effect alignment: EAD and membership", "smoke")
    card.judge("a claim", "-", exact_estimate(3.0), Criterion("at_least", threshold=0.0, source="test"),
               key="k")
    card.save(tmp_path / "book" / "05" / "page.scorecard.json")
    rows = read_scorecard(tmp_path, "book/05/page")
    assert [(r.key, r.verdict) for r in rows] == [("k", "reproduced")]
    assert read_scorecard(tmp_path, "book/05/other") is None
    assert read_scorecard("", "book/05/page") is None


def test_drop_counts_drops_planted_outlier_images(one_thread):
    real = toy_image_data(n_per_class=20, classes=2, shape=(1, 8, 8))
    outliers = torch.zeros(len(real), dtype=torch.bool)
    outliers[real.indices_by_class()[0][:2]] = True
    outliers[real.indices_by_class()[1][:2]] = True
    gen = torch.Generator().manual_seed(1)
    common, other = torch.randn(2, 1, 8, 8, generator=gen)
    # every image a noisy copy of one pattern, two per class of another: (instance norm makes a
    # network blind to a mere rescaling, so the outliers differ in shape, not in brightness)
    real.images[:] = common + 0.05 * real.images
    real.images[outliers] = other + 0.05 * real.images[outliers]
    spec = MeanEstimatorConfig("calibrated", rate=0.05, power_iterations=10)  # k = 3 of 20
    counts = drop_counts(real, net_cfg=NetConfig(width=8, depth=2), batch_real=20, spec=spec,
                         draws=5, seed=0)
    assert bool((counts["dropped"][outliers] == counts["drawn"][outliers]).all())
    dropped_share, drawn_share = drop_shares(counts["drawn"], counts["dropped"], outliers)
    assert drawn_share == pytest.approx(0.1) and dropped_share == pytest.approx(2 / 3)
