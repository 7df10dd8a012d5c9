"""Differentiable Siamese augmentation: known answers, Siamese sharing, gradients, invariants."""

from __future__ import annotations

import math

import pytest
import torch

from ddrepro.augment import ALL_OPS, AugParams, DSA
from ddrepro.config import AugConfig


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, c: int = 3, h: int = 16, w: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=gen(seed))


def with_op(dsa: DSA, params: AugParams, name: str, **fields) -> AugParams:
    """``params`` forced to op ``name``, with some magnitude fields overridden."""
    k = dsa.ops.index(name)
    values = {f: getattr(params, f) for f in ("brightness", "saturation", "contrast", "crop",
                                               "cutout", "flip", "scale", "rotate")}
    values.update({f: torch.as_tensor(v) for f, v in fields.items()})
    return AugParams(ops=torch.full_like(params.ops, k), **values, op_set=(k,))


def params_equal(a: AugParams, b: AugParams) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in
               ("ops", "brightness", "saturation", "contrast", "crop", "cutout", "flip", "scale", "rotate"))


# -- construction and bad input -------------------------------------------

def test_ops_follow_strategy_and_flip_flag():
    assert DSA().ops == ALL_OPS
    assert DSA(flip=False).ops == ("color", "crop", "cutout", "scale", "rotate")
    assert DSA(AugConfig(strategy="crop_rotate")).ops == ("crop", "rotate")


@pytest.mark.parametrize("strategy", ["color_crop_blur", "colour", "crop_crop", ""])
def test_bad_strategy_raises(strategy):
    with pytest.raises(ValueError):
        DSA(AugConfig(strategy=strategy))


def test_flip_only_strategy_without_flip_raises():
    with pytest.raises(ValueError, match="no op"):
        DSA(AugConfig(strategy="flip"), flip=False)


@pytest.mark.parametrize("bad", [torch.zeros(3, 8, 8), torch.zeros(1, 1, 3, 8, 8),
                                 torch.zeros(2, 1, 8, 8, dtype=torch.int64)])
def test_apply_rejects_non_4d_or_integer_tensors(bad):
    dsa = DSA()
    with pytest.raises(ValueError):
        dsa.apply(bad, dsa.sample_params(1, gen()))
    with pytest.raises(ValueError):
        dsa(bad, gen())


def test_apply_rejects_wrong_row_count():
    dsa = DSA()
    with pytest.raises(ValueError, match="rows"):
        dsa.apply(images(n=4), dsa.sample_params(3, gen()))


@pytest.mark.parametrize("n", [-1, 2.0, True])
def test_sample_params_rejects_bad_n(n):
    with pytest.raises(ValueError):
        DSA().sample_params(n, gen())


def test_params_from_another_dsa_rejected():
    wide = DSA()
    narrow = DSA(AugConfig(strategy="crop_cutout"))
    rows = with_op(wide, wide.sample_params(2, gen()), "rotate")  # index 5, narrow has 2 ops
    with pytest.raises(ValueError, match="indices"):
        narrow.apply(images(n=2), rows)


# -- sampling ---------------------------------------------------------------

def test_magnitudes_lie_in_the_papers_ranges():
    cfg = AugConfig()
    p = DSA(cfg).sample_params(4000, gen(), per_sample_op=True)
    assert p.brightness.abs().max() <= 0.5 * cfg.brightness
    assert 0.0 <= p.saturation.min() and p.saturation.max() <= cfg.saturation
    assert cfg.contrast <= p.contrast.min() and p.contrast.max() <= 1.0 + cfg.contrast
    assert 1 / cfg.scale <= p.scale.min() and p.scale.max() <= cfg.scale
    assert p.rotate.abs().max() <= math.radians(cfg.rotate)
    # the ranges are actually used, not a sliver of them
    assert p.brightness.min() < -0.45 and p.brightness.max() > 0.45
    assert p.rotate.abs().max() > math.radians(cfg.rotate) * 0.95
    assert 0.4 < p.flip.float().mean() < 0.6
    assert set(p.ops.tolist()) == set(range(6))


def test_one_op_per_call_unless_per_sample():
    dsa = DSA()
    for seed in range(5):
        assert p_unique(dsa.sample_params(50, gen(seed))) == 1
    assert p_unique(dsa.sample_params(200, gen(), per_sample_op=True)) == 6


def p_unique(p: AugParams) -> int:
    return torch.unique(p.ops).numel()


