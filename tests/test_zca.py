"""ZCA whitening: known answers, the identity covariance, symmetry, and fit-on-train / apply-to-test."""

from __future__ import annotations

import math

import pytest
import torch

from ddrepro.data import ZCAConfig, derive, fit_zca
from helpers import toy_image_data


def correlated_images(n: int = 2000, seed: int = 0) -> torch.Tensor:
    """(n, 1, 4, 4) images with a full-rank, far-from-identity covariance and a non-zero mean."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(16, 16, generator=gen, dtype=torch.float64)
    flat = torch.randn(n, 16, generator=gen, dtype=torch.float64) @ mixing + 3.0
    return flat.float().view(n, 1, 4, 4)


def covariance(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1).double()
    centred = flat - flat.mean(0)
    return centred.T @ centred / flat.shape[0]


def test_known_answer_isotropic_data_is_scaled_by_one_over_sqrt_1_plus_reg():
    # Centred columns are orthogonal with variance 1: C = I, every eigenvalue 1, so W = I / sqrt(1 + reg).
    images = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]).view(4, 1, 1, 2) + 0.5
    zca = fit_zca(images, reg=0.1)
    assert torch.allclose(zca.mean, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert torch.allclose(zca.matrix, torch.eye(2, dtype=torch.float64) / math.sqrt(1.1))


def test_tiny_reg_on_full_rank_data_gives_identity_covariance():
    images = correlated_images()
    assert not torch.allclose(covariance(images), torch.eye(16, dtype=torch.float64), atol=0.5)
    whitened = fit_zca(images, reg=1e-8).apply(images)
    assert whitened.dtype == torch.float32 and whitened.shape == images.shape
    # float32 output: agreement to ~1e-4; the regulariser alone shrinks variances by <= 1e-6
    assert torch.allclose(covariance(whitened), torch.eye(16, dtype=torch.float64), atol=1e-3)
    assert whitened.reshape(len(images), -1).mean(0).abs().max() < 1e-4


def test_regularisation_shrinks_variances_below_one():
    images = correlated_images()
    eigvals = torch.linalg.eigvalsh(covariance(fit_zca(images, reg=0.1).apply(images)))
    expected = torch.linalg.eigvalsh(covariance(images))
    expected = expected / (expected + 0.1 * expected.mean())  # s / (s + reg * mean(s))
    assert torch.allclose(eigvals, expected.sort().values, atol=1e-4)


def test_whitening_matrix_is_exactly_symmetric():
    zca = fit_zca(correlated_images(300, seed=1), reg=0.1)
    assert zca.matrix.shape == (16, 16) and zca.matrix.dtype == torch.float64
    assert torch.equal(zca.matrix, zca.matrix.T)


def test_fit_on_train_apply_to_test_uses_the_train_statistics():
    train = toy_image_data(seed=0)
    test = toy_image_data(seed=1)
    out = derive("zca", test, ZCAConfig(reg=0.1), fit_on=train, cache=False)
    assert torch.equal(out.images, fit_zca(train.images, 0.1).apply(test.images))
    assert torch.equal(out.labels, test.labels) and torch.equal(out.source_index, test.source_index)
    assert out.name == "toy+zca"
    self_fit = derive("zca", test, ZCAConfig(reg=0.1), cache=False)
    assert not torch.allclose(out.images, self_fit.images, atol=1e-3)
    # the fitted set enters the identity: another training set, another key
    other = derive("zca", test, ZCAConfig(reg=0.1), fit_on=toy_image_data(seed=2), cache=False)
    assert len({out.content_id, self_fit.content_id, other.content_id}) == 3


def test_a_shifted_set_is_whitened_with_the_train_mean():
    train = correlated_images(500)
    zca = fit_zca(train, reg=0.1)
    shift = torch.full_like(train, 2.0)
    # (x + c - m) W = (x - m) W + c W: the shift survives because the mean is the train mean
    expected = zca.apply(train) + (shift.reshape(500, -1).double() @ zca.matrix).float().view_as(train)
    assert torch.allclose(zca.apply(train + shift), expected, atol=1e-4)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="reg"):
        fit_zca(correlated_images(10), reg=0.0)
    with pytest.raises(ValueError, match="reg"):
        ZCAConfig(reg=-1.0)
    with pytest.raises(ValueError, match="do not vary"):
        fit_zca(torch.ones(5, 1, 2, 2))
    with pytest.raises(ValueError, match="16 features"):
        fit_zca(correlated_images(10)).apply(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="same shape"):
        derive("zca", toy_image_data(), fit_on=toy_image_data(shape=(1, 4, 4)))
