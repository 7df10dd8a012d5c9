"""MMD with a sum of Gaussian kernels: the statistic, its kernel, and the condenser."""

import math

from functools import partial

import pytest
import torch

from ddrepro.condense import condense
from ddrepro.condense.dm import dm_feature_loss, embed_by_class
from ddrepro.condense.mmd import (
    gaussian_kernel, median_heuristic, mmd2_per_class, mmd_feature_loss, squared_distances,
)
from ddrepro.config import MMDConfig, NetConfig
from ddrepro.data import load
from ddrepro.nets import build_net
from helpers import toy_image_data

TINY_NET = NetConfig(width=8, depth=2)
BANDWIDTHS = (0.5, 1.0, 2.0)




toy_data = partial(toy_image_data, n_per_class=10, classes=4)


def direct_kernel(x, y, widths):
    return sum(math.exp(-float(((x - y) ** 2).sum()) / (2 * w * w)) for w in widths)


def direct_mmd2(real, syn, widths, weights=None):
    """The V-statistic with explicit double sums (Gretton et al. 2012, Eq. 5)."""
    n, m = len(real), len(syn)
    p = [1.0 / n] * n if weights is None else [float(w) / float(weights.sum()) for w in weights]
    rr = sum(p[i] * p[j] * direct_kernel(real[i], real[j], widths) for i in range(n) for j in range(n))
    ss = sum(direct_kernel(syn[i], syn[j], widths) for i in range(m) for j in range(m)) / m ** 2
    rs = sum(p[i] * direct_kernel(real[i], syn[j], widths) for i in range(n) for j in range(m)) / m
    return rr + ss - 2 * rs


def feats(seed=0, classes=2, n=5, m=3, d=4):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(classes, n, d, generator=gen, dtype=torch.float64),
            torch.randn(classes, m, d, generator=gen, dtype=torch.float64) + 0.5)


def test_kernel_matches_the_direct_formula():
    real, syn = feats()
    widths = torch.tensor(BANDWIDTHS, dtype=torch.float64)
    k = gaussian_kernel(squared_distances(real[0], syn[0]), widths)
    for i in range(real.shape[1]):
        for j in range(syn.shape[1]):
            assert math.isclose(float(k[i, j]), direct_kernel(real[0, i], syn[0, j], BANDWIDTHS),
                                rel_tol=1e-9)


