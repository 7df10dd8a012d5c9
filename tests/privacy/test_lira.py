"""LiRA (ddrepro.privacy.lira): known answers on Gaussian toys, a leaky toy, library agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from ddrepro.privacy.lira import (attack_report, balanced_membership, empirical_epsilon,
                                  leave_one_out_scores, lira_scores)


def gaussian_shadows(n: int, k: int, shift: float, seed: int = 0, sd: float = 1.0):
    """phi of example j under model m: mu_j + shift * IN + N(0, sd^2); model 0 is the target,
    whose half is drawn independently of the shadows' balanced split."""
    gen = torch.Generator().manual_seed(10_000 + seed)  # not the membership draw's stream
    target = torch.rand(1, n, generator=gen) < 0.5
    member = torch.cat([target, balanced_membership(n, k, seed=seed)])
    mu = 3 * torch.randn(n, generator=gen)
    phi = mu + shift * member + sd * torch.randn(k + 1, n, generator=gen)
    return phi, member


def test_balanced_membership_puts_each_example_in_half_the_models():
    member = balanced_membership(500, 8, seed=1)
    assert member.shape == (8, 500) and member.dtype == torch.bool
    assert (member.sum(0) == 4).all()
    assert 200 < int(member[0].sum()) < 300
    assert torch.equal(member, balanced_membership(500, 8, seed=1))


@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0])
def test_online_auc_matches_the_analytic_value(shift):
    # IN and OUT differ by a known shift with equal variances: the likelihood ratio is monotone
    # in phi - mu_j, so the attack's AUC is that of N(shift, 1) vs N(0, 1): Phi(shift / sqrt 2).
    phi, member = gaussian_shadows(4000, 64, shift, seed=2)
    scores = lira_scores(phi[0], phi[1:], member[1:], online=True)
    auc = roc_auc_score(member[0].numpy(), scores.numpy())
    assert auc == pytest.approx(stats.norm.cdf(shift / np.sqrt(2)), abs=0.025)
    offline = lira_scores(phi[0], phi[1:], member[1:], online=False)
    assert roc_auc_score(member[0].numpy(), offline.numpy()) == pytest.approx(auc, abs=0.03)


def test_without_per_example_fits_the_attack_is_much_weaker():
    # the per-example means are what make LiRA strong: with mu_j spread 3x the shift, a global
    # threshold on phi alone barely separates members, LiRA does.
    phi, member = gaussian_shadows(4000, 32, 1.0, seed=3)
    raw = roc_auc_score(member[0].numpy(), phi[0].numpy())
    lira = roc_auc_score(member[0].numpy(), lira_scores(phi[0], phi[1:], member[1:]).numpy())
    assert lira > raw + 0.15


def test_independent_scores_give_auc_near_one_half():
    phi, member = gaussian_shadows(4000, 16, 0.0, seed=4)
    for global_variance in (False, True):
        scores = lira_scores(phi[0], phi[1:], member[1:], global_variance=global_variance)
        report = attack_report(scores, member[0], n_bootstrap=100)
        assert report.auc_ci[0] < 0.5 < report.auc_ci[1]
        assert abs(report.auc - 0.5) < 0.03


def test_scores_agree_with_a_direct_scipy_computation():
    phi, member = gaussian_shadows(30, 10, 1.5, seed=5)
    flip = phi + 0.1 * torch.randn(phi.shape, generator=torch.Generator().manual_seed(0))
    two = torch.stack([phi, flip], -1)
    ours = lira_scores(two[0], two[1:], member[1:]).numpy()
    offline = lira_scores(two[0], two[1:], member[1:], online=False).numpy()
    x, shadows, inside = two[0].double().numpy(), two[1:].double().numpy(), member[1:].numpy()
    for j in range(30):
        per_query_on, per_query_off = [], []
        for q in range(2):
            a, b = shadows[inside[:, j], j, q], shadows[~inside[:, j], j, q]
            per_query_on.append(stats.norm.logpdf(x[j, q], a.mean(), a.std(ddof=1))
                                - stats.norm.logpdf(x[j, q], b.mean(), b.std(ddof=1)))
            per_query_off.append(stats.norm.logcdf(x[j, q], b.mean(), b.std(ddof=1)))
        assert ours[j] == pytest.approx(np.mean(per_query_on))
        assert offline[j] == pytest.approx(np.mean(per_query_off))


