"""The infinite-width ReLU kernels and KIP (kernel inducing points)."""

import dataclasses
import math

import pytest
import torch
from torch.func import jacrev, vmap

from ddrepro.condense import condense, kip
from ddrepro.condense.base import Context
from ddrepro.condense.kip import (centred_onehot, kip_loss, kip_optimise, krr_loss,
                                  target_indices, targets_to_soft_labels)
from ddrepro.config import AugConfig, KIPConfig
from ddrepro.data import ImageData
from ddrepro.kernels import relu_kernels, relu_nngp, relu_ntk

F64 = torch.float64


def points(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


# -- kernels ----------------------------------------------------------------

def empirical_ntk(x, width, seed, sigma_w2=2.0, sigma_b2=0.1):
    """Gradient inner products of a finite 1-hidden-layer ReLU net in the NTK parametrisation."""
    gen = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    params = {"w1": torch.randn(width, d, generator=gen, dtype=F64),
              "b1": torch.randn(width, generator=gen, dtype=F64),
              "w2": torch.randn(1, width, generator=gen, dtype=F64),
              "b2": torch.randn(1, generator=gen, dtype=F64)}
    sw, sb = math.sqrt(sigma_w2), math.sqrt(sigma_b2)

    def f(p, xi):
        hidden = torch.relu(sw / math.sqrt(d) * p["w1"] @ xi + sb * p["b1"])
        return (sw / math.sqrt(width) * p["w2"] @ hidden + sb * p["b2"]).squeeze()

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    flat = torch.cat([j.flatten(1) for j in jac.values()], 1)
    return flat @ flat.T


def test_ntk_matches_wide_finite_networks_and_error_shrinks_with_width():
    x = points(6, 5)
    ntk = relu_ntk(x, depth=1, sigma_b2=0.1)

    def error(width):  # root-mean-square relative error over 3 random networks
        errs = [((empirical_ntk(x, width, s) - ntk).norm() / ntk.norm()) ** 2 for s in range(3)]
        return math.sqrt(sum(errs) / 3)

    narrow, wide = error(512), error(8192)
    assert wide < 0.05  # O(1/sqrt(width)) fluctuations
    assert wide < narrow / 2  # 16x the width: ~4x smaller error expected


def test_kernels_symmetric_psd_and_cross_kernel_agrees():
    x = points(20, 10)
    for depth in (1, 3):
        nngp, ntk = relu_kernels(x, depth=depth, sigma_b2=0.05)
        for k in (nngp, ntk):
            torch.testing.assert_close(k, k.T)
            eigs = torch.linalg.eigvalsh(k)
            assert eigs.min() > -1e-10 * eigs.max()
        torch.testing.assert_close(relu_ntk(x, x.clone(), depth=depth, sigma_b2=0.05), ntk, rtol=1e-5, atol=0)


def test_depth0_is_the_linear_kernel_and_diagonals_follow_by_hand():
    x = points(4, 8)
    sq = (x * x).sum(1) / 8  # |x|^2 / d
    nngp, ntk = relu_kernels(x, depth=0, sigma_b2=0.3)
    expected = 2.0 * x @ x.T / 8 + 0.3
    torch.testing.assert_close(nngp, expected)
    torch.testing.assert_close(ntk, expected)
    # depth 1, sigma_b = 0: Sigma^2 = 2 * (2s)/2 = 2s, Theta^2 = 2s * 2 * 1/2 + 2s = 4s
    nngp, ntk = relu_kernels(x, depth=1)
    torch.testing.assert_close(nngp.diagonal(), 2 * sq)
    torch.testing.assert_close(ntk.diagonal(), 4 * sq)
    # depth 2, sigma_b^2 = b: S1 = 2s + b, S2 = S1 + b, S3 = S2 + b; Theta adds S each layer (k0 = 1/2)
    b = 0.1
    nngp, ntk = relu_kernels(x, depth=2, sigma_b2=b)
    s1 = 2 * sq + b
    torch.testing.assert_close(nngp.diagonal(), s1 + 2 * b)
    torch.testing.assert_close(ntk.diagonal(), s1 + (s1 + b) + (s1 + 2 * b))


def test_orthogonal_and_opposite_inputs_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=F64)
    nngp, ntk = relu_kernels(x, depth=1)
    s = 2.0 * 1.0 / 2  # Sigma^1(x, x) = 2 |x|^2 / d
    # orthogonal: angle pi/2, k1 = s / (2 pi), k0 = 1/4, Sigma^1 = 0 -> Theta^2 = Sigma^2 = s / pi
    assert nngp[0, 1].item() == pytest.approx(s / math.pi, rel=1e-9)
    assert ntk[0, 1].item() == pytest.approx(s / math.pi, rel=1e-9)
    # opposite: angle pi, everything vanishes (up to the arccos clamp)
    assert abs(nngp[0, 2].item()) < 1e-5 and abs(ntk[0, 2].item()) < 1e-5