def test_flip_never_drawn_without_flip():
    dsa = DSA(flip=False)
    drawn = dsa.sample_params(2000, gen(), per_sample_op=True).ops
    assert "flip" not in {dsa.ops[k] for k in drawn.tolist()}
    x = images(n=1)
    for seed in range(40):  # per-call draws too: no output is ever a pure mirror
        assert not torch.equal(dsa(x, gen(seed)), x.flip(3))


def test_same_seed_same_params_and_output_different_seed_differs():
    dsa, x = DSA(), images()
    assert params_equal(dsa.sample_params(6, gen(3)), dsa.sample_params(6, gen(3)))
    assert torch.equal(dsa(x, gen(3)), dsa(x, gen(3)))
    outs = [dsa(x, gen(s)) for s in range(4)]
    assert all(not torch.equal(outs[0], o) for o in outs[1:])


# -- AugParams rows -------------------------------------------------------

def test_index_and_cat_round_trip():
    p = DSA().sample_params(7, gen(), per_sample_op=True)
    assert len(p) == 7
    assert params_equal(p.index(torch.arange(7)), p)
    assert params_equal(AugParams.cat([p.index(torch.arange(3)), p.index(torch.arange(3, 7))]), p)
    mask = torch.tensor([True, False, True, False, False, False, True])
    assert params_equal(p.index(mask), p.index(torch.tensor([0, 2, 6])))
    assert len(AugParams.cat([p, p])) == 14


def test_cat_of_single_op_rows_keeps_both_ops():
    dsa = DSA()
    a = with_op(dsa, dsa.sample_params(2, gen(0)), "flip", flip=torch.tensor([True, True]))
    b = with_op(dsa, dsa.sample_params(2, gen(1)), "crop")
    both = AugParams.cat([a, b])
    x = images(n=4)
    expect = torch.cat([dsa.apply(x[:2], a), dsa.apply(x[2:], b)])
    assert torch.equal(dsa.apply(x, both), expect)


def test_index_rejects_float_indices():
    with pytest.raises(ValueError):
        DSA().sample_params(3, gen()).index(torch.tensor([0.0, 1.0]))


# -- Siamese sharing and per-row equivalence ---------------------------------

@pytest.mark.parametrize("op", ALL_OPS)
def test_shared_row_applies_the_same_transform_to_two_batches(op):
    dsa = DSA()
    row = with_op(dsa, dsa.sample_params(1, gen(5)), op)
    a, b = images(n=3, seed=1), images(n=5, seed=2)
    together = dsa.apply(torch.cat([a, b]), row)
    separate = torch.cat([dsa.apply(a, row), dsa.apply(b, row)])
    torch.testing.assert_close(together, separate, rtol=0, atol=1e-6)
    # a broadcast row equals that row repeated once per image
    repeated = row.index(torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(together, dsa.apply(torch.cat([a, b]), repeated), rtol=0, atol=1e-6)


def test_class_rows_expand_to_real_and_synthetic_batches():
    """DM's use: one row per class, expanded per image; class c's images share its transform."""
    dsa, num_classes = DSA(), 3
    class_rows = dsa.sample_params(num_classes, gen(7), per_sample_op=True)
    real, syn = images(n=3 * 4, seed=1), images(n=3 * 2, seed=2)
    real_out = dsa.apply(real, class_rows.index(torch.arange(num_classes).repeat_interleave(4)))
    syn_out = dsa.apply(syn, class_rows.index(torch.arange(num_classes).repeat_interleave(2)))
    for c in range(num_classes):
        row = class_rows.index(torch.tensor([c]))
        real_c, syn_c = slice(4 * c, 4 * c + 4), slice(2 * c, 2 * c + 2)
        torch.testing.assert_close(real_out[real_c], dsa.apply(real[real_c], row), rtol=0, atol=1e-6)
        torch.testing.assert_close(syn_out[syn_c], dsa.apply(syn[syn_c], row), rtol=0, atol=1e-6)


def test_per_sample_rows_equal_one_image_at_a_time():
    dsa = DSA()
    x = images(n=40, h=12, w=10)
    params = dsa.sample_params(40, gen(11), per_sample_op=True)
    assert p_unique(params) == 6
    batched = dsa.apply(x, params)
    single = torch.cat([dsa.apply(x[i:i + 1], params.index(torch.tensor([i]))) for i in range(40)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)


def test_rows_without_hint_are_grouped_by_value():
    dsa = DSA()
    params = dsa.sample_params(20, gen(2), per_sample_op=True)
    params.op_set = None  # e.g. built by hand: apply must find the ops itself
    x = images(n=20)
    single = torch.cat([dsa.apply(x[i:i + 1], params.index(torch.tensor([i]))) for i in range(20)])
    torch.testing.assert_close(dsa.apply(x, params), single, rtol=0, atol=1e-6)


# -- layouts and channel counts -----------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_matches_contiguous(channels):
    dsa = DSA()
    x = images(n=24, c=channels, h=10, w=14)
    params = dsa.sample_params(24, gen(4), per_sample_op=True)
    out = dsa.apply(x, params)
    assert out.shape == x.shape
    channels_last = x.to(memory_format=torch.channels_last)
    torch.testing.assert_close(dsa.apply(channels_last, params), out, rtol=1e-6, atol=1e-6)


def test_saturation_is_identity_on_one_channel():
    dsa = DSA()
    x = images(n=4, c=1)
    row = with_op(dsa, dsa.sample_params(4, gen()), "color", brightness=torch.zeros(4),
                  contrast=torch.ones(4), saturation=torch.tensor([0.0, 0.5, 1.5, 2.0]))
    torch.testing.assert_close(dsa.apply(x, row), x, rtol=0, atol=1e-6)


# -- known answers per op -----------------------------------------------------

def test_color_brightness_moves_the_mean_by_the_sampled_amount():
    dsa = DSA()
    x = images(n=8)
    params = with_op(dsa, dsa.sample_params(8, gen(9)), "color")
    shift = dsa.apply(x, params).mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    torch.testing.assert_close(shift, params.brightness, rtol=0, atol=1e-5)


def test_color_contrast_and_saturation_scale_deviations():
    dsa = DSA()
    x = images(n=2)
    neutral = dict(brightness=torch.zeros(2), saturation=torch.ones(2))
    contrast = with_op(dsa, dsa.sample_params(2, gen()), "color", contrast=torch.tensor([0.5, 1.5]), **neutral)
    out = dsa.apply(x, contrast)
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)) * torch.tensor([0.5, 1.5]))
    grey = dsa.apply(x, with_op(dsa, dsa.sample_params(2, gen()), "color", brightness=torch.zeros(2),
                                saturation=torch.zeros(2), contrast=torch.ones(2)))
    torch.testing.assert_close(grey, x.mean(dim=1, keepdim=True).expand_as(x))  # saturation 0 -> grey