def test_leaky_toy_models_are_caught(tmp_path, monkeypatch):
    # Memorising models: small MLPs fit random labels of a random pool, so a member's phi is
    # high only in the models that trained on it. LiRA (leave-one-out over 9 models) must see it.
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    torch.set_num_threads(1)
    from ddrepro.config import AugConfig, EvalConfig, NetConfig
    from ddrepro.privacy.membership import train_on_halves

    from helpers import toy_image_data

    pool = toy_image_data(n_per_class=20, classes=2, shape=(1, 4, 4))
    pool = type(pool)(pool.images, torch.randint(0, 2, (40,), generator=torch.Generator().manual_seed(1)),
                      "toy", "train", (0.0,), (1.0,), ("a", "b"), flip_ok=False)
    member = balanced_membership(len(pool), 10, seed=0)
    out = train_on_halves(pool, member, net_cfg=NetConfig(name="mlp", width=64, depth=2),
                          eval_cfg=EvalConfig(epochs=150, batch_size=32, lr=0.05, n_models=10,
                                              augment="none"),
                          aug_cfg=AugConfig(), seed=0, probe_flip=False, device="cpu", quiet=True)
    scores, truth = leave_one_out_scores(out["phi"], member, targets=range(10))
    report = attack_report(scores, truth, n_bootstrap=100)
    assert report.auc > 0.75 and report.auc_ci[0] > 0.5


def test_empirical_epsilon_and_its_lower_bound():
    point, low = empirical_epsilon(50, 1000, 5, 1000)
    assert float(point) == pytest.approx(np.log(10))
    assert 0 < float(low) < float(point)
    point, low = empirical_epsilon(5, 1000, 5, 1000)
    assert float(point) == pytest.approx(0.0) and float(low) == 0.0


def test_report_reads_tpr_at_fixed_fpr_off_the_roc():
    gen = torch.Generator().manual_seed(6)
    labels = torch.arange(2000) < 1000
    scores = torch.randn(2000, generator=gen) + 2.0 * labels
    report = attack_report(scores, labels, fprs=(0.01, 0.1), n_bootstrap=50)
    assert report.auc == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()))
    for at, point in report.at_fpr.items():
        assert point["fpr"] <= at
        truth = float((scores[labels] > np.quantile(scores[~labels].numpy(), 1 - at)).float().mean())
        assert point["tpr"] == pytest.approx(truth, abs=0.03)
    assert report.at_fpr[0.01]["tpr"] < report.at_fpr[0.1]["tpr"]
    assert report.best_epsilon["epsilon_low"] > 1.0


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.1, 2])
def test_fpr_outside_the_open_unit_interval_fails(fpr):
    with pytest.raises(ValueError, match="between 0 and 1"):
        attack_report(torch.randn(10), torch.arange(10) < 5, fprs=(fpr,))


def test_too_few_shadows_fail_before_compute():
    phi, member = gaussian_shadows(10, 2, 1.0)
    with pytest.raises(ValueError, match=">= 2 shadows"):
        lira_scores(phi[0], phi[1:2], member[1:2])
    with pytest.raises(ValueError, match=">= 2 models"):
        balanced_membership(10, 1)
    phi, member = gaussian_shadows(10, 2, 1.0)  # shadows: one IN and one OUT per example
    with pytest.raises(ValueError, match="global_variance"):
        lira_scores(phi[0], phi[1:], member[1:])
    lira_scores(phi[0], phi[1:], member[1:], global_variance=True)  # enough for a pooled variance
    with pytest.raises(ValueError, match="queries"):
        lira_scores(torch.stack([phi[0], phi[0]], -1), phi[1:], member[1:], global_variance=True)
