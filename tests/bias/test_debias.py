"""Inverse-density reweighting: the conflicting minority gets the larger weights, DM honours them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddrepro.data import ImageData
from ddrepro.bias.biased import BiasedConfig, cmnist_dd
from ddrepro.bias.debias import (DebiasConfig, batch_effective_sizes, debias_weights, debiased,
                                 effective_share, foreground_colour, inverse_density_weights,
                                 kish_size, resample_by_weight, select_bandwidth)


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


def test_kish_size_known_answers():
    assert kish_size(torch.ones(32)) == pytest.approx(32.0)
    assert kish_size(torch.tensor([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    # two images holding 70 % of the weight of a batch of 32 (issue 25's 95 % batch)
    w = torch.tensor([0.35 * 30 / 0.3] * 2 + [1.0] * 30)
    assert kish_size(w) == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    assert kish_size(w) < 8
    with pytest.raises(ValueError):
        kish_size(torch.zeros(3))


def toy_set(labels: torch.Tensor) -> ImageData:
    n = len(labels)
    return ImageData(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), labels, "toy", "train",
                     (0.0,), (1.0,), ("a", "b"), flip_ok=False)


def test_resample_by_weight_draws_in_proportion_and_never_a_zero_weight():
    labels = torch.tensor([0] * 4 + [1] * 4)
    weights = torch.tensor([0.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    big = toy_set(labels.repeat(500)).take(torch.arange(4000))
    out = resample_by_weight(big, weights.repeat(500), seed=0)
    assert out.weights is None and len(out) == len(big)
    assert torch.equal(torch.bincount(out.labels), torch.bincount(big.labels))  # class sizes kept
    drawn = torch.bincount(out.source_index % 8, minlength=8).double()
    assert drawn[0] == 0
    # class 0: rows 1, 2, 3 drawn 1 : 1 : 2 of 2000 draws (binomial sd ~ 19)
    assert drawn[3] / 2000 == pytest.approx(0.5, abs=0.05) and drawn[1] / 2000 == pytest.approx(0.25, abs=0.05)
    assert torch.equal(out.source_index, resample_by_weight(big, weights.repeat(500), seed=0).source_index)
    with pytest.raises(ValueError, match="one weight"):
        resample_by_weight(big, weights, seed=0)


def test_batch_effective_sizes_weighted_batch_vs_resampled():
    """Class of 100: 5 minority rows with 70 % of the weight. Uniform batches of 20 miss every
    minority row with probability C(95,20)/C(100,20) ~ 0.31 (hypergeometric), and the weighted
    batch's Kish size is far below 20; the resampled set's batches are unweighted (20)."""
    labels = torch.zeros(100, dtype=torch.long)
    minority = torch.zeros(100, dtype=torch.long)
    minority[:5] = 1
    w = torch.where(minority.bool(), torch.tensor(0.7 * 100 / 5), torch.tensor(0.3 * 100 / 95))
    weighted = batch_effective_sizes(w, labels, batch=20, draws=4000, seed=0, groups=minority)
    from math import comb
    assert weighted["batches with no minority row (%)"] == pytest.approx(100 * comb(95, 20) / comb(100, 20), abs=2.5)
    assert weighted["effective batch"] < 10
    plain = batch_effective_sizes(None, labels, batch=20, draws=50, seed=0)
    assert plain["effective batch"] == pytest.approx(20.0) and plain["batch"] == 20
    # DM on a resampled set: the rows of a uniform batch of the redrawn set, equal weights
    real = toy_set(labels).take(torch.arange(100))
    redrawn = resample_by_weight(real, w, seed=0)
    is_minority = (redrawn.source_index < 5).long()
    again = batch_effective_sizes(None, redrawn.labels, batch=20, draws=2000, seed=1, groups=is_minority)
    assert again["minority share of a batch's weight (%)"] == pytest.approx(70.0, abs=6.0)
    assert again["batches with no minority row (%)"] < 1.0


def test_resample_sampling_redraws_the_set(cache_dir):
    gen = torch.Generator().manual_seed(0)
    grey = ImageData(torch.rand(400, 1, 6, 6, generator=gen), torch.arange(10).repeat(40),
                     "grey", "train", (0.0,), (1.0,), tuple(map(str, range(10))), flip_ok=False)
    data = cmnist_dd(grey, BiasedConfig(ratio=80.0))
    redrawn = debiased(data, DebiasConfig(sampling="resample"), seed=3)
    assert redrawn.weights is None and len(redrawn) == len(data)
    # the conflicting fifth of the images now make up most of the redrawn set
    assert float((~redrawn.attrs["aligned"]).float().mean()) > 0.6
    assert debiased(data, DebiasConfig(), seed=3).weights is not None


def test_bad_config():
    for bad in ({"features": "resnet"}, {"bandwidth": 0.0}, {"bandwidth": "scott"}, {"power": 1.5},
                {"max_weight": 0.5}, {"sampling": "bootstrap"}):
        with pytest.raises(ValueError):
            DebiasConfig(**bad)


def test_erm_feature_finds_the_colour_minority_without_reading_it(cache_dir):
    """Grey noise 'digits' coloured at 80 %: the only signal is the colour, so a briefly trained
    ERM network's embedding separates each class's aligned majority from its conflicting images,
    and inverse density in it weights the conflicting images up, from pixels and labels only."""
    from ddrepro.bias.erm import balance_score, erm_feature_map
    from ddrepro.config import NetConfig

    gen = torch.Generator().manual_seed(0)
    grey = ImageData(torch.rand(400, 1, 8, 8, generator=gen), torch.arange(10).repeat(40),
                     "grey", "train", (0.0,), (1.0,), tuple(map(str, range(10))), flip_ok=False)
    data = cmnist_dd(grey, BiasedConfig(ratio=80.0))
    net = NetConfig(width=16, depth=2)
    features = erm_feature_map(data, net_cfg=net, epochs=15, dims=4, seed=0, batch_size=32)
    feats = features(data)
    assert feats.shape == (400, 4)
    blind = data.with_attrs(colour=torch.zeros(400, dtype=torch.long), bias=torch.zeros(400, dtype=torch.long),
                            aligned=torch.zeros(400, dtype=torch.bool))
    assert torch.allclose(erm_feature_map(blind, net_cfg=net, epochs=15, dims=4, seed=0,
                                          batch_size=32)(blind), feats)
    w = inverse_density_weights(feats, data.labels, 10, DebiasConfig(bandwidth=0.5))
    aligned = data.attrs["aligned"]
    assert w[~aligned].mean() > 1.5 * w[aligned].mean()
    # the balance score: 0 at the fair tenth, minus the distance in points otherwise
    assert balance_score(torch.tensor([1.0] + [1.0] * 9), torch.tensor([True] + [False] * 9)) == pytest.approx(0.0, abs=1e-5)
    assert balance_score(torch.ones(10), torch.tensor([True] * 8 + [False] * 2)) == pytest.approx(-70.0)
