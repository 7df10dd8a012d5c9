"""The ten corruptions of CCIFAR10-DD (Lu et al. 2024, Sec. 3.1), one per class.

Hendrycks & Dietterich's CIFAR-10-C corruptions, written with numpy, scipy and
Pillow at the parameters of their severities (the authors' release calls
them at ``severity + 1``). Two need what is not available offline and are
substituted, as documented in each function: snow's motion blur (ImageMagick
in the original) is a line kernel convolved with scipy, and frost's texture
photographs are replaced by a synthetic ice texture. Images are HWC float
numpy arrays in [0, 1]; :func:`corrupt` applies them to a batch of tensors.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor


# The class -> corruption map of CCIFAR10-DD (paper, Fig. 1 caption).
CORRUPTION_NAMES = ("snow", "frost", "fog", "brightness", "contrast", "spatter", "elastic",
                    "jpeg", "pixelate", "saturate")


# -- the ten corruptions of CCIFAR10-DD (images HWC float in [0, 1], numpy) --------------
# Parameters: CIFAR-10-C's, at the protocol's severities 2-5 (our severities 1-4).

def _zoom_centre(layer: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the central crop of a square 2-D layer back to its size (CIFAR-10-C's clipped_zoom)."""
    h = layer.shape[0]
    crop = int(math.ceil(h / factor))
    top = (h - crop) // 2
    zoomed = ndimage.zoom(layer[top:top + crop, top:top + crop], factor, order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim:trim + h, trim:trim + h]


def _grey(x: np.ndarray) -> np.ndarray:
    return x @ np.array([0.299, 0.587, 0.114])


def _motion_kernel(length: float, sigma: float, angle: float) -> np.ndarray:
    """A one-sided line kernel with Gaussian weights along ``angle`` (degrees).

    Substitute for ImageMagick's ``-motion-blur radius x sigma + angle``, which
    CIFAR-10-C's snow calls through Wand and which is not available offline.
    """
    size = 2 * int(math.ceil(length)) + 1
    kernel = np.zeros((size, size))
    centre = size // 2
    theta = math.radians(angle)
    for t in np.linspace(0.0, length, 4 * size):
        r = int(round(centre - t * math.sin(theta)))
        c = int(round(centre + t * math.cos(theta)))
        kernel[r, c] = max(kernel[r, c], math.exp(-t * t / (2 * sigma * sigma)))
    return kernel / kernel.sum()


