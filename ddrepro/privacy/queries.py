"""LiRA's queries of one example: the image, its mirror, and their shifted crops (Carlini et al.,
S&P 2022, Sec. VI-A "querying with augmentations"; the authors' ``research/mi_lira_2021/inference.py``
in tensorflow/privacy).

The reference pads each image by ``shift`` pixels with *reflection* on every side and takes every
crop of the original size whose top-left corner is ``(dx, dy)``, ``dx, dy`` in
``range(0, 2 * shift + 1, stride)`` (rows, then columns), first of the image and then of its
horizontal mirror: ``2 * (2 * shift // stride + 1) ** 2`` queries; ``shift = 0`` leaves the image
and its mirror, the two queries the chapter uses by default. The crop at ``(shift, shift)`` is the
image itself.

Reflection commutes with the mirror: the mirror of the crop at ``(dx, dy)`` is the crop at
``(dx, 2 * shift - dy)`` of the mirrored image. So the engine's probe with ``probe_flip`` applied
to every crop of the *unmirrored* image gives exactly the reference's query set
(:func:`shifted_probes`, :func:`shifted_phi`), when the grid is symmetric (``stride`` divides
``2 * shift``).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def _offsets(shift: int, stride: int) -> list[int]:
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise ValueError(f"shift = {shift!r} must be an int >= 0 (pixels).")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1 \
            or (shift and (2 * shift) % stride):
        raise ValueError(f"stride = {stride!r} must be an int >= 1 dividing 2 * shift = {2 * shift} "
                         "(a grid symmetric under the mirror).")
    return list(range(0, 2 * shift + 1, stride))


def shifted_views(images: Tensor, shift: int, stride: int = 1) -> dict[tuple[int, int], Tensor]:
    """Every crop ``(dx, dy)`` (rows, columns) of ``images`` ``(n, C, H, W)`` reflect-padded by
    ``shift`` pixels, in the reference's order; ``(shift, shift)`` is ``images`` itself."""
    offsets = _offsets(shift, stride)
    if images.dim() != 4:
        raise ValueError(f"images must be (n, C, H, W), got {tuple(images.shape)}.")
    h, w = images.shape[-2:]
    if shift >= min(h, w):
        raise ValueError(f"shift = {shift} must be smaller than the image ({h} x {w}) to reflect.")
    padded = F.pad(images, (shift, shift, shift, shift), mode="reflect") if shift else images
    return {(dx, dy): padded[..., dx:dx + h, dy:dy + w] for dx in offsets for dy in offsets}


def query_images(images: Tensor, shift: int, stride: int = 1, reflect: bool = True) -> Tensor:
    """``(n, q, C, H, W)``: the reference's queries of every image, the crops of the image and then
    (``reflect``) of its mirror (module docstring)."""
    sources = [images, images.flip(-1)][: 1 + bool(reflect)]
    return torch.stack([view for src in sources for view in shifted_views(src, shift, stride).values()], 1)


def view_name(dx: int, dy: int) -> str:
    """The probe name of the crop at ``(dx, dy)``."""
    return f"shift{dx}_{dy}"


def shifted_probes(images: Tensor, labels: Tensor, shift: int, stride: int = 1
                   ) -> dict[str, tuple[Tensor, Tensor]]:
    """The engine's ``probes`` argument for every crop of the unmirrored images (probe them with
    ``probe_flip`` for the mirrored half of the queries)."""
    return {view_name(dx, dy): (view.contiguous(), labels)
            for (dx, dy), view in shifted_views(images, shift, stride).items()}


def shifted_phi(outputs: Mapping[str, Mapping[str, Tensor]], shift: int, stride: int = 1,
                reflect: bool = True) -> Tensor:
    """``(K, n, q)`` logit-scaled confidences in :func:`query_images`' order from the probe outputs
    of :func:`shifted_probes` (``outputs[name]["phi"]`` and, when ``reflect``, ``["phi_flip"]``):
    the mirrored query ``(dx, dy)`` is the mirror of the crop ``(dx, 2 * shift - dy)``."""
    offsets = _offsets(shift, stride)
    phis = [outputs[view_name(dx, dy)]["phi"] for dx in offsets for dy in offsets]
    if reflect:
        phis += [outputs[view_name(dx, 2 * shift - dy)]["phi_flip"] for dx in offsets for dy in offsets]
    return torch.stack(phis, -1)


def plain_queries(shift: int, stride: int = 1, reflect: bool = True) -> list[int]:
    """Positions in :func:`query_images`' order of the unshifted image (and its mirror): the
    chapter's default two queries, read off the same models."""
    offsets = _offsets(shift, stride)
    centre = offsets.index(shift) * len(offsets) + offsets.index(shift)
    return [centre, centre + len(offsets) ** 2][: 1 + bool(reflect)]


__all__ = ["plain_queries", "query_images", "shifted_phi", "shifted_probes", "shifted_views",
           "view_name"]
