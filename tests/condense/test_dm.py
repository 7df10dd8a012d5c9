"""DM: the loss against a naive per-class loop, its gradients, Prop. 4.3, and the condenser."""

from functools import partial

import pytest
import torch
from torch import nn

from ddrepro.augment import DSA, siamese_augment
from ddrepro.condense import condense
from ddrepro.condense.dm import cpu_chunk_size, dm_feature_loss, dm_loss, embed_real, real_class_means
from ddrepro.config import AugConfig, DMConfig, NetConfig
from ddrepro.data import ImageData
from ddrepro.nets import build_net
from ddrepro.robust import weighted_mean
from helpers import toy_image_data

TINY_NET = NetConfig(width=8, depth=2)




toy_data = partial(toy_image_data, n_per_class=10, classes=4)


def naive_dm_loss(embed, real_by_class, syn_by_class, real_weights=None):
    """Eq. 6 written the obvious way: one class at a time."""
    total = 0.0
    for c in range(real_by_class.shape[0]):
        real_feats = embed(real_by_class[c])
        syn_mean = embed(syn_by_class[c]).mean(0)
        if real_weights is None:
            real_mean = real_feats.mean(0)
        else:
            w = real_weights[c]
            real_mean = (w[:, None] * real_feats).sum(0) / w.sum()
        total = total + ((real_mean - syn_mean) ** 2).sum()
    return total


def small_batches(seed=0, classes=3, n=5, ipc=2, shape=(1, 8, 8), dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(classes, n, *shape, generator=gen, dtype=dtype)
    syn = torch.randn(classes, ipc, *shape, generator=gen, dtype=dtype)
    weights = torch.rand(classes, n, generator=gen, dtype=dtype) + 0.1
    return real, syn, weights


def test_dm_loss_equals_per_class_loop_with_and_without_weights():
    net = build_net(TINY_NET, 1, 3, 8, seed=0)
    real, syn, weights = small_batches()
    expected = naive_dm_loss(net.embed, real, syn)
    assert torch.allclose(dm_loss(net.embed, real, syn), expected, rtol=1e-5, atol=1e-6)
    expected_w = naive_dm_loss(net.embed, real, syn, weights)
    got_w = dm_loss(net.embed, real, syn, real_weights=weights)
    assert torch.allclose(got_w, expected_w, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got_w, expected, rtol=1e-3)  # the weights matter


def test_weights_of_ones_and_zero_weight_equal_dropping_the_sample():
    gen = torch.Generator().manual_seed(1)
    real_feats = torch.randn(3, 6, 4, generator=gen)
    syn_feats = torch.randn(3, 2, 4, generator=gen)
    plain = dm_feature_loss(real_feats, syn_feats)
    ones = dm_feature_loss(real_feats, syn_feats, torch.ones(3, 6))
    assert torch.allclose(plain, ones)
    weights = torch.ones(3, 6)
    weights[:, -1] = 0.0
    dropped = dm_feature_loss(real_feats[:, :-1], syn_feats)
    assert torch.allclose(dm_feature_loss(real_feats, syn_feats, weights), dropped)


def test_real_class_means_uses_the_registered_estimator_per_class():
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(4, 7, 3, generator=gen)
    weights = torch.rand(4, 7, generator=gen)
    means = real_class_means(feats, weights, "mean")
    for c in range(4):
        assert torch.allclose(means[c], weighted_mean(feats[c], weights[c]), atol=1e-6)
    with pytest.raises(ValueError, match="mean estimator"):
        real_class_means(feats, None, "no-such-estimator")


def test_dm_loss_gradients_pass_gradcheck_for_syn_and_real_images():
    real, syn, weights = small_batches(classes=2, n=3, ipc=2, shape=(1, 2, 2), dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    lin = nn.Linear(4, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 4, generator=gen, dtype=torch.float64))

    def embed(x):
        return torch.tanh(lin(x.flatten(1)))

    syn.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: dm_loss(embed, real, s, real_weights=weights), (syn,))
    real.requires_grad_(True)  # poisoning differentiates through the real side
    assert torch.autograd.gradcheck(lambda r: dm_loss(embed, r, syn.detach()), (real,))


def test_real_side_builds_no_graph_for_fixed_real_images():
    net = build_net(TINY_NET, 1, 3, 8, seed=0).requires_grad_(False)
    real, syn, _ = small_batches()
    seen = []

    def embed(x):
        out = net.embed(x)
        seen.append(out.requires_grad)
        return out

    dm_loss(embed, real, syn.requires_grad_(True))
    assert seen == [False, True]