def snow(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """CIFAR-10-C's snow at our severity ``s``.

    Deviation (noted, issue 25): the motion blur's radius and sigma are *halved*
    (``c[4] / 2``, ``c[5] / 2``) before :func:`_motion_kernel`, so our snow streaks are
    about half as long as a literal reading of the parameters gives. ImageMagick's
    ``-motion-blur`` draws a kernel of about ``2 radius + 1`` taps, so the halving is
    not an equivalence; it is an unvalidated choice of the substitute, to be checked
    against the original when ImageMagick (Wand) is available.
    """
    c = [(0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    layer = rng.normal(c[0], c[1], size=x.shape[:2])
    layer = _zoom_centre(layer, c[2])
    layer[layer < c[3]] = 0.0
    layer = np.clip(layer, 0.0, 1.0)
    layer = ndimage.convolve(layer, _motion_kernel(c[4] / 2.0, c[5] / 2.0, rng.uniform(-135, -45)),
                             mode="constant")[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, _grey(x)[..., None] * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, 2), 0.0, 1.0)


def _frost_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Procedural frost: thresholded multi-scale noise with thin bright streaks, bluish white.

    Substitute for CIFAR-10-C's six frost photographs (not shipped, not
    downloadable offline): the corruption only needs a bright, high-frequency,
    image-independent texture added on top.
    """
    field = sum(ndimage.gaussian_filter(rng.normal(size=shape), sigma) * w
                for sigma, w in ((0.6, 1.0), (1.5, 0.6), (3.0, 0.4)))
    field = (field - field.min()) / (np.ptp(field) + 1e-8)
    streaks = ndimage.convolve(rng.random(shape) > 0.93, _motion_kernel(3.0, 2.0, rng.uniform(0, 180)))
    texture = np.clip(field ** 2 + 2.0 * streaks, 0.0, 1.0)
    return texture[..., None] * np.array([0.85, 0.92, 1.0])


def frost(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = [(1.0, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    return np.clip(c[0] * x + c[1] * _frost_texture(x.shape[:2], rng), 0.0, 1.0)


def _plasma(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A fractal height map in [0, 1]: octaves of upsampled noise, amplitude / ``decay`` per octave.

    Stands in for CIFAR-10-C's diamond-square ``plasma_fractal`` (same role:
    smooth clouds whose roughness ``decay`` controls).
    """
    out, amplitude, cells = np.zeros((size, size)), 1.0, 2
    while cells <= size:
        noise = rng.uniform(-1, 1, size=(cells, cells))
        out += amplitude * ndimage.zoom(noise, size / cells, order=1)[:size, :size]
        amplitude /= decay
        cells *= 2
    out -= out.min()
    return out / (out.max() + 1e-8)


def fog(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = [(0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75)][s - 1]
    top = x.max()
    x = x + c[0] * _plasma(x.shape[0], c[1], rng)[..., None]
    return np.clip(x * top / (top + c[0]), 0.0, 1.0)


def _hsv_shift(x: np.ndarray, channel: int, scale: float, shift: float) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(np.clip(x, 0.0, 1.0))
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + shift, 0.0, 1.0)
    return np.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def brightness(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    return _hsv_shift(x, 2, 1.0, [0.1, 0.15, 0.2, 0.3][s - 1])


def contrast(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    c = [0.5, 0.4, 0.3, 0.15][s - 1]
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0.0, 1.0)


def spatter(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Water drops (severities 1-2) or mud (3-4), CIFAR-10-C's parameters.

    The water branch tints the liquid mask pale turquoise directly; CIFAR-10-C
    further shapes it with OpenCV edge and distance transforms (not available here).
    """
    c = [(0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
         (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)][s - 1]
    liquid = ndimage.gaussian_filter(rng.normal(c[0], c[1], size=x.shape[:2]), c[2])
    liquid[liquid < c[3]] = 0.0
    if c[5] == 0:
        mask = liquid / (liquid.max() + 1e-8) * c[4]
        return np.clip(x + mask[..., None] * np.array([175, 238, 238]) / 255.0, 0.0, 1.0)
    mask = ndimage.gaussian_filter((liquid > c[3]).astype(float), c[4])
    mask[mask < 0.8] = 0.0
    mud = np.array([63, 42, 20]) / 255.0
    return np.clip(x * (1 - mask[..., None]) + mud * mask[..., None], 0.0, 1.0)


def elastic(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine warp of three anchor points, then a smooth random displacement field."""
    size = x.shape[0]
    c = [(size * 0.05, size * 0.2, size * 0.07), (size * 0.08, size * 0.06, size * 0.06),
         (size * 0.1, size * 0.04, size * 0.05), (size * 0.1, size * 0.03, size * 0.03)][s - 1]
    centre, half = size // 2, size // 3
    src = np.array([[centre + half, centre + half], [centre + half, centre - half],
                    [centre - half, centre - half]], dtype=float)
    dst = src + rng.uniform(-c[2], c[2], size=src.shape)
    # the affine map taking output coordinates back to input coordinates (dst -> src)
    back = np.linalg.lstsq(np.c_[dst, np.ones(3)], src, rcond=None)[0]
    dx, dy = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(size, size)), c[1], mode="reflect",
                                      truncate=3) * c[0] for _ in range(2))
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    grid = np.stack([cols + dx, rows + dy, np.ones_like(dx)], -1) @ back  # (x, y) order, as OpenCV
    out = np.stack([ndimage.map_coordinates(x[..., ch], [grid[..., 1], grid[..., 0]], order=1,
                                            mode="reflect") for ch in range(x.shape[2])], -1)
    return np.clip(out, 0.0, 1.0)


def _pil(x: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8))


def jpeg(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    _pil(x).save(buffer, "JPEG", quality=[65, 58, 50, 40][s - 1])
    return np.asarray(Image.open(buffer), dtype=float) / 255.0


def pixelate(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    size = x.shape[0]
    small = int(size * [0.9, 0.85, 0.75, 0.65][s - 1])
    image = _pil(x).resize((small, small), Image.BOX).resize((size, size), Image.BOX)
    return np.asarray(image, dtype=float) / 255.0


def saturate(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    scale, shift = [(0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)][s - 1]
    return _hsv_shift(x, 1, scale, shift)


Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
CORRUPTIONS: dict[str, Corruption] = {
    "snow": snow, "frost": frost, "fog": fog, "brightness": brightness, "contrast": contrast,
    "spatter": spatter, "elastic": elastic, "jpeg": jpeg, "pixelate": pixelate,
    "saturate": saturate,
}


def corrupt(pixels: Tensor, attribute: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """RGB pixels ``(N, 3, H, W)`` in [0, 1] -> corruption ``CORRUPTION_NAMES[attribute[i]]`` per image.

    One numpy generator, seeded from ``generator``, draws every image's
    randomness in row order; the result is stored as 8-bit.
    """
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    images = pixels.permute(0, 2, 3, 1).double().numpy()
    out = np.stack([CORRUPTIONS[CORRUPTION_NAMES[int(b)]](img, severity, rng)
                    for img, b in zip(images, attribute.tolist())])
    out = np.floor(np.clip(out, 0.0, 1.0) * 255.0) / 255.0
    return torch.from_numpy(out).float().permute(0, 3, 1, 2).contiguous()


__all__ = ["CORRUPTIONS", "CORRUPTION_NAMES", "Corruption", "corrupt"]
