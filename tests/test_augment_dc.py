"""DC's evaluation augmentation: the ops against the reference's per-image code, seeds, fills."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import rotate as scipy_rotate

from ddrepro.augment_dc import DCAugment, DCParams, group_channel_means
from ddrepro.config import DCAugConfig, EvalConfig, NetConfig, dc_protocol
from ddrepro.reference import train_model_loop
from ddrepro.train import train_models


def images(n=6, c=1, size=12, seed=0):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed)) + 0.3


def only(op, **magnitudes):
    return DCAugment(DCAugConfig(strategy=op, **magnitudes))


def params_for(aug, n, **rows):
    """Drawn params with some fields replaced (e.g. a chosen crop offset)."""
    p = aug.sample_params(n, torch.Generator().manual_seed(0))
    return DCParams(**(p._tensors() | rows))


def reference_crop(batch, i, r, c, crop):
    """The authors' cropfun for image i: pad with the batch's channel means, take a window."""
    mean = batch.mean((0, 2, 3))
    _, ch, h, w = batch.shape
    padded = mean.view(ch, 1, 1).expand(ch, h + 2 * crop, w + 2 * crop).clone()
    padded[:, crop:crop + h, crop:crop + w] = batch[i]
    return padded[:, r:r + h, c:c + w]


def reference_scale(image, new_h, new_w):
    """The authors' scalefun for one image, given the drawn sizes."""
    ch, h, w = image.shape
    tmp = F.interpolate(image[None], [new_h, new_w])[0]
    side = max(new_h, new_w, h, w)
    canvas = torch.zeros(ch, side, side)
    r, c = int((side - new_h) / 2), int((side - new_w) / 2)
    canvas[:, r:r + new_h, c:c + new_w] = tmp
    r, c = int((side - h) / 2), int((side - w) / 2)
    return canvas[:, r:r + h, c:c + w]


def test_shapes_and_determinism_by_seed():
    aug = DCAugment()
    x = images(n=16, c=3)
    a = aug.apply(x, aug.sample_params(16, torch.Generator().manual_seed(1)))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    ops = aug.sample_params(3000, torch.Generator().manual_seed(3)).ops
    assert torch.bincount(ops).tolist() == pytest.approx([1000] * 3, rel=0.1)  # one op per image


@pytest.mark.parametrize("op", ["crop", "scale", "rotate", "noise"])
def test_zero_magnitude_is_the_identity(op):
    aug = only(op, **{op: 0 if op in ("crop", "rotate") else 0.0})
    x = images(n=5, c=3)
    out = aug(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)  # rotation by 0: grid_sample rounding


def test_crop_is_the_reference_window_with_channel_mean_fill():
    aug = only("crop")
    x = images(n=4, c=3)
    offsets = torch.tensor([[0, 0], [7, 7], [4, 4], [1, 6]])
    out = aug.apply(x, params_for(aug, 4, crop=offsets))
    for i, (r, c) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], reference_crop(x, i, r, c, 4))
    mean = x.mean((0, 2, 3))  # the *batch's* channel means, not the image's
    assert torch.allclose(out[0, :, :4, :], mean.view(3, 1, 1).expand(3, 4, 12))
    assert torch.equal(out[2], x[2])                                            # offset 4: no shift
    draws = aug.sample_params(4000, torch.Generator().manual_seed(0)).crop
    assert draws.min() == 0 and draws.max() == 7                                # shifts -4 ... 3


def test_scale_is_the_reference_nearest_resize_with_zero_canvas():
    aug = only("scale")
    x = images(n=40, c=2, size=28)
    p = aug.sample_params(40, torch.Generator().manual_seed(4))
    out = aug.apply(x, p)
    sizes = (p.scale.double() * 28).floor().long()
    assert sizes.min() < 28 < sizes.max()                     # both zoom-out and zoom-in drawn
    for i in range(40):
        assert torch.equal(out[i], reference_scale(x[i], *sizes[i].tolist())), i


def test_rotate_matches_scipy_bilinear_and_fills_with_the_mean_of_channel_means():
    aug = only("rotate")
    x = images(n=3, c=3, size=16)
    angles = torch.tensor([30, -45, 90])
    out = aug.apply(x, params_for(aug, 3, rotate=angles))
    level = float(x.mean((0, 2, 3)).mean())
    for i, angle in enumerate(angles.tolist()):
        # scipy's order-1 rotation (our interpolation) in the reference's sense and centre
        ref = scipy_rotate(x[i].numpy(), angle, axes=(-2, -1), reshape=False, order=1, cval=level)
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-4)
    corners = out[1, :, [0, 0, -1, -1], [0, -1, 0, -1]]       # rotated 45 degrees: all fill
    assert torch.allclose(corners, torch.full_like(corners, level), atol=1e-5)


