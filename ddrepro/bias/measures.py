"""Chapter 4's measurements for its scorecard: one value per seed, and the colour of synthetic digits.

A scorecard row is judged from an interval over what was repeated independently
(:mod:`ddrepro.intervals`): for a distilled set that is the distillation *seed* (a seed's
evaluation networks share its synthetic set, so they give one value, their mean). The
pages collect their cells into a frame with a ``seed`` column; :func:`per_seed` and
:func:`paired_by_seed` read it, one value per seed, the two sides of a paired difference on
the same seeds.

The colour of a synthetic digit (Lu et al. 2024, Fig. 2) is the nearest of the ten
CMNIST-DD colours to its foreground chromaticity (:func:`own_colour_share`). DM and DSA
start from random *real* images of the biased set, which at a biased ratio of 100 % all
wear their class's colour and at 0 % never do: the share of the final images alone
measures the initialisation. :func:`colour_share_change` measures what distillation did to
it (final minus initial images, :func:`initial_images`); a set distilled from noise (DC)
has no such confound.

Not imported by :mod:`ddrepro.bias.study`: editing this module re-keys no cached cell.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..data.dataset import ImageData
from ..pixels import to_pixels
from ..synthetic import SyntheticSet
from .biased import COLOURS
from .debias import foreground_colour


def own_colour_share(images: Tensor, labels: Tensor, mean: Sequence[float], std: Sequence[float]) -> float:
    """% of ``images`` (normalised, ``(N, 3, H, W)``) whose foreground colour is nearest to their
    own class's CMNIST-DD colour (``labels``: hard, ``(N,)``)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"own_colour_share needs RGB images (N, 3, H, W); got {tuple(images.shape)}.")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"own_colour_share needs one hard label per image; got labels "
                         f"{tuple(labels.shape)} for {images.shape[0]} images.")
    pixels = to_pixels(images, mean, std, clamp=True)
    palette = COLOURS / COLOURS.amax(1, keepdim=True)
    nearest = torch.cdist(foreground_colour(pixels), palette).argmin(1)
    return 100 * float((nearest == labels).float().mean())


def initial_images(syn: SyntheticSet, real: ImageData) -> Tensor:
    """The real images ``syn``'s real initialisation copied, in ``syn``'s order
    (``syn.meta["init_indices"]`` are root indices, found through ``real.source_index``)."""
    used = syn.meta.get("init_indices")
    if used is None:
        raise ValueError(f"synthetic set of {syn.meta.get('method')!r} was not initialised from real "
                         "images (meta['init_indices'] is None); compare its share directly.")
    row = {int(s): i for i, s in enumerate(real.source_index.tolist())}
    missing = [int(s) for s in used if int(s) not in row]
    if missing:
        raise ValueError(f"{len(missing)} initial images (e.g. root index {missing[0]}) are not in "
                         f"{real.name!r}; pass the training set the synthetic set was distilled from.")
    return real.images[torch.tensor([row[int(s)] for s in used])]


def colour_share_change(syn: SyntheticSet, real: ImageData) -> float:
    """Points of own-colour share distillation added (final minus initial images, same labels)."""
    labels = syn.hard_labels()
    start = own_colour_share(initial_images(syn, real), labels, syn.mean, syn.std)
    return own_colour_share(syn.images, labels, syn.mean, syn.std) - start


def per_seed(runs: pd.DataFrame, method: str, ratio: float, column: str = "conflicting",
             **where: float) -> pd.Series:
    """``column`` of ``method`` at ``ratio`` (and any ``where`` columns, e.g. ``severity=4``), one
    value per seed (indexed by seed; a seed's evaluation networks are already one mean)."""
    hit = runs[(runs.method == method) & (runs.ratio == ratio)]
    for key, value in where.items():
        hit = hit[hit[key] == value]
    if hit.seed.duplicated().any():
        raise ValueError(f"{method} at {ratio:g} % has several rows per seed; pass the other "
                         f"columns that tell them apart ({sorted(set(runs.columns) - {'seed'})}).")
    return hit.set_index("seed")[column].sort_index()


def paired_by_seed(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The values of two :func:`per_seed` series on their shared seeds, in the same order."""
    shared = a.index.intersection(b.index).sort_values()
    if len(shared) == 0:
        raise ValueError(f"no shared seeds to pair: {list(a.index)} vs {list(b.index)}.")
    return a.loc[shared].to_numpy(float), b.loc[shared].to_numpy(float)


def recovered_share(plain: Sequence[float], debiased: Sequence[float],
                    full: float | Sequence[float]) -> np.ndarray:
    """Per seed, the share (%) of the gap between the plain method and the full-set control that
    the debiased method recovers: ``100 (debiased - plain) / (full - plain)``. ``full``: one
    value per seed (the control on that seed's biased set), or one value shared by all."""
    p, d = np.asarray(plain, dtype=float), np.asarray(debiased, dtype=float)
    f = np.broadcast_to(np.asarray(full, dtype=float), p.shape) if np.ndim(full) == 0 \
        else np.asarray(full, dtype=float)
    if p.shape != d.shape or f.shape != p.shape:
        raise ValueError(f"recovered_share needs one value per seed on every side; got {p.size}, "
                         f"{d.size} and {f.size}.")
    gap = f - p
    if np.any(gap <= 0):
        raise ValueError(f"the full set ({f.tolist()}) is not above the plain method on every seed "
                         f"({p.tolist()}): there is no gap to recover.")
    return 100 * (d - p) / gap


__all__ = ["colour_share_change", "initial_images", "own_colour_share", "paired_by_seed", "per_seed",
           "recovered_share"]
