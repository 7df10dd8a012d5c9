"""Robust class-mean estimators (ddrepro/robust.py) and RDM-DC's registration (ddrepro/condense/rdm.py)."""

from __future__ import annotations

import math

import pytest
import torch

from ddrepro.condense import CONDENSERS, condense
from ddrepro.config import DMConfig, NetConfig
from ddrepro.condense.dm import real_class_means
from ddrepro.robust import (
    MeanEstimatorConfig, calibrated_mean, class_means, power_method, robust_mean,
)
from helpers import toy_image_data

ROBUST = ("calibrated", "median", "trimmed", "truncated")
TINY_NET = NetConfig(width=8, depth=2)


def planted(n: int = 1000, d: int = 32, eps: float = 0.1, alpha: float = 10.0, seed: int = 0):
    """Clean N(0, I) rows plus a fraction ``eps`` from N(mu, I), ``||mu||^2 = alpha / eps`` (sigma = 1).

    Lemma 4.1's separation ``eps ||mu_D - mu_B||^2 / sigma^2 = alpha`` with alpha > 2665/576 ~ 4.6.
    """
    gen = torch.Generator().manual_seed(seed)
    n_bad = round(eps * n)
    mu = torch.zeros(d)
    mu[0] = math.sqrt(alpha / eps)
    clean = torch.randn(n - n_bad, d, generator=gen)
    bad = mu + torch.randn(n_bad, d, generator=gen)
    return torch.cat([clean, bad]), clean


def test_power_method_finds_the_top_eigenvector_of_the_covariance():
    gen = torch.Generator().manual_seed(1)
    scales = torch.linspace(1.0, 3.0, 16)  # spectral gap 3 : 2.87
    feats = torch.randn(400, 16, generator=gen, dtype=torch.float64) * scales
    centred = feats - feats.mean(0)
    eigvals, eigvecs = torch.linalg.eigh(centred.T @ centred / (len(feats) - 1))
    v = power_method(centred, iterations=200)
    assert abs(float(v @ eigvecs[:, -1])) > 0.999
    assert math.isclose(float(v.norm()), 1.0, rel_tol=1e-9)
    # A few iterations are enough with a clear gap (the planted cluster's regime).
    feats, _ = planted(d=16)
    centred = feats - feats.mean(0)
    top = torch.linalg.eigh(centred.T @ centred)[1][:, -1]
    assert abs(float(power_method(centred, iterations=5) @ top)) > 0.99