def test_crop_translates_by_whole_pixels_with_zero_fill():
    dsa = DSA(AugConfig(crop=0.25))  # pad = 2 pixels on 8x8
    x = images(n=2, c=2, h=8, w=8)
    # u = 0 -> shift -2, u = 0.99 -> shift +2, on (y, x)
    p = with_op(dsa, dsa.sample_params(2, gen()), "crop", crop=torch.tensor([[0.0, 0.99], [0.99, 0.5]]))
    out = dsa.apply(x, p)
    expect0 = torch.zeros_like(x[0])                    # out[y, x] = in[y - 2, x + 2]
    expect0[:, 2:, :6] = x[0, :, :6, 2:]
    expect1 = torch.zeros_like(x[1])                    # out[y, x] = in[y + 2, x]
    expect1[:, :6, :] = x[1, :, 2:, :]
    assert torch.equal(out[0], expect0) and torch.equal(out[1], expect1)


def test_crop_shifts_are_uniform_over_minus_pad_to_pad():
    dsa = DSA(AugConfig(strategy="crop"))  # pad = round(0.125 * 16) = 2
    x = (torch.arange(16 * 16, dtype=torch.float32) + 1).view(1, 1, 16, 16).expand(600, 1, 16, 16)
    centre = dsa(x, gen(), shared=False)[:, 0, 8, 8].long() - 1  # = (8 + dy) * 16 + (8 + dx)
    dy, dx = centre // 16 - 8, centre % 16 - 8
    assert set(dy.tolist()) == set(range(-2, 3)) == set(dx.tolist())
    assert torch.bincount(dy + 2).min() > 80  # roughly uniform: 120 expected per value


def test_cutout_zeroes_a_square_of_the_configured_side():
    dsa = DSA(AugConfig(cutout=0.5))  # 4x4 on 8x8; 9 centre positions per axis
    x = torch.ones(3, 1, 8, 8)
    # centre 4 -> rows 2..5 inside; centre 0 -> rows 0..1 only (overhang)
    p = with_op(dsa, dsa.sample_params(3, gen()), "cutout",
                cutout=torch.tensor([[4.5 / 9, 4.5 / 9], [0.0, 4.5 / 9], [0.0, 0.999]]))
    out = dsa.apply(x, p)
    assert out[0, 0, 2:6, 2:6].eq(0).all() and out[0].sum() == 64 - 16
    assert out[1, 0, 0:2, 2:6].eq(0).all() and out[1].sum() == 64 - 8
    assert out[2, 0, 0:2, 6:8].eq(0).all() and out[2].sum() == 64 - 4


