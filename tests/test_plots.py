"""Plot helpers: de-normalisation, tiling and input checks (figures are not pixel-compared)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from ddrepro import plots


def test_denormalise_inverts_normalisation_per_channel():
    raw = torch.rand(2, 3, 4, 4)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    normed = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(plots.denormalise(normed, mean, std), raw, atol=1e-6)


def test_denormalise_clips_to_pixel_range():
    out = plots.denormalise(torch.tensor([[[[-100.0, 100.0]]]]), (0.5,), (0.5,))
    assert out.tolist() == [[[[0.0, 1.0]]]]


def test_tile_places_images_row_major_with_white_padding():
    images = torch.arange(3).float().view(3, 1, 1, 1) / 10
    mosaic = plots.tile(images, nrow=2, pad=1)
    assert mosaic.shape == (1, 5, 5)
    assert mosaic[0, 1, 1] == 0.0 and mosaic[0, 1, 3] == pytest.approx(0.1)
    assert mosaic[0, 3, 1] == pytest.approx(0.2) and mosaic[0, 3, 3] == 1.0  # empty slot


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_sorts_by_label_and_draws(channels):
    images = torch.randn(6, channels, 5, 5)
    ax = plots.image_grid(images, [2, 0, 1, 0, 2, 1], mean=(0.5,) * channels,
                          std=(0.5,) * channels, nrow=2, classes=["a", "b", "c"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.images[0].get_array().shape[:2] == (3 * 6 + 1, 2 * 6 + 1)


@pytest.mark.parametrize("kwargs,match", [
    ({"images": torch.zeros(2, 2, 4, 4)}, "1|3"),
    ({"images": torch.zeros(2, 1, 4, 4), "labels": [0]}, "one label per image"),
    ({"images": torch.zeros(2, 1, 4, 4), "nrow": 0}, "nrow"),
    ({"images": torch.zeros(2, 1, 4, 4), "mean": (0.1, 0.2)}, "mean"),
])
def test_image_grid_rejects_bad_input(kwargs, match):
    args = {"mean": (0.0,), "std": (1.0,), **kwargs}
    images = args.pop("images")
    with pytest.raises(ValueError, match=match):
        plots.image_grid(images, **args)


def test_class_counts_counts_every_class():
    ax = plots.class_counts(torch.tensor([0, 0, 2]), ["a", "b", "c"])
    assert [p.get_height() for p in ax.patches] == [2, 0, 1]
    with pytest.raises(ValueError, match="3 classes"):
        plots.class_counts(torch.tensor([3]), ["a", "b", "c"])