@pytest.mark.parametrize("name", ("mean", "calibrated", "trimmed", "truncated"))
def test_every_estimator_with_k_zero_is_the_plain_mean(name):
    feats = torch.randn(37, 5, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(robust_mean(feats, name, 0), feats.mean(0), atol=1e-6)


def test_median_is_the_coordinatewise_median():
    feats = torch.randn(9, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(robust_mean(feats, "median", 0), feats.median(0).values)
    even = torch.tensor([[0.0], [1.0], [5.0], [10.0]])
    assert robust_mean(even, "median", 0).item() == 3.0


def test_trimmed_and_truncated_drop_what_they_say():
    feats = torch.tensor([[0.0, 100.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [-50.0, 4.0]])
    # trimmed, k = 2: per coordinate drop the largest and the smallest value
    assert torch.allclose(robust_mean(feats, "trimmed", 2), torch.tensor([1.0, 3.0]))
    # truncated, k = 2: drop the two rows farthest from the mean (the first and the last)
    assert torch.allclose(robust_mean(feats, "truncated", 2), torch.tensor([2.0, 2.0]))


@pytest.mark.parametrize("name", ROBUST)
def test_vmapped_class_means_equal_one_class_at_a_time(name):
    feats = torch.randn(3, 40, 6, generator=torch.Generator().manual_seed(4))
    spec = MeanEstimatorConfig(name, rate=0.05, power_iterations=4)
    k = spec.drop_count(40)
    assert k == 6
    batched = class_means(feats, spec)
    for c in range(3):
        assert torch.allclose(batched[c], robust_mean(feats[c], name, k, 4), atol=1e-5)
    assert torch.equal(real_class_means(feats, None, spec), batched)


def test_calibration_removes_most_of_a_planted_far_cluster():
    """Regime: eps = 0.05, eps ||mu_D - mu_B||^2 / sigma^2 = 30 (Lemma 4.1 asks > 2665/576 ~ 4.6),
    d = 32, N = 4000, k = ceil(3 eps N) = 600.

    The plain mean is off by about eps ||mu|| = 1.22; calibration removes at least 75 % of that
    (measured over seeds 0-4: 83 %). What is left is not the poisons (all of them score far above
    the clean rows) but the bias of trimming 2 eps of the clean rows around a centre the poisons
    had shifted: Theta(eps^2 ||mu||), the lemma's second-order term.
    """
    feats, clean = planted(n=4000, d=32, eps=0.05, alpha=30.0)
    reference = clean.mean(0)
    plain = (feats.mean(0) - reference).norm()
    calibrated = (calibrated_mean(feats, k=600, iterations=10) - reference).norm()
    assert 1.0 < plain < 1.4
    assert calibrated < 0.25 * plain
    # every poison is among the dropped rows
    centred = feats - feats.mean(0)
    scores = (centred @ power_method(centred, 10)).abs()
    dropped = scores.argsort(descending=True)[:600]
    assert (dropped >= len(clean)).sum() == len(feats) - len(clean)


def test_bad_input_is_a_clear_error():
    feats = torch.randn(10, 3)
    with pytest.raises(ValueError, match="k = 10"):
        robust_mean(feats, "calibrated", 10)
    with pytest.raises(ValueError, match="rate"):
        MeanEstimatorConfig("calibrated", rate=0.5)
    with pytest.raises(ValueError, match="rate"):
        MeanEstimatorConfig("calibrated", rate=0.0)
    with pytest.raises(ValueError, match="rate"):
        MeanEstimatorConfig("mean", rate=0.1)
    with pytest.raises(ValueError, match="power_iterations"):
        MeanEstimatorConfig("calibrated", rate=0.1, power_iterations=0)
    with pytest.raises(ValueError, match="nothing would be left"):
        MeanEstimatorConfig("truncated", rate=0.34).drop_count(10)  # ceil(10.2) = 11 >= 10
    with pytest.raises(ValueError, match="needs a poisoning rate"):
        DMConfig(mean_estimator="calibrated")
    with pytest.raises(ValueError, match="per-sample weights"):
        class_means(torch.randn(2, 10, 3), MeanEstimatorConfig("median", rate=0.1), torch.ones(2, 10))


def test_rdm_is_dm_with_the_calibrated_mean_and_its_config_enters_the_key():
    real = toy_image_data(n_per_class=20)
    kw = dict(net_cfg=TINY_NET, cache=False, quiet=True, device="cpu")
    cfg = DMConfig(steps=2, batch_real=10, dsa=False,
                   mean_estimator=MeanEstimatorConfig("calibrated", rate=0.1, power_iterations=3))
    rdm = condense("rdm", real, 2, config=cfg, **kw)
    dm = condense("dm", real, 2, config=cfg, init="noise", **kw)
    assert torch.equal(rdm.images, dm.images)  # the same loop, not a copy
    assert rdm.meta["init"] == "noise"
    assert rdm.meta["config"]["mean_estimator"] == {"name": "calibrated", "rate": 0.1, "power_iterations": 3}
    plain = condense("dm", real, 2, config=DMConfig(steps=2, batch_real=10, dsa=False), init="noise", **kw)
    assert not torch.equal(plain.images, dm.images)
    assert CONDENSERS.get("rdm").default_config.mean_estimator.name == "calibrated"
    with pytest.raises(ValueError, match="calibrated mean"):
        condense("rdm", real, 2, config=DMConfig(steps=2, batch_real=10), **kw)
    with pytest.raises(ValueError, match="per-sample weights"):
        condense("rdm", real.with_weights(torch.ones(len(real))), 2, config=cfg, **kw)
    with pytest.raises(ValueError, match="per-sample weights"):
        condense("dm", real.with_weights(torch.ones(len(real))), 2, config=cfg, **kw)
    with pytest.raises(ValueError, match="nothing would be left"):
        condense("rdm", real, 2, config=DMConfig(
            steps=2, batch_real=3, mean_estimator=MeanEstimatorConfig("calibrated", rate=0.4)), **kw)