def test_linear_extractor_drives_class_barycentres_together():
    """Dong et al. 2022, Prop. 4.3: with random linear extractors (k < d, no augmentation)
    the DM minimiser's class barycentres coincide with the real ones."""
    gen = torch.Generator().manual_seed(0)
    classes, n, ipc, k = 3, 20, 2, 4
    shape = (1, 2, 3)  # d = 6 > k
    real = torch.randn(classes, n, *shape, generator=gen) + torch.arange(classes).view(-1, 1, 1, 1, 1)
    syn = torch.randn(classes, ipc, *shape, generator=gen).requires_grad_(True)
    start_gap = (syn.detach().flatten(2).mean(1) - real.flatten(2).mean(1)).abs().max()
    optimizer = torch.optim.SGD([syn], lr=0.05, momentum=0.5)
    for _ in range(400):
        theta = torch.randn(k, 6, generator=gen)  # a fresh extractor every step, theta_ij ~ N(0, 1)
        loss = dm_loss(lambda x: x.flatten(1) @ theta.T, real, syn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    real_bary = real.flatten(2).mean(1)
    syn_bary = syn.detach().flatten(2).mean(1)
    assert start_gap > 0.5  # the barycentres started far apart
    assert torch.allclose(syn_bary, real_bary, atol=1e-4), (syn_bary - real_bary).abs().max()


def test_a_dm_step_lowers_the_loss_on_a_fixed_net():
    net = build_net(TINY_NET, 1, 3, 8, seed=1).requires_grad_(False)
    real, syn, _ = small_batches(seed=4)
    syn.requires_grad_(True)
    before = dm_loss(net.embed, real, syn)
    before.backward()
    with torch.no_grad():
        stepped = syn - 0.05 * syn.grad / syn.grad.norm()
    after = dm_loss(net.embed, real, stepped)
    assert after < before


def test_siamese_augment_gives_a_class_the_same_transform_on_both_sides():
    aug = DSA(AugConfig(), flip=True)
    gen = torch.Generator().manual_seed(5)
    real = torch.randn(4, 3, 3, 8, 8, generator=gen)
    syn = real[:, :2].clone()  # synthetic images identical to the first real ones
    real_aug, syn_aug = siamese_augment(aug, torch.Generator().manual_seed(6), real, syn)
    assert real_aug.shape == real.shape and syn_aug.shape == syn.shape
    assert torch.allclose(real_aug[:, :2], syn_aug, atol=1e-6)
    assert not torch.allclose(real_aug, real)


def test_condense_dm_noise_init_records_the_mean_estimator():
    real = toy_data()
    syn = condense("dm", real, 2, config=DMConfig(steps=2, batch_real=4, dsa=False),
                   init="noise", net_cfg=TINY_NET, cache=False, quiet=True)
    assert syn.images.shape == (8, 1, 8, 8) and syn.meta["config"]["mean_estimator"] == "mean"


def test_divergence_raises_naming_method_and_step():
    real = toy_data()
    with pytest.raises(FloatingPointError, match=r"dm: .* at step \d+"):
        condense("dm", real, 2, config=DMConfig(steps=5, batch_real=4, lr_img=1e30),
                 net_cfg=TINY_NET, cache=False, quiet=True)


def test_bad_inputs_raise_value_error_before_compute():
    with pytest.raises(ValueError, match="mean_estimator"):
        DMConfig(mean_estimator="median-of-nothing")
    with pytest.raises(ValueError, match="real_dtype"):
        DMConfig(real_dtype="float16")
    net = build_net(TINY_NET, 1, 3, 8, seed=0)
    real, syn, weights = small_batches()
    with pytest.raises(ValueError, match="num_classes, n, C, H, W"):
        dm_loss(net.embed, real.flatten(0, 1), syn)
    with pytest.raises(ValueError, match="real_weights"):
        dm_loss(net.embed, real, syn, real_weights=weights[:, :2])


def test_batchnorm_nets_follow_the_authors_bn_branch(monkeypatch):
    # main_DM.py's BN branch: every class's real images through the net as one batch, every
    # synthetic image as another, train mode, loss on the class means of each. Replayed by
    # hand from condense's own draws (init, then the step's network seed); batch_real is a
    # whole class, so the order of the real rows (and BN's batch statistics) is fixed.
    import ddrepro.condense.dm as dm_module
    from ddrepro.condense import initial_synthetic
    from ddrepro.runtime import make_generator

    monkeypatch.setattr(dm_module, "CPU_CHUNK_BYTES", 1)  # a chunked real side would be 1 image a chunk
    real, bn = toy_data(), NetConfig(width=8, depth=2, norm="batchnorm")
    cfg = DMConfig(steps=1, batch_real=10, lr_img=1.0, dsa=False)
    syn = condense("dm", real, 2, config=cfg, seed=3, net_cfg=bn, device="cpu", quiet=True, cache=False,
                   record_every=1)

    gen = make_generator(3)
    class_indices = [torch.nonzero(real.labels == c).flatten() for c in range(4)]
    start, _, _ = initial_synthetic(real.images, class_indices, 2, "real", gen)
    net = build_net(bn, 1, 4, 8, seed=int(torch.randint(0, 2**62, (1,), generator=gen)))
    net.train().requires_grad_(False)
    images_real_all = torch.cat([real.images[idx] for idx in class_indices])
    image_syn = start.clone().requires_grad_(True)
    output_real = net.embed(images_real_all).detach()
    output_syn = net.embed(image_syn)
    loss = torch.sum((output_real.reshape(4, 10, -1).mean(1) - output_syn.reshape(4, 2, -1).mean(1)) ** 2)
    loss.backward()
    assert torch.allclose(syn.images, start - 1.0 * image_syn.grad, atol=1e-5)  # one SGD step
    assert float(syn.history["loss"][1]) == pytest.approx(float(loss.detach()), rel=1e-5)
    # embedding class by class (the non-BN branch's way) gives other BN statistics, another loss
    per_class = sum(torch.sum((net.embed(real.images[idx]).mean(0) - net.embed(start[2 * c:2 * c + 2]).mean(0)) ** 2)
                    for c, idx in enumerate(class_indices))
    assert abs(float(per_class) - float(loss.detach())) > 1e-3 * float(loss.detach())


def test_per_sample_weights_on_the_real_set_reach_the_class_means():
    # Weights of ones are the unweighted run; weights that silence half of every
    # class change the synthetic set (the debiasing chapter relies on this path).
    real = toy_data()
    cfg = DMConfig(steps=3, batch_real=10, dsa=False)
    kw = dict(config=cfg, net_cfg=TINY_NET, cache=False, quiet=True, seed=0)
    plain = condense("dm", real, 2, **kw)
    ones = ImageData(real.images, real.labels, "toy", "train", (0.0,), (1.0,), real.classes,
                     flip_ok=False, weights=torch.ones(len(real)))
    assert torch.allclose(condense("dm", ones, 2, **kw).images, plain.images, atol=1e-5)
    half = torch.arange(len(real)) % 8 < 4  # 5 of the 10 images of every class
    halved = ImageData(real.images, real.labels, "toy", "train", (0.0,), (1.0,), real.classes,
                       flip_ok=False, weights=half.float())
    assert not torch.allclose(condense("dm", halved, 2, **kw).images, plain.images, atol=1e-3)
    assert halved.digest() != real.digest()
    with pytest.raises(ValueError, match="non-negative"):
        ImageData(real.images, real.labels, "toy", "train", (0.0,), (1.0,), real.classes,
                  weights=-torch.ones(len(real)))


def test_bfloat16_real_side_changes_class_means_far_less_than_resampling_does():
    # The opt-in low-precision real side must be a rounding-level change: the
    # class means move much less than they do between two real batches, and
    # the gradient on the synthetic images keeps its direction.
    net = build_net(NetConfig(width=32, depth=3), 1, 3, 28, seed=0).requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    prototypes = torch.randn(3, 1, 1, 28, 28, generator=gen)
    real = prototypes + 0.5 * torch.randn(3, 64, 1, 28, 28, generator=gen)
    other = prototypes + 0.5 * torch.randn(3, 64, 1, 28, 28, generator=gen)
    syn = torch.randn(3, 2, 1, 28, 28, generator=gen, requires_grad=True)

    feats32 = embed_real(net.embed, real)
    feats16 = embed_real(net.embed, real, chunk_size=16, dtype="bfloat16")
    assert feats16.dtype == torch.float32 and not torch.equal(feats16, feats32)
    means32, means16 = feats32.mean(1), feats16.mean(1)
    resampled = embed_real(net.embed, other).mean(1)
    assert (means16 - means32).norm() < 0.2 * (resampled - means32).norm()

    syn_feats = net.embed(syn.flatten(0, 1)).view(3, 2, -1)
    grad32, = torch.autograd.grad(dm_feature_loss(feats32, syn_feats), syn, retain_graph=True)
    grad16, = torch.autograd.grad(dm_feature_loss(feats16, syn_feats), syn)
    assert torch.nn.functional.cosine_similarity(grad32.flatten(), grad16.flatten(), dim=0) > 0.99


def test_chunked_real_embedding_equals_one_batch_and_chunks_fit_the_byte_budget():
    net = build_net(TINY_NET, 1, 3, 8, seed=0).requires_grad_(False)
    real, _, _ = small_batches(n=7)
    assert torch.allclose(embed_real(net.embed, real, chunk_size=4), embed_real(net.embed, real), atol=1e-6)
    # first-layer maps: 128 x 32 x 32 float32 = 512 KiB per image; width 32 -> 4x as many
    assert cpu_chunk_size(NetConfig(width=128), (3, 32, 32)) == 32
    assert cpu_chunk_size(NetConfig(width=32), (1, 28, 28)) == 128