def test_kernel_gradients_are_correct_and_finite_at_coincident_points():
    x1, x2 = points(3, 4, seed=1), points(2, 4, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda b: relu_ntk(x1, b, depth=2, sigma_b2=0.1), (x2,))
    same = x1.clone().float().requires_grad_(True)
    relu_ntk(x1.float(), same, depth=2).sum().backward()
    assert torch.isfinite(same.grad).all()
    assert relu_nngp(x1, depth=1).shape == (3, 3)


def test_kernel_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        relu_ntk(points(3, 4), points(3, 5))
    with pytest.raises(ValueError, match="depth"):
        relu_ntk(points(3, 4), depth=-1)
    with pytest.raises(ValueError, match="sigma_w2"):
        relu_ntk(points(3, 4), sigma_w2=0.0)


# -- KIP ----------------------------------------------------------------------

PAPER_KERNEL = {"depth": 1, "sigma_w2": 2.0, "sigma_b2": 1e-4}


def blobs(n_per_class=20, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(classes, 16, generator=gen)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = (centres[labels] + torch.randn(len(labels), 16, generator=gen)).view(-1, 1, 4, 4)
    return images, labels


def kip_context(images, labels, cfg, seed=0):
    """The Context :func:`condense` would build, for calling the KIP loop directly."""
    classes = int(labels.max()) + 1
    return Context(method="kip", real_images=images, real_labels=labels,
                   class_indices=[torch.nonzero(labels == c).flatten() for c in range(classes)],
                   num_classes=classes, ipc=2, config=cfg, net_cfg=None, aug_cfg=None, flip=False,
                   device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed), seed=seed,
                   quiet=True)


def test_centred_labels_and_their_soft_label_map():
    y = centred_onehot(torch.tensor([0, 2]), 4)
    torch.testing.assert_close(y, torch.tensor([[0.75, -0.25, -0.25, -0.25], [-0.25, -0.25, 0.75, -0.25]]))
    torch.testing.assert_close(targets_to_soft_labels(y), torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]))
    learned = torch.tensor([[0.5, 0.25, -0.75], [-1.0, -1.0, -1.0]])  # C = 3: add 1/3, clip, renormalise
    expected = torch.tensor([[5 / 6, 7 / 12, 0.0], [1, 1, 1]])
    expected = expected / expected.sum(1, keepdim=True)
    torch.testing.assert_close(targets_to_soft_labels(learned), expected)


def test_krr_loss_is_half_the_mean_squared_residual_by_hand():
    # K_ss = [[2, 1], [1, 2]], reg 0.5: lambda = 0.5 * 4 / 2 = 1, (K_ss + I)^-1 = [[3, -1], [-1, 3]] / 8
    k_ss = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=F64)
    y_s = torch.eye(2, dtype=F64)
    k_ts = torch.tensor([[1.0, 1.0], [2.0, 0.0]], dtype=F64)
    y_t = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64)
    # predictions [[1/4, 1/4], [3/4, -1/4]]: squared residuals 9/16, 1/16, 1/16, 1/16 sum to 3/4
    assert krr_loss(k_ts, k_ss, y_t, y_s, reg=0.5).item() == pytest.approx(0.5 * 0.75 / 4, rel=1e-12)
    # a mean, not a sum: repeating the target batch leaves the loss unchanged
    twice = krr_loss(torch.cat([k_ts, k_ts]), k_ss, torch.cat([y_t, y_t]), y_s, reg=0.5)
    assert twice.item() == pytest.approx(0.5 * 0.75 / 4, rel=1e-12)


