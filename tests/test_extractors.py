"""The privacy paper's random extractors: N(0, 1) weights, exact embeddings, DM on them, Prop. 4.3."""

from __future__ import annotations

import pytest
import torch

from ddrepro.condense import condense
from ddrepro.condense.dm import dm_feature_loss
from ddrepro.config import DMConfig, NetConfig
from ddrepro.nets import LinearExtractor, ReLUExtractor, build_net, get_net
from helpers import toy_image_data


@pytest.mark.parametrize("name", ["linear", "relu2"])
def test_weights_are_standard_normal_not_pytorch_default(name):
    theta = get_net(name, 1, 10, 28, seed=0, width=512).theta.detach()
    assert theta.shape == (512, 784)
    # 401,408 draws: the empirical mean has std 0.0016 and the std 0.0011, so
    # 0.01 is > 6 sigma; PyTorch's default would give std 1/sqrt(3 * 784) = 0.02.
    assert abs(float(theta.mean())) < 0.01
    assert abs(float(theta.std()) - 1.0) < 0.01


def test_same_seed_same_weights_other_seed_other_weights_global_rng_untouched():
    state = torch.random.get_rng_state()
    a = get_net("linear", 1, 10, 8, seed=3, width=16)
    b = get_net("linear", 1, 10, 8, seed=3, width=16)
    c = get_net("linear", 1, 10, 8, seed=4, width=16)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.theta, b.theta) and torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.theta, c.theta)


def test_embed_is_theta_x_and_its_relu():
    x = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    linear = get_net("linear", 3, 7, 4, seed=1, width=6)
    relu = get_net("relu2", 3, 7, 4, seed=1, width=6)
    expected = x.flatten(1) @ linear.theta.T
    assert torch.allclose(linear.embed(x), expected)
    assert torch.equal(relu.theta, linear.theta)  # same seed, same draw
    assert torch.allclose(relu.embed(x), expected.clamp(min=0))
    assert (expected < 0).any()  # so the ReLU does something here
    assert torch.allclose(linear(x), linear.classifier(expected)) and linear(x).shape == (5, 7)


def test_build_net_maps_width_to_k_and_ignores_depth_and_norm():
    net = build_net(NetConfig(name="linear", width=16, depth=5, norm="batchnorm"), 1, 10, 8, seed=0)
    assert isinstance(net, LinearExtractor) and net.theta.shape == (16, 64)
    assert isinstance(build_net(NetConfig(name="relu2", width=8), 3, 10, 4), ReLUExtractor)
    with pytest.raises(ValueError, match="width"):
        get_net("linear", 1, 10, 8, width=0)


@pytest.mark.parametrize("name", ["linear", "relu2"])
def test_dm_runs_with_the_extractors(name):
    real = toy_image_data()  # 4 classes, 10 images each, 1x8x8
    syn = condense("dm", real, ipc=1, config=DMConfig(steps=3, batch_real=8, dsa=False),
                   net_cfg=NetConfig(name=name, width=16), cache=False, device="cpu", quiet=True)
    assert syn.images.shape == (4, 1, 8, 8) and torch.isfinite(syn.images).all()
    assert syn.meta["net"]["name"] == name


def test_prop_4_3_fixed_linear_extractor_moves_s_to_the_class_mean_in_theta_row_space():
    """|S| = 1 per class, no augmentation, one fixed theta: gradient descent on Eq. 6 converges to
    theta s = theta mean(T_c) (Prop. 4.3, part 1), and s only moves inside theta's row space
    (App. A, Eq. 20: the gradient is theta^T d), so s* = s0 + P (mean(T_c) - s0), P = pinv(theta) theta."""
    real = toy_image_data(n_per_class=10, classes=2, shape=(1, 4, 4))  # d = 16
    net = get_net("linear", 1, 2, 4, seed=0, width=4).double()  # k = 4 < d
    theta = net.theta.detach()
    real_by_class = torch.stack([real.images[real.labels == c] for c in range(2)]).double()
    real_feats = net.embed(real_by_class.flatten(0, 1)).view(2, 10, 4).detach()
    s0 = torch.randn(2, 1, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    syn = s0.clone().requires_grad_(True)
    # step 1 / (2 lambda_max(theta^T theta)): each eigen-direction contracts by 1 - lambda / lambda_max
    lr = 1 / (2 * float(torch.linalg.matrix_norm(theta, ord=2)) ** 2)
    for _ in range(600):
        loss = dm_feature_loss(real_feats, net.embed(syn.flatten(0, 1)).view(2, 1, 4))
        (grad,) = torch.autograd.grad(loss, syn)
        syn = (syn - lr * grad).detach().requires_grad_(True)
    means = real_by_class.mean(1).flatten(1)  # (2, d)
    final, start = syn.detach().flatten(1), s0.flatten(1)
    assert torch.allclose(final @ theta.T, means @ theta.T, atol=1e-8)
    projector = torch.linalg.pinv(theta) @ theta
    assert torch.allclose(final, start + (means - start) @ projector.T, atol=1e-8)
    assert not torch.allclose(final, means, atol=0.1)  # k < d: s does not become the mean itself