def test_flip_mirrors_only_flagged_rows():
    dsa = DSA()
    x = images(n=2)
    out = dsa.apply(x, with_op(dsa, dsa.sample_params(2, gen()), "flip", flip=torch.tensor([True, False])))
    assert torch.equal(out[0], x[0].flip(2)) and torch.equal(out[1], x[1])


def test_rotate_by_quarter_turns_permutes_pixels():
    dsa = DSA()
    x = images(n=2, h=9, w=9)
    quarter = with_op(dsa, dsa.sample_params(2, gen()), "rotate", rotate=torch.tensor([math.pi / 2, math.pi]))
    out = dsa.apply(x, quarter)  # a positive angle turns the picture clockwise as displayed
    torch.testing.assert_close(out[0], torch.rot90(x[0], k=-1, dims=(1, 2)), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], x[1].flip(1).flip(2), rtol=0, atol=1e-5)


def test_rotate_non_square_by_half_turn_is_a_point_mirror():
    dsa = DSA()
    x = images(n=1, h=7, w=12)
    out = dsa.apply(x, with_op(dsa, dsa.sample_params(1, gen()), "rotate", rotate=torch.tensor([math.pi])))
    torch.testing.assert_close(out, x.flip(2).flip(3), rtol=0, atol=1e-5)


def test_rotate_non_square_by_quarter_turn_keeps_pixel_distances():
    """A dot 2 pixels right of the centre of a 7x11 image lands 2 pixels below it, not stretched."""
    dsa = DSA()
    x = torch.zeros(1, 1, 7, 11)
    x[0, 0, 3, 7] = 1.0  # centre is (3, 5)
    out = dsa.apply(x, with_op(dsa, dsa.sample_params(1, gen()), "rotate", rotate=torch.tensor([math.pi / 2])))
    expect = torch.zeros_like(x)
    expect[0, 0, 5, 5] = 1.0
    torch.testing.assert_close(out, expect, rtol=0, atol=1e-5)


def test_scale_by_two_samples_every_other_pixel_of_the_centre():
    dsa = DSA()
    x = images(n=1, h=9, w=9)
    half = with_op(dsa, dsa.sample_params(1, gen()), "scale", scale=torch.tensor([[0.5, 0.5]]))
    out = dsa.apply(x, half)  # zoom in x2: output pixel 2k reads input pixel 2 + k
    torch.testing.assert_close(out[..., ::2, ::2], x[..., 2:7, 2:7], rtol=0, atol=1e-5)


@pytest.mark.parametrize("cfg", [AugConfig(strategy="scale_rotate", scale=1.0, rotate=0.0),
                                 AugConfig(strategy="crop_cutout", crop=0.0, cutout=0.0)])
def test_zero_magnitude_ops_are_the_identity(cfg):
    dsa = DSA(cfg)
    x = images(n=10, h=11, w=13)
    out = dsa.apply(x, dsa.sample_params(10, gen(), per_sample_op=True))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


# -- gradients ---------------------------------------------------------------

@pytest.mark.parametrize("op", ALL_OPS)
def test_gradients_reach_the_images(op):
    dsa = DSA()
    x = images(n=4).requires_grad_(True)
    params = with_op(dsa, dsa.sample_params(4, gen(6)), op, flip=torch.tensor([True, False, True, False]))
    (dsa.apply(x, params) ** 2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradient_of_a_shared_transform_matches_finite_differences():
    dsa = DSA()
    x = images(n=2, c=3, h=6, w=6).double().requires_grad_(True)
    for op in ("color", "rotate", "scale"):
        row = with_op(dsa, dsa.sample_params(1, gen(8)), op)
        assert torch.autograd.gradcheck(lambda t: dsa.apply(t, row), (x,), eps=1e-6, atol=1e-5)


# -- devices -------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_a_cpu_generator():
    dsa = DSA()
    x = images(n=32)
    params = dsa.sample_params(32, gen(3), per_sample_op=True)
    gpu_params = dsa.sample_params(32, gen(3), device="cuda", per_sample_op=True)
    assert gpu_params.ops.device.type == "cuda"
    out = dsa.apply(x.cuda(), gpu_params)
    torch.testing.assert_close(out.cpu(), dsa.apply(x, params), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dsa(x.cuda(), gen(5)).cpu(), dsa(x, gen(5)), rtol=1e-5, atol=1e-5)
