"""Figures shared by every chapter: one theme, image grids, class histograms.

Tensors in, matplotlib ``Axes`` out, so a chapter can compose panels freely.
Images arrive normalised (as :class:`ddrepro.data.ImageData` stores them) and
are de-normalised with the dataset's per-channel ``mean``/``std`` before
display; values are then clipped to ``[0, 1]`` because synthetic images are
free to leave the pixel range (privacy-for-free, Remark 4.7).
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import seaborn as sns
import torch

from .pixels import to_pixels


def glue_figure(name: str, fig: plt.Figure) -> None:
    """Glue ``fig`` under ``name`` for a ``{glue:figure}`` directive, and close it.

    Without the close, the notebook's inline backend would also show the
    figure as the cell's output, and the page would show it twice.
    """
    from myst_nb import glue  # the book's renderer; imported only where a chapter glues

    glue(name, fig, display=False)
    plt.close(fig)


def set_theme() -> None:
    """One look for the whole book (seaborn's ``ticks`` style, readable sizes)."""
    sns.set_theme(context="notebook", style="ticks", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "image.interpolation": "nearest"})


def denormalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``images * std + mean`` per channel, clipped to ``[0, 1]`` for display (detached, float, CPU)."""
    return to_pixels(images.detach().float().cpu(), mean, std, clamp=True)


def tile(images: torch.Tensor, nrow: int, pad: int = 1) -> torch.Tensor:
    """Arrange ``(N, C, H, W)`` into one ``(C, H', W')`` mosaic, ``nrow`` images per row.

    Empty slots and the padding between tiles are white.
    """
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for k in range(n):
        r, col = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, top:top + h, left:left + w] = images[k]
    return canvas


def image_grid(
    images: torch.Tensor,
    labels: torch.Tensor | Sequence[int] | None = None,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    nrow: int = 10,
    ax: plt.Axes | None = None,
    title: str | None = None,
    classes: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
) -> plt.Axes:
    """Show ``(N, C, H, W)`` normalised images (C = 1 or 3) as one grid.

    With ``labels`` the images are sorted by label (stable), so that a grid of
    ``ipc`` images per class reads one class per row when ``nrow == ipc``;
    with ``classes`` as well, row labels name the class of each row's first image.
    ``row_labels`` names the rows directly (e.g. one method per row).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"image_grid: images must be a (N, 1|3, H, W) tensor, got {shape}.")
    if images.shape[0] == 0:
        raise ValueError("image_grid: no images to show; pass at least one.")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"image_grid: nrow = {nrow!r}; it must be an integer >= 1.")
    label_t = None
    if labels is not None:
        label_t = torch.as_tensor(labels).flatten().cpu()
        if label_t.numel() != images.shape[0]:
            raise ValueError(
                f"image_grid: {images.shape[0]} images but {label_t.numel()} labels; give one label per image."
            )
        order = torch.argsort(label_t, stable=True)
        images, label_t = images[order.to(images.device)], label_t[order]
    nrow = min(nrow, images.shape[0])
    mosaic = tile(denormalise(images, mean, std), nrow)
    if ax is None:
        rows = math.ceil(images.shape[0] / nrow)
        _, ax = plt.subplots(figsize=(max(2.0, 0.6 * nrow), max(1.2, 0.6 * rows)))
    if mosaic.shape[0] == 1:
        ax.imshow(mosaic[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(mosaic.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])
    names = None
    if row_labels is not None:
        rows = math.ceil(images.shape[0] / nrow)
        if len(row_labels) != rows:
            raise ValueError(f"image_grid: {len(row_labels)} row_labels for {rows} rows.")
        names = [str(r) for r in row_labels]
    elif label_t is not None and classes is not None:
        names = [str(classes[int(c)]) for c in label_t[::nrow].tolist()]
    if names is not None:
        h = images.shape[2]
        ax.set_yticks([1 + r * (h + 1) + h / 2 for r in range(len(names))])
        ax.set_yticklabels(names, fontsize=9)
    sns.despine(ax=ax, left=True, bottom=True)
    if title:
        ax.set_title(title)
    return ax


def class_counts(
    labels: torch.Tensor | Sequence[int],
    classes: Sequence[str],
    ax: plt.Axes | None = None,
    title: str | None = None,
) -> plt.Axes:
    """Bar chart of how many examples each class has (every class shown, zeros too)."""
    label_t = torch.as_tensor(labels).flatten().cpu().long()
    if len(classes) == 0:
        raise ValueError("class_counts: classes is empty; pass the dataset's class names.")
    if label_t.numel() and (label_t.min() < 0 or label_t.max() >= len(classes)):
        raise ValueError(
            f"class_counts: labels span [{int(label_t.min())}, {int(label_t.max())}] "
            f"but only {len(classes)} classes were given."
        )
    counts = torch.bincount(label_t, minlength=len(classes))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.6))
    names = [str(c) for c in classes]
    sns.barplot(x=names, y=counts.tolist(), ax=ax, color=sns.color_palette()[0])
    ax.set_ylabel("examples")
    ax.tick_params(axis="x", labelrotation=45 if max(len(n) for n in names) > 3 else 0)
    sns.despine(ax=ax)
    if title:
        ax.set_title(title)
    return ax


__all__ = ["set_theme", "denormalise", "tile", "image_grid", "class_counts"]
