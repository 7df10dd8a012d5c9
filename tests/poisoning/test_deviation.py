"""Poisoned deviation (ddrepro/poisoning/deviation.py): Lemma 4.1's scalings measured on planted Gaussians."""

from __future__ import annotations

import math

import pytest

from ddrepro.poisoning.deviation import (LEMMA_ALPHA, deviation_sweep, expected_deviation,
                                         loglog_slope, mixed_batch_deviation, trimming_residual)

EPS = (0.002, 0.004, 0.008)
MU = math.sqrt(5.0 / EPS[0])  # separation eps ||mu||^2 >= 5 > 2665/576 at every eps


@pytest.fixture(scope="module")
def eps_sweep():
    return deviation_sweep(EPS, [16], n=10_000, mu_norm=MU, trials=8,
                           estimators=("mean", "calibrated"))


def test_plain_mean_deviation_is_linear_in_eps(eps_sweep):
    assert (eps_sweep.separation > LEMMA_ALPHA).all()
    plain = eps_sweep[eps_sweep.estimator == "mean"]
    assert abs(loglog_slope(plain.eps, plain.deviation) - 1.0) < 0.05
    for eps, value in zip(plain.eps, plain.deviation):  # Eq. 6: eps ||mu_B - mu_D||
        assert value == pytest.approx(eps * MU, rel=0.1)


def test_calibrated_deviation_is_superlinear_and_matches_the_trimming_residual(eps_sweep):
    """The paper's Theta(eps^2): measured slope ~1.45 here (eps ||mu|| from 0.1 to 0.4), which our
    closed form for the 3 eps rule predicts; the slope tends to 2 only as eps ||mu|| -> 0."""
    calibrated = eps_sweep[eps_sweep.estimator == "calibrated"]
    slope = loglog_slope(calibrated.eps, calibrated.deviation)
    predicted = [trimming_residual(e, MU) for e in EPS]
    assert 1.25 < slope < 1.75
    assert abs(slope - loglog_slope(EPS, predicted)) < 0.2
    for value, expected in zip(calibrated.deviation, predicted):
        assert value == pytest.approx(expected, rel=0.3)
    plain = eps_sweep[eps_sweep.estimator == "mean"].deviation.to_numpy()
    assert (calibrated.deviation.to_numpy() < 0.1 * plain).all()


def test_plain_mean_deviation_grows_as_sqrt_d():
    frame = deviation_sweep([0.01], [8, 32, 128], n=4000, mu_per_dim=math.sqrt(5.0 / (0.01 * 8)),
                            trials=4, estimators=("mean",))
    assert (frame.separation > LEMMA_ALPHA).all()
    assert abs(loglog_slope(frame.d, frame.deviation) - 0.5) < 0.05


def test_trimming_residual_is_second_order_for_small_shifts():
    # eps ||mu|| -> 0: residual ~ 2 eps^2 ||mu|| t^2, i.e. slope in eps -> 2 - 1/log(1/eps)
    slope = loglog_slope([1e-5, 2e-5], [trimming_residual(e, 10.0) for e in (1e-5, 2e-5)])
    assert 1.85 < slope < 2.0


def test_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        deviation_sweep([0.1], [4], n=100)
    with pytest.raises(ValueError, match="eps"):
        expected_deviation(100, 4, 0.6, 1.0)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [0, 1])


def test_mixed_batch_deviation_of_the_plain_mean_is_the_share_times_the_shift():
    import torch

    gen = torch.Generator().manual_seed(0)
    clean = torch.randn(100, 6, generator=gen, dtype=torch.float64)
    poisons = clean[:10] + 3.0
    frame = mixed_batch_deviation(clean, poisons, [5, 10], estimators=("mean", "calibrated", "median"))
    plain = frame[frame.estimator == "mean"].set_index("poisons").deviation
    assert plain[5] == pytest.approx(0.05 * 3.0 * 6 ** 0.5) and plain[10] == pytest.approx(0.1 * 3.0 * 6 ** 0.5)
    assert (frame.deviation >= 0).all()
    with pytest.raises(ValueError, match="count 11"):
        mixed_batch_deviation(clean, poisons, [11])


def test_seed_slopes_are_one_independent_sweep_per_seed():
    from ddrepro.poisoning.deviation import seed_slopes

    plain = seed_slopes(EPS, 16, n=4_000, mu_norm=MU, trials=4, seeds=[0, 1, 2], estimator="mean")
    assert plain.shape == (3,)
    assert all(abs(s - 1.0) < 0.1 for s in plain)  # Eq. 6 on planted data, at every seed
    calibrated = seed_slopes(EPS, 16, n=4_000, mu_norm=MU, trials=4, seeds=[0, 1, 2])
    assert len(set(calibrated.round(6))) == 3  # the seeds are distinct draws, not one sweep repeated
    # each seed is the sweep of that seed alone
    alone = deviation_sweep(EPS, [16], n=4_000, mu_norm=MU, trials=4, seed=1, estimators=("calibrated",))
    assert calibrated[1] == pytest.approx(loglog_slope(alone.eps, alone.deviation))
    with pytest.raises(ValueError, match="two eps"):
        seed_slopes(EPS[:1], 16, n=100, mu_norm=MU, trials=1, seeds=[0])


def test_unit_slopes_fit_one_slope_per_unit():
    import pandas as pd

    from ddrepro.poisoning.deviation import unit_slopes

    frame = pd.DataFrame({"net": [0, 0, 0, 1, 1, 1], "eps": [0.1, 0.2, 0.4] * 2,
                          "deviation": [1.0, 2.0, 4.0, 1.0, 4.0, 16.0]})
    slopes = unit_slopes(frame, by="net")
    assert list(slopes.index) == [0, 1]
    assert slopes.to_numpy() == pytest.approx([1.0, 2.0])
    with pytest.raises(ValueError, match="no column 'seed'"):
        unit_slopes(frame, by="seed")