def test_mmd2_matches_the_direct_double_sum_with_and_without_weights():
    real, syn = feats(seed=1)
    widths = torch.tensor([[0.7, 1.5], [1.0, 3.0]], dtype=torch.float64)  # per class
    weights = torch.rand(2, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = mmd2_per_class(real, syn, widths)
    got_w = mmd2_per_class(real, syn, widths, weights)
    for c in range(2):
        assert math.isclose(float(got[c]), direct_mmd2(real[c], syn[c], widths[c].tolist()), rel_tol=1e-9)
        assert math.isclose(float(got_w[c]), direct_mmd2(real[c], syn[c], widths[c].tolist(), weights[c]),
                            rel_tol=1e-9)


def test_mmd_is_zero_for_identical_sets_and_positive_otherwise():
    real, syn = feats(seed=3)
    same = mmd_feature_loss(real, real.clone(), bandwidths=BANDWIDTHS)
    assert abs(float(same)) < 1e-12
    per_class = mmd2_per_class(real, syn, torch.tensor(BANDWIDTHS, dtype=torch.float64))
    assert (per_class > 1e-6).all()
    # A set and its own subset in different proportions differ as distributions too.
    assert float(mmd_feature_loss(real, real[:, :2], bandwidths=BANDWIDTHS)) > 1e-6


def test_wide_kernels_give_dm_loss_with_and_without_weights():
    # sigma^2 MMD^2_sigma -> ||mu_r - mu_s||^2 (module docstring), averaged over the kernels
    real, syn = feats(seed=7, n=6, m=3, d=5)
    weights = torch.rand(2, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for w in (None, weights):
        dm = dm_feature_loss(real, syn, w)
        wide = mmd_feature_loss(real, syn, w, bandwidths=(1e3, 3e3))
        assert math.isclose(float(wide), float(dm), rel_tol=1e-5)
    # the default, finite kernels see more than the means: a different loss
    assert not math.isclose(float(mmd_feature_loss(real, syn)), float(dm_feature_loss(real, syn)),
                            rel_tol=0.05)


def test_loss_scales_with_the_embedding_like_dm():
    # Both losses are homogeneous of degree 2 in the features: MMD's step size cannot
    # depend on how large a random network's embeddings happen to be.
    real, syn = feats(seed=9)
    for a in (1e-3, 10.0):
        assert math.isclose(float(mmd_feature_loss(a * real, a * syn)),
                            a * a * float(mmd_feature_loss(real, syn)), rel_tol=1e-9)
        assert math.isclose(float(dm_feature_loss(a * real, a * syn)),
                            a * a * float(dm_feature_loss(real, syn)), rel_tol=1e-9)


@pytest.mark.parametrize("depth", [2, 3])
def test_image_gradient_has_dm_size_on_random_convnets(depth):
    # DM's lr_img serves MMD: its image gradient is within 2.5x of DM's at widths 32 and
    # 128 (1.4-1.8x measured; unweighted kernels gave < 0.05x to 40x here, 22-273x on MNIST).
    digits = load("digits", "train")
    pool = torch.stack([digits.images[idx[:34]] for idx in digits.indices_by_class()])
    real = pool[:, :32]
    starts = {"real": pool[:, 32:], "noise": torch.randn(10, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))}
    for width in (32, 128):
        net = build_net(NetConfig(width=width, depth=depth), 1, 10, 8, seed=width).requires_grad_(False)
        real_feats = embed_by_class(net.embed, real).detach()
        for name, start in starts.items():
            norms = []
            for loss in (dm_feature_loss, mmd_feature_loss):
                syn = start.clone().requires_grad_(True)
                grad, = torch.autograd.grad(loss(real_feats, embed_by_class(net.embed, syn)), syn)
                norms.append(float(grad.norm()))
            assert 1 / 2.5 < norms[0] / norms[1] < 2.5, (width, name, norms)


def test_median_heuristic_is_the_median_pairwise_distance():
    real, _ = feats(seed=4, n=7)
    scale = median_heuristic(real)
    for c in range(2):
        assert math.isclose(float(scale[c]), float(torch.pdist(real[c]).median()), rel_tol=1e-9)
    with pytest.raises(ValueError, match="batch_real"):
        median_heuristic(real[:, :1])


def test_mmd_gradients_pass_gradcheck():
    real, syn = feats(seed=5, n=4, m=2, d=3)
    syn.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: mmd_feature_loss(real, s, bandwidths=BANDWIDTHS), (syn,))


def test_an_mmd_step_lowers_the_loss_on_a_fixed_net():
    net = build_net(TINY_NET, 1, 3, 8, seed=1).requires_grad_(False)
    gen = torch.Generator().manual_seed(6)
    real = torch.randn(3, 6, 1, 8, 8, generator=gen)
    syn = torch.randn(3, 2, 1, 8, 8, generator=gen).requires_grad_(True)
    real_feats = embed_by_class(net.embed, real)
    before = mmd_feature_loss(real_feats, embed_by_class(net.embed, syn))
    before.backward()
    with torch.no_grad():
        stepped = syn - 0.05 * syn.grad / syn.grad.norm()
    after = mmd_feature_loss(real_feats, embed_by_class(net.embed, stepped))
    assert after < before


def test_condense_mmd_rejects_single_real_image_batches_and_reports_divergence():
    real = toy_data()
    with pytest.raises(ValueError, match="batch_real"):
        condense("mmd", real, 1, config=MMDConfig(steps=1, batch_real=1), net_cfg=TINY_NET,
                 cache=False, quiet=True)
    with pytest.raises(FloatingPointError, match=r"mmd: .* at step \d+"):
        condense("mmd", real, 2, config=MMDConfig(steps=5, batch_real=4, lr_img=1e30),
                 net_cfg=TINY_NET, cache=False, quiet=True)
