"""DP-SGD (ddrepro.privacy.dpsgd): clipping, noise and accounting follow Opacus's RDP accountant."""

from __future__ import annotations

import math

import pytest
import torch

from ddrepro.config import NetConfig
from ddrepro.privacy.dpsgd import (advantage_bound, clip_and_noise, clipped_norms, dp_sgd,
                                   noise_multiplier, per_sample_grads, spent_epsilon)
from ddrepro.models import init_stacked


pytestmark = pytest.mark.usefixtures("one_thread")


def grads(b, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(b, 4, 3, generator=gen), scale * torch.randn(b, 5, generator=gen)]


def test_clipping_bounds_every_example_and_keeps_small_ones():
    g = grads(64)
    g = [torch.cat([x, 1e-3 * x[:4]]) for x in g]  # 4 tiny gradients that must pass unchanged
    norms = torch.sqrt(sum(x.flatten(1).pow(2).sum(1) for x in g))
    clipped = clipped_norms(g, clip=1.0)
    assert (clipped <= 1.0 + 1e-6).all()
    assert torch.allclose(clipped[norms > 1.0], torch.ones(int((norms > 1.0).sum())), atol=1e-5)
    assert torch.allclose(clipped[-4:], norms[-4:])


def test_without_noise_the_update_is_the_clipped_sum_over_the_expected_batch():
    g = grads(16, seed=1)
    out = clip_and_noise(g, clip=0.5, sigma=0.0, expected_batch=20.0, generator=torch.Generator())
    norms = torch.sqrt(sum(x.flatten(1).pow(2).sum(1) for x in g))
    factor = torch.minimum(torch.ones_like(norms), 0.5 / norms)
    for x, o in zip(g, out):
        expect = (factor.view(-1, *[1] * (x.dim() - 1)) * x).sum(0) / 20.0
        assert torch.allclose(o, expect, atol=1e-6)


def test_noise_is_gaussian_with_std_sigma_c_over_the_expected_batch():
    sigma, clip, batch = 1.7, 0.4, 25.0
    zero = [torch.zeros(3, 200, 500)]  # 100k coordinates, gradients zero: only the noise remains
    noise = clip_and_noise(zero, clip, sigma, batch, torch.Generator().manual_seed(0))[0].flatten()
    expect = sigma * clip / batch
    # the sample std of 1e5 Gaussians is within 1 % of the truth with overwhelming probability
    assert abs(noise.std().item() / expect - 1) < 0.01
    assert abs(noise.mean().item()) < 4 * expect / math.sqrt(noise.numel())
    empty = clip_and_noise([torch.zeros(0, 7)], clip, sigma, batch, torch.Generator().manual_seed(0))
    assert empty[0].shape == (7,)


@pytest.mark.parametrize("epsilon", [1.0, 4.0, 10.0])
def test_the_accountant_reports_at_most_the_target_epsilon(epsilon):
    q, steps, delta = 0.05, 400, 1e-5
    sigma = noise_multiplier(epsilon, delta, q, steps)
    spent = spent_epsilon(sigma, q, steps, delta)
    assert spent <= epsilon and spent > 0.9 * epsilon  # tight: the smallest sigma that fits
    assert spent_epsilon(0.9 * sigma, q, steps, delta) > spent  # less noise spends more


def test_sigma_falls_as_epsilon_grows():
    sigmas = [noise_multiplier(e, 1e-5, 0.1, 100) for e in (1.0, 4.0, 10.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > 0


@pytest.mark.parametrize("epsilon,delta", [(0.0, 1e-5), (-1.0, 1e-5), (math.inf, 1e-5),
                                           (1.0, 0.0), (1.0, 1.0), (1.0, 1.5)])
def test_bad_privacy_targets_fail_before_compute(epsilon, delta):
    with pytest.raises(ValueError, match="epsilon|delta"):
        noise_multiplier(epsilon, delta, 0.1, 10)
    with pytest.raises(ValueError, match="epsilon|delta"):
        dp_sgd(torch.zeros(0), torch.zeros(0), net_cfg=NetConfig(), num_classes=2, epsilon=epsilon,
               delta=delta, epochs=1, expected_batch=1, clip=1.0, lr=0.1)


def test_per_sample_gradients_equal_one_backward_per_example():
    net = NetConfig(width=4, depth=1)
    base, params, buffers = init_stacked(net, 1, 3, 8, [0], torch.device("cpu"))
    p = {k: v[0].detach() for k, v in params.items()}
    b = {k: v[0] for k, v in buffers.items()}
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    batched = per_sample_grads(base, p, b, x, y)
    for i in range(5):
        q = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        loss = torch.nn.functional.cross_entropy(
            torch.func.functional_call(base, (q, b), (x[i:i + 1],)), y[i:i + 1])
        for g, ref in zip(batched, torch.autograd.grad(loss, list(q.values()))):
            assert torch.allclose(g[i], ref, atol=1e-5)


def test_a_dp_run_spends_no_more_than_its_target_and_learns_a_toy():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(40)
    images = torch.randn(80, 1, 8, 8, generator=gen) * 0.3 + labels.view(-1, 1, 1, 1).float()
    net = NetConfig(width=4, depth=1)
    model, rec = dp_sgd(images, labels, net_cfg=net, num_classes=2, epsilon=8.0, delta=1e-3,
                        epochs=5, expected_batch=20, clip=1.0, lr=0.5, device="cpu", quiet=True)
    assert rec["epsilon_spent"] <= 8.0 and rec["sigma"] > 0 and rec["steps"] == 20
    assert rec["sample_rate"] == pytest.approx(0.25)
    acc = (model.predict(images).argmax(-1)[0] == labels).float().mean()
    assert acc > 0.8
    _, free = dp_sgd(images, labels, net_cfg=net, num_classes=2, epsilon=None, delta=1e-3, epochs=1,
                     expected_batch=20, clip=1.0, lr=0.5, device="cpu", quiet=True)
    assert free["sigma"] == 0 and free["epsilon_spent"] == math.inf
    with pytest.raises(ValueError, match="batch norm"):
        dp_sgd(images, labels, net_cfg=NetConfig(width=4, depth=1, norm="batchnorm"), num_classes=2,
               epsilon=1.0, delta=1e-3, epochs=1, expected_batch=20, clip=1.0, lr=0.5)


def test_advantage_bound_known_values():
    assert advantage_bound(1.0, 1e-12) == pytest.approx((math.e - 1) / (math.e + 1))
    assert advantage_bound(1e-6, 1e-9) < 1e-5
    assert advantage_bound(1.0, 1e-5) < advantage_bound(4.0, 1e-5) < advantage_bound(10.0, 1e-5) <= 1.0
