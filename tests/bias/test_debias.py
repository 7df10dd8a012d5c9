"""Inverse-density reweighting: the conflicting minority gets the larger weights, DM honours them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddrepro.data import ImageData
from ddrepro.bias.biased import BiasedConfig, cmnist_dd
from ddrepro.bias.debias import (DebiasConfig, debias_weights, debiased, effective_share,
                                 foreground_colour, inverse_density_weights, select_bandwidth)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    return tmp_path


def toy_features(n_major=95, n_minor=5, seed=0):
    """Two classes; in each, a dense majority mode and a sparse minority mode far from it."""
    rng = np.random.default_rng(seed)
    feats, labels, minority = [], [], []
    for c in range(2):
        feats += [rng.normal(c, 0.01, size=(n_major, 2)), rng.normal(c + 5, 0.01, size=(n_minor, 2))]
        labels += [c] * (n_major + n_minor)
        minority += [False] * n_major + [True] * n_minor
    return (torch.tensor(np.concatenate(feats), dtype=torch.float32), torch.tensor(labels),
            torch.tensor(minority))


def test_minority_gets_larger_weights_and_modes_balance():
    feats, labels, minority = toy_features()
    w = inverse_density_weights(feats, labels, 2, DebiasConfig(bandwidth=0.05))
    assert w[minority].min() > 5 * w[~minority].max()
    for c in range(2):
        rows = labels == c
        assert w[rows].mean() == pytest.approx(1.0, rel=1e-5)
        # power 1: the two modes hold about the same total weight
        assert effective_share(w[rows], minority[rows].long())[1] == pytest.approx(0.5, abs=0.05)


def test_power_tempers_and_cap_limits():
    feats, labels, minority = toy_features()
    full = inverse_density_weights(feats, labels, 2, DebiasConfig(bandwidth=0.05))
    half = inverse_density_weights(feats, labels, 2, DebiasConfig(bandwidth=0.05, power=0.5))
    capped = inverse_density_weights(feats, labels, 2, DebiasConfig(bandwidth=0.05, max_weight=3.0))
    assert 1.0 < half[minority].mean() < full[minority].mean()
    assert capped.max() <= 3.0 + 1e-4


def test_matches_sklearn_density_directly():
    from sklearn.neighbors import KernelDensity

    feats, labels, _ = toy_features(20, 3)
    w = inverse_density_weights(feats, labels, 2, DebiasConfig(bandwidth=0.3))
    rows = (labels == 1).numpy()
    dens = np.exp(KernelDensity(bandwidth=0.3).fit(feats[rows]).score_samples(feats[rows]))
    expected = (1 / dens) / (1 / dens).mean()
    assert np.allclose(w[rows].numpy(), expected, rtol=1e-4)


def test_foreground_colour_ignores_brightness_and_background():
    pixels = torch.zeros(2, 3, 5, 5)
    paint = torch.tensor([0.9, 0.3, 0.1])
    pixels[0, :, 1:4, 2] = paint[:, None]               # a thin bright stroke
    pixels[1, :, 0:5, 1:4] = 0.5 * paint[:, None, None]  # a thick faint one
    f = foreground_colour(pixels)
    assert torch.allclose(f[0], f[1], atol=1e-6)
    assert torch.allclose(f[0], paint / paint.max(), atol=1e-6)


def test_cross_validated_bandwidth_near_the_normal_reference_rule():
    """On n draws of N(0, sigma^2) the likelihood-optimal bandwidth is of the order of
    Silverman's 1.06 sigma n^(-1/5); the grid's steps are a factor 10^0.25."""
    rng = np.random.default_rng(0)
    for sigma in (0.01, 0.1):
        points = rng.normal(0.0, sigma, size=(500, 1))
        rule = 1.06 * sigma * 500 ** (-1 / 5)
        assert rule / 2.5 <= select_bandwidth(points) <= rule * 2.5


def test_cv_bandwidth_is_likelihood_optimal_not_balancing():
    """Cross-validated likelihood fits each tight mode, so with few minority points every
    point is its own bump: the minority gains weight, but less than at a bandwidth wider
    than the modes (the finding the bias chapter reports)."""
    feats, labels, minority = toy_features()
    shares = {}
    for h in ("cv", 0.05):
        w = inverse_density_weights(feats, labels, 2, DebiasConfig(bandwidth=h))
        rows = labels == 0
        shares[h] = effective_share(w[rows], minority[rows].long())[1]
    assert 0.05 + 0.1 < shares["cv"] < shares[0.05] - 0.1


@pytest.mark.parametrize("bandwidth", [0.05, "cv"])
def test_on_cmnist_conflicting_weighted_up_without_reading_attrs(cache_dir, bandwidth):
    gen = torch.Generator().manual_seed(0)
    grey = ImageData(torch.rand(400, 1, 6, 6, generator=gen), torch.arange(10).repeat(40),
                     "grey", "train", (0.0,), (1.0,), tuple(map(str, range(10))), flip_ok=False)
    data = cmnist_dd(grey, BiasedConfig(ratio=80.0))
    blind = data.with_attrs(colour=torch.zeros(400, dtype=torch.long),
                            aligned=torch.zeros(400, dtype=torch.bool),
                            bias=torch.zeros(400, dtype=torch.long))
    cfg = DebiasConfig(bandwidth=bandwidth)
    w = debias_weights(blind, cfg)  # attrs overwritten: the weights can only come from the pixels
    assert torch.equal(w, debias_weights(data, cfg))
    aligned = data.attrs["aligned"]
    assert w[~aligned].mean() > 3 * w[aligned].mean()
    # the aligned colour is one of ten equally weighted colours: about a tenth of the weight
    assert effective_share(w, aligned.long())[1] == pytest.approx(0.1, abs=0.05)
    assert torch.equal(debiased(data, cfg).weights, w)


def test_bad_config():
    for bad in ({"features": "resnet"}, {"bandwidth": 0.0}, {"bandwidth": "scott"}, {"power": 1.5},
                {"max_weight": 0.5}):
        with pytest.raises(ValueError):
            DebiasConfig(**bad)
