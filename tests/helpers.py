"""Small builders shared by the test modules (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch

from ddrepro.data import ImageData


def toy_image_data(n_per_class: int = 10, classes: int = 4, seed: int = 0,
                   shape: tuple[int, int, int] = (1, 8, 8)) -> ImageData:
    """Gaussian-noise images, ``n_per_class`` per class, labels cycling 0..classes-1."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(n_per_class * classes, *shape, generator=gen)
    labels = torch.arange(classes).repeat(n_per_class)
    return ImageData(images, labels, "toy", "train", (0.0,) * shape[0], (1.0,) * shape[0],
                     tuple(str(c) for c in range(classes)), flip_ok=False)
