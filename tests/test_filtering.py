"""The iterative filter (Diakonikolas et al. 2016/2017) on cases with known answers."""

import math

import pytest
import torch

from ddrepro.filtering import filtered_mean, robust_standardise
from ddrepro.poisoning.deviation import estimate, expected_deviation, planted_features


def _planted(eps: float, n: int = 2000, d: int = 16, mu_norm: float = 50.0, seed: int = 0):
    return planted_features(n, d, eps, mu_norm, torch.Generator().manual_seed(seed))


def test_clean_gaussians_pass_the_spectral_test_and_keep_every_row():
    rows = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = filtered_mean(rows, 0.05)
    assert result.rounds == 0 and bool(result.kept.all())
    torch.testing.assert_close(result.mean, rows.mean(0))


@pytest.mark.parametrize("eps", [0.01, 0.05, 0.1])
def test_a_far_cluster_is_removed_and_the_mean_recovered(eps):
    rows, clean_mean = _planted(eps)
    n_bad = round(eps * rows.shape[0])
    result = filtered_mean(rows, eps)
    assert not result.kept[-n_bad:].any()                 # every poison dropped
    assert (~result.kept[:-n_bad]).sum() <= n_bad          # and not many more clean rows
    plain = (rows.mean(0) - clean_mean).norm()
    assert (result.mean - clean_mean).norm() < 0.1 * plain


def test_translation_and_permutation_move_the_estimate_as_they_move_the_data():
    rows, _ = _planted(0.05, n=600)
    shift = torch.linspace(-3, 3, rows.shape[1], dtype=torch.float64)
    order = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(2))
    base = filtered_mean(rows, 0.05).mean
    torch.testing.assert_close(filtered_mean(rows + shift, 0.05).mean, base + shift)
    torch.testing.assert_close(filtered_mean(rows[order], 0.05).mean, base)


def test_standardising_makes_the_filter_scale_free_per_coordinate():
    rows, _ = _planted(0.05, n=800)
    scale = torch.logspace(-2, 2, rows.shape[1], dtype=torch.float64)
    plain = filtered_mean(rows, 0.05, standardise=True)
    scaled = filtered_mean(rows * scale, 0.05, standardise=True)
    assert torch.equal(plain.kept, scaled.kept)
    torch.testing.assert_close(scaled.mean, plain.mean * scale)
    # without standardising, the known-covariance filter reads the large coordinates as excess variance
    assert not torch.equal(filtered_mean(rows * scale, 0.05).kept, plain.kept)


def test_robust_standardise_gives_unit_mad_and_guards_constant_coordinates():
    rows = torch.randn(1001, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4 + 7
    rows[:, 2] = 1.0
    scaled, centre, scale = robust_standardise(rows)
    assert scale[2] == 1.0 and centre[2] == 1.0
    mad = scaled[:, :2].abs().median(0).values * 1.4826
    torch.testing.assert_close(mad, torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("bad", [dict(eps=0.0), dict(eps=0.5), dict(eps=0.1, tau=1.0)])
def test_bad_parameters_are_refused_before_compute(bad):
    with pytest.raises(ValueError, match="must be in"):
        filtered_mean(torch.zeros(10, 2), **bad)
    with pytest.raises(ValueError, match="rows"):
        filtered_mean(torch.zeros(10), 0.1)


def test_the_chapter_dispatches_the_filter_and_it_beats_the_plain_mean_on_planted_poisons():
    rows, clean_mean = _planted(0.05, n=1000)
    assert torch.equal(estimate(rows, "filter", 0.05), filtered_mean(rows, 0.05).mean)
    found = expected_deviation(1000, 16, 0.05, 50.0, trials=3, estimators=("mean", "filter"))
    assert found["filter"] < 0.1 * found["mean"]
    assert math.isclose(found["mean"], 0.05 * 50.0, rel_tol=0.1)
