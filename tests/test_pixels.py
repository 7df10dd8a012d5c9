"""Pixel helpers: known values, round trips, quantisation, and the callers that use them."""

from __future__ import annotations

import pytest
import torch

from ddrepro.data import loading
from ddrepro.pixels import from_pixels, quantise, to_pixels
from ddrepro.synthetic import SyntheticSet

MEAN, STD = (0.1, 0.5, 0.9), (0.5, 0.25, 2.0)


def test_to_pixels_known_values_per_channel():
    images = torch.tensor([1.0, 2.0, -1.0]).view(1, 3, 1, 1)
    out = to_pixels(images, MEAN, STD)
    assert out.flatten().tolist() == pytest.approx([0.6, 1.0, -1.1])
    assert to_pixels(images, MEAN, STD, clamp=True).flatten().tolist() == pytest.approx([0.6, 1.0, 0.0])


def test_round_trip_both_ways_and_channel_axis_minus_3():
    pixels = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    normed = from_pixels(pixels, MEAN, STD)
    assert torch.allclose(to_pixels(normed, MEAN, STD), pixels, atol=1e-6)
    assert torch.allclose(from_pixels(to_pixels(normed, MEAN, STD), MEAN, STD), normed, atol=1e-5)
    # one image (C, H, W) works like a batch of one
    assert torch.equal(from_pixels(pixels[0], MEAN, STD), normed[0])


def test_single_value_stats_apply_to_every_channel():
    pixels = torch.full((2, 3, 2, 2), 0.75)
    assert torch.equal(from_pixels(pixels, (0.25,), (0.5,)), torch.ones(2, 3, 2, 2))


def test_stats_length_and_bad_input_are_rejected():
    with pytest.raises(ValueError, match="mean has 2 values for 3-channel"):
        to_pixels(torch.zeros(1, 3, 2, 2), (0.1, 0.2), STD)
    with pytest.raises(ValueError, match="std has 2 values"):
        from_pixels(torch.zeros(1, 3, 2, 2), MEAN, (1.0, 1.0))
    with pytest.raises(ValueError, match="std must be > 0"):
        from_pixels(torch.zeros(1, 1, 2, 2), (0.0,), (0.0,))
    with pytest.raises(ValueError, match="divide uint8"):
        from_pixels(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), (0.0,), (1.0,))


def test_gradients_flow_through_the_maps():
    images = torch.zeros(1, 3, 1, 1, requires_grad=True)
    to_pixels(images, MEAN, STD).sum().backward()
    assert images.grad.flatten().tolist() == list(STD)


def test_quantise_rounds_to_nearest_level_and_is_idempotent():
    x = torch.tensor([0.0, 0.4 / 255, 0.6 / 255, 100.3 / 255, 1.0])
    q = quantise(x)
    assert (q * 255).round().tolist() == [0.0, 0.0, 1.0, 100.0, 255.0]
    assert torch.allclose(q * 255, (q * 255).round(), atol=1e-4)
    assert torch.equal(quantise(q), q)
    assert quantise(torch.tensor([0.3]), levels=2).item() == 0.5
    with pytest.raises(ValueError, match="levels"):
        quantise(x, levels=0)


def test_normalise_no_longer_modifies_float_input():
    # The loader's old in-place arithmetic changed a float32 caller's tensor.
    pixels = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    before = pixels.clone()
    out = loading.normalise(pixels, (0.5,), (0.5,))
    assert torch.equal(pixels, before)
    assert torch.equal(out, (before - 0.5) / 0.5)


def test_uint8_normalise_and_synthetic_denormalised_invert_each_other():
    raw = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    normed = loading.normalise(raw, (0.1307,), (0.3081,))
    shown = SyntheticSet(normed, torch.zeros(1, dtype=torch.int64), (0.1307,), (0.3081,)).denormalised()
    assert torch.allclose(shown * 255, raw.float(), atol=1e-4)
