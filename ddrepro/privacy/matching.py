"""Visual privacy, the direct matching attack (Dong et al. 2022, Sec. 5.4, Fig. 5).

An attacker who sees a synthetic image looks for the real training images
most similar to it. Similarity here: the L2 distance, the structural
similarity SSIM (Wang et al. 2004, from scikit-image) and the L2 distance of
the penultimate features of a network trained on real data; LPIPS
(Zhang et al. 2018), the paper's perceptual distance, needs pretrained VGG
weights that cannot be downloaded here. The distances only mean something
against a reference: how close a *real* image typically is to its nearest
other real image (:func:`nearest`'s ``exclude_self``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def l2_distances(a: Tensor, b: Tensor) -> Tensor:
    """``(len(a), len(b))`` pairwise L2 distances of flattened images."""
    return torch.cdist(a.flatten(1).double(), b.flatten(1).double()).float()


def ssim_similarities(a: Tensor, b: Tensor) -> Tensor:
    """``(len(a), len(b))`` SSIM of greyscale images in [0, 1] (scikit-image, data_range 1, 7x7 window)."""
    from skimage.metrics import structural_similarity

    if a.shape[1] != 1 or b.shape[1] != 1:
        raise ValueError("ssim_similarities takes greyscale (n, 1, H, W) images in [0, 1].")
    x, y = a[:, 0].double().numpy(), b[:, 0].double().numpy()
    out = np.empty((len(x), len(y)))
    for i, xi in enumerate(x):
        for j, yj in enumerate(y):
            out[i, j] = structural_similarity(xi, yj, data_range=1.0)
    return torch.from_numpy(out).float()


def nearest(dist: Tensor, k: int = 1, *, larger_is_closer: bool = False,
            exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """Per row, the ``k`` closest columns of a distance (or similarity) matrix: ``(values, index)``.

    ``exclude_self``: the matrix compares a set with itself; skip the diagonal
    (a real image's nearest *other* real image, the reference distances).
    """
    if k < 1 or k > dist.shape[1] - int(exclude_self):
        raise ValueError(f"k = {k} must lie in [1, {dist.shape[1] - int(exclude_self)}].")
    d = dist.clone().float()
    if exclude_self:
        if d.shape[0] != d.shape[1]:
            raise ValueError("exclude_self needs a square matrix (a set against itself).")
        d.fill_diagonal_(-float("inf") if larger_is_closer else float("inf"))
    return d.topk(k, dim=1, largest=larger_is_closer)


__all__ = ["l2_distances", "nearest", "ssim_similarities"]
