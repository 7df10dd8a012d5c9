"""Random selection: ``ipc`` real images per class, the baseline every table starts from."""

from __future__ import annotations

import torch

from .base import Context, register


@register("random", None, weights=False)
def run(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """The initialisation *is* the result: a class-balanced random subset of the real data.

    Per-sample weights are refused (``weights=False``): a uniform draw would ignore them.
    """
    return syn_images, syn_labels