def test_krr_loss_vanishes_when_the_support_is_the_target_set():
    images, labels = blobs()
    y = centred_onehot(labels, 3)
    loss = kip_loss(images, y, images, y, reg=1e-10, **PAPER_KERNEL)
    assert loss.item() < 1e-8 * (y ** 2).mean().item()
    # a large ridge shrinks the prediction towards 0: the loss approaches 0.5 * mean(y^2)
    k = relu_ntk(images.double(), sigma_b2=1e-4)
    expected = 0.5 * (y ** 2).mean().item()
    assert krr_loss(k, k, y.double(), y.double(), reg=1e6).item() == pytest.approx(expected, rel=1e-3)


def test_kip_config_holds_the_papers_kernel_and_checks_it():
    cfg = KIPConfig()
    assert (cfg.sigma_w2, cfg.sigma_b2) == (2.0, 1e-4)
    with pytest.raises(ValueError, match="sigma_b2"):
        KIPConfig(sigma_b2=-1e-4)
    with pytest.raises(ValueError, match="sigma_w2"):
        KIPConfig(sigma_w2=0.0)
    assert KIPConfig(sigma_b2=0.0).sigma_b2 == 0.0  # no bias is allowed


def test_kip_passes_the_config_kernel_variances(monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append((kwargs["sigma_w2"], kwargs["sigma_b2"]))
        return relu_ntk(*args, **kwargs)

    monkeypatch.setattr(kip, "relu_ntk", spy)
    images, labels = blobs(n_per_class=4)
    syn = centred_onehot(torch.arange(3).repeat_interleave(2), 3)
    for cfg in (KIPConfig(steps=1, batch_real=6), KIPConfig(steps=1, batch_real=6, sigma_w2=1.5, sigma_b2=0.3)):
        seen.clear()
        kip_optimise(kip_context(images, labels, cfg), images[::2], syn, cfg, 1)
        assert seen and set(seen) == {(cfg.sigma_w2, cfg.sigma_b2)}


def test_target_batches_are_class_balanced():
    labels = torch.tensor([0] * 30 + [1] * 10 + [2] * 20)
    images = torch.randn(60, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    ctx = kip_context(images, labels, KIPConfig())
    for batch_real, per_class in ((17, 5), (3, 1), (90, 10)):  # rounded down to 3n; n capped by class 1
        pick = target_indices(ctx, batch_real)
        assert torch.bincount(labels[pick], minlength=3).tolist() == [per_class] * 3
        assert pick.unique().numel() == pick.numel()  # without replacement
    with pytest.raises(ValueError, match="batch_real = 2"):
        target_indices(ctx, 2)


def test_kip_loop_draws_class_balanced_targets(monkeypatch):
    counts = []

    def spy(x_t, y_t, *args, **kwargs):
        counts.append(torch.bincount(y_t.argmax(1), minlength=3).tolist())
        return kip_loss(x_t, y_t, *args, **kwargs)

    monkeypatch.setattr(kip, "kip_loss", spy)
    images, labels = blobs(n_per_class=10)
    images, labels = images[:-7], labels[:-7]  # unbalanced: 10, 10, 3 images
    cfg = KIPConfig(steps=3, batch_real=8)
    syn = centred_onehot(torch.arange(3).repeat_interleave(2), 3)
    kip_optimise(kip_context(images, labels, cfg), images[[0, 1, 10, 11, 20, 21]], syn, cfg, 3)
    assert counts == [[2, 2, 2]] * 3  # 8 // 3 = 2 per class, every step


@pytest.mark.parametrize("learn_labels", [True, False])
def test_kip_loss_decreases_over_steps(learn_labels):
    images, labels = blobs()
    syn_labels = torch.arange(3).repeat_interleave(2)
    syn = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    cfg = KIPConfig(steps=30, batch_real=60, lr_img=0.05, learn_labels=learn_labels)
    start = centred_onehot(syn_labels, 3)
    _, targets, losses = kip_optimise(kip_context(images, labels, cfg), syn, start, cfg)
    assert len(losses) == 30 and losses[-1] < 0.25 * losses[0]
    assert torch.equal(targets, start) is (not learn_labels)


def test_condense_kip_soft_and_hard_labels_and_determinism():
    images, labels = blobs(n_per_class=10)
    real = ImageData(images, labels, "blobs", "train", (0.0,), (1.0,), ("a", "b", "c"), flip_ok=False)
    cfg = KIPConfig(steps=3, batch_real=20)
    a = condense("kip", real, 2, config=cfg, seed=0, device="cpu", quiet=True, cache=False)
    b = condense("kip", real, 2, config=cfg, seed=0, device="cpu", quiet=True, cache=False)
    assert a.images.shape == (6, 1, 4, 4) and a.soft and a.labels.shape == (6, 3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert (a.labels >= 0).all() and torch.allclose(a.labels.sum(1), torch.ones(6))
    assert a.hard_labels().tolist() == [0, 0, 1, 1, 2, 2]  # 3 small steps keep the class
    hard = condense("kip", real, 1, config=KIPConfig(steps=2, batch_real=20, learn_labels=False),
                    device="cpu", quiet=True, cache=False)
    assert hard.labels.dtype == torch.int64 and hard.labels.tolist() == [0, 1, 2]


def test_kip_loss_rejects_mismatched_targets():
    images, labels = blobs()
    with pytest.raises(ValueError, match="one target row per image"):
        kip_loss(images, centred_onehot(labels, 3)[:5], images, centred_onehot(labels, 3), reg=1e-6,
                 **PAPER_KERNEL)


def test_kip_dsa_augments_targets_and_support_with_one_draw_per_class(monkeypatch):
    # each class's real images are copies of one image, and its support images copies of the
    # same image: a Siamese draw per class keeps every augmented target equal to every augmented
    # support image of its class, while the augmentation itself moves the images
    seen = []

    def spy(x_t, y_t, x_s, y_s, **kwargs):
        seen.append((x_t.detach().clone(), y_t.argmax(1), x_s.detach().clone()))
        return kip_loss(x_t, y_t, x_s, y_s, **kwargs)

    monkeypatch.setattr(kip, "kip_loss", spy)
    gen = torch.Generator().manual_seed(3)
    protos = torch.randn(3, 1, 8, 8, generator=gen)
    labels = torch.arange(3).repeat_interleave(6)
    images, syn = protos[labels], protos.repeat_interleave(2, 0)
    syn_targets = centred_onehot(torch.arange(3).repeat_interleave(2), 3)
    cfg = KIPConfig(steps=4, batch_real=9, lr_img=1e-9, dsa=True)
    ctx = kip_context(images, labels, cfg)
    ctx = dataclasses.replace(ctx, aug_cfg=AugConfig(strategy="crop_scale_rotate"))
    kip_optimise(ctx, syn, syn_targets, cfg, 4)
    moved = False
    for x_t, y_t, x_s in seen:
        for c in range(3):
            t, s = x_t[y_t == c], x_s[2 * c: 2 * c + 2]
            torch.testing.assert_close(t, t[:1].expand_as(t), atol=1e-5, rtol=0)
            torch.testing.assert_close(s, t[:2], atol=1e-5, rtol=0)
            moved |= not torch.allclose(s[0], protos[c], atol=1e-3)
    assert moved
    # without DSA the kernel sees the support images themselves
    seen.clear()
    plain = KIPConfig(steps=1, batch_real=9, lr_img=1e-9)
    kip_optimise(kip_context(images, labels, plain), syn, syn_targets, plain, 1)
    torch.testing.assert_close(seen[0][2], syn)


def test_kip_dsa_refuses_support_sets_it_cannot_split_by_class():
    images, labels = blobs(n_per_class=4)
    cfg = KIPConfig(steps=1, batch_real=6, dsa=True)
    with pytest.raises(ValueError, match="equal class blocks"):
        kip_optimise(kip_context(images, labels, cfg), images[:5], centred_onehot(labels[:5], 3), cfg, 1)
