"""Normalised images <-> pixels in [0, 1]: the one place that does this arithmetic.

``ImageData`` and ``SyntheticSet`` store images *normalised* per channel,
``x = (p - mean) / std``, because that is what the networks of DC, DSA and DM
are trained on. Some quantities are only meaningful on the pixels ``p``:

* display (``ddrepro.plots``), which clips to ``[0, 1]``;
* perturbation budgets: the poisoning protocol bounds a poison by an
  L-infinity ball of radius 8/255 *in pixel space* and stores it as an image,
  i.e. quantised to 1/255 (:func:`quantise`);
* loading raw data (``ddrepro.data.loading.normalise``).

Images have their channels on axis -3 (``(C, H, W)`` or ``(N, C, H, W)``);
``mean``/``std`` give one value per channel, or a single value for all.
The functions are plain tensor arithmetic, so gradients flow through them
(except through :func:`quantise`, whose gradient is zero almost everywhere).
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

Stats = Union[Sequence[float], Tensor]


def _channel_stats(name: str, values: Stats, images: Tensor) -> Tensor:
    """``values`` as a ``(C, 1, 1)`` tensor in the images' dtype and device, checked.

    The dtype follows the images so that float32 images are mapped with
    float32 statistics, as the loaders always did (bit-identical results).
    """
    if images.ndim < 3:
        raise ValueError(f"images must have channels on axis -3, (C, H, W) or (N, C, H, W); "
                         f"got shape {tuple(images.shape)}.")
    channels = images.shape[-3]
    stats = torch.as_tensor(values if isinstance(values, Tensor) else tuple(values),
                            dtype=images.dtype, device=images.device).flatten()
    if stats.numel() not in (1, channels):
        raise ValueError(f"{name} has {stats.numel()} values for {channels}-channel images; "
                         f"give 1 or {channels} (one per channel).")
    return stats.view(-1, 1, 1)


def _check_float(name: str, images: Tensor) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        what = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {what}; "
                         "divide uint8 pixels by 255 first.")


def to_pixels(images: Tensor, mean: Stats, std: Stats, *, clamp: bool = False) -> Tensor:
    """Normalised images -> pixels: ``images * std + mean`` per channel.

    ``clamp=True`` clips the result to ``[0, 1]`` (synthetic images are free
    to leave the pixel range, privacy-for-free Remark 4.7, but a picture or a
    stored image cannot).
    """
    _check_float("images", images)
    pixels = images * _channel_stats("std", std, images) + _channel_stats("mean", mean, images)
    return pixels.clamp(0.0, 1.0) if clamp else pixels


def from_pixels(pixels: Tensor, mean: Stats, std: Stats) -> Tensor:
    """Pixels in ``[0, 1]`` -> normalised images: ``(pixels - mean) / std`` per channel."""
    _check_float("pixels", pixels)
    std_t = _channel_stats("std", std, pixels)
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be > 0 in every channel, got {std_t.flatten().tolist()}.")
    # div_ on the fresh difference: one full-size temporary instead of two
    # (this runs on all 60,000 MNIST images at every load).
    return (pixels - _channel_stats("mean", mean, pixels)).div_(std_t)


def quantise(pixels: Tensor, levels: int = 255) -> Tensor:
    """Round pixels to the nearest multiple of ``1 / levels`` (ties to even).

    With ``levels=255`` this is what saving an image as 8 bits does; the
    poisoning protocol stores its perturbed images this way. Values in
    ``[0, 1]`` stay in ``[0, 1]``; quantising twice changes nothing.
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1, got {levels!r}.")
    _check_float("pixels", pixels)
    return torch.round(pixels * levels) / levels


__all__ = ["to_pixels", "from_pixels", "quantise"]