def test_rotate_stays_close_to_the_reference_cubic_spline():
    # the stated deviation (bilinear vs order-3 spline on a grown canvas) in numbers:
    # on smooth MNIST-like strokes the two rotations differ by a few % of the pixel range
    aug = only("rotate")
    x = F.avg_pool2d(images(n=1, size=32, seed=5), 3, 1, 1)[:, :, 2:30, 2:30]
    for angle in (-45, -20, 17, 44):
        ours = aug.apply(x, params_for(aug, 1, rotate=torch.tensor([angle])))[0]
        big = scipy_rotate(x[0].numpy(), angle, axes=(-2, -1), cval=float(x.mean()))
        r, c = int((big.shape[-2] - 28) / 2), int((big.shape[-1] - 28) / 2)
        ref = torch.from_numpy(big[:, r:r + 28, c:c + 28])
        assert (ours - ref).abs().mean() < 0.1 * (x.max() - x.min())


def test_noise_adds_seeded_gaussian_noise():
    aug = only("noise", noise=0.5)
    x = images(n=200)
    p = aug.sample_params(200, torch.Generator().manual_seed(0))
    diff = aug.apply(x, p) - x
    assert diff.std().item() == pytest.approx(0.5, rel=0.05)
    assert torch.equal(aug.apply(x, p), aug.apply(x, p))


def test_concatenated_batches_fill_from_their_own_batch():
    aug = DCAugment(DCAugConfig(strategy="crop_rotate"))
    a, b = images(n=3, c=2, seed=1), images(n=5, c=2, seed=2) + 3.0
    pa = aug.sample_params(3, torch.Generator().manual_seed(1))
    pb = aug.sample_params(5, torch.Generator().manual_seed(2))
    joined = aug.apply(torch.cat([a, b]), DCParams.cat([pa, pb]))
    torch.testing.assert_close(joined, torch.cat([aug.apply(a, pa), aug.apply(b, pb)]), rtol=0, atol=1e-6)
    groups = torch.tensor([0, 0, 1])
    means = group_channel_means(torch.cat([a[:2], b[:1]]), groups)
    assert torch.allclose(means[0], a[:2].mean((0, 2, 3))) and torch.allclose(means[2], b[0].mean((1, 2)))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="DCAugConfig.strategy"):
        DCAugConfig(strategy="crop_flip")
    with pytest.raises(ValueError, match="DCAugConfig.scale"):
        DCAugConfig(scale=1.0)
    with pytest.raises(ValueError, match="EvalConfig.augment"):
        EvalConfig(augment="dsa+dc")
    aug = DCAugment()
    with pytest.raises(ValueError, match="one DCParams row per image"):
        aug.apply(images(n=3), aug.sample_params(2, torch.Generator()))


def test_dc_protocol_per_data_set():
    paper = EvalConfig()
    assert dc_protocol(paper, "MNIST") == EvalConfig(augment="dc")
    assert dc_protocol(paper, "fashion-mnist") == EvalConfig(augment="none", epochs=300)
    cpu = EvalConfig(epochs=100, n_models=2)
    assert dc_protocol(cpu, "fashion_mnist") == EvalConfig(epochs=30, n_models=2, augment="none")
    assert dc_protocol(EvalConfig(epochs=2), "cifar10").epochs == 1       # never 0
    assert dc_protocol(EvalConfig(epochs=3000), "svhn").epochs == 300
    with pytest.raises(ValueError, match="unknown data set"):
        dc_protocol(paper, "imagenet")


def test_training_with_dc_augmentation_runs_and_keeps_model_keys():
    x, labels = images(n=12, size=12), torch.arange(4).repeat(3)
    kw = dict(net_cfg=NetConfig(width=8, depth=2), eval_cfg=EvalConfig(epochs=2, batch_size=5, n_models=3,
              augment="dc"), num_classes=4, seed=3, aug=DCAugment(), device="cpu", quiet=True)
    together = train_models(x, labels, engine="unrolled", **kw)
    alone = train_models(x, labels, engine="unrolled", n_models=1, first_model=2, **kw)
    loop = train_model_loop(x, labels, 2, **{k: v for k, v in kw.items()})
    plain = train_models(x, labels, engine="unrolled", **(kw | {"aug": None}))
    for name, p in together.params.items():
        assert torch.isfinite(p).all()
        assert torch.equal(p[2], alone.params[name][0])                  # model 2 depends on (3, 2) only
        assert torch.equal(p[2], loop.state_dict()[name])                # = the plain reference loop
    assert not torch.equal(together.params["classifier.weight"], plain.params["classifier.weight"])
