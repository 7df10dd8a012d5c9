"""Biased data sets for dataset distillation: CMNIST-DD and CCIFAR10-DD (Lu et al. 2024, Sec. 3).

Each class ``y`` has one *bias attribute* ``b = y`` (a colour for CMNIST-DD, a
corruption for CCIFAR10-DD). A training set with biased ratio ``r`` % has, in
every class, ``r`` % *bias-aligned* images (attribute = class) and the rest
*bias-conflicting*, shared equally among the other nine attributes
(Sec. 3.1: biased ratio = N_ba / (N_ba + N_bc)).

What the authors' released generator does (github.com/yaolu-zjut/Biased-DD,
``biased_mnist_v1.py``, ``biased_cifar10.py``; checked for this module), and
what we follow:

* Counts, not coin flips. Class ``c`` with ``n_c`` images gets attribute
  ``a`` for ``round(n_c * cumsum(p)[a]) - round(n_c * cumsum(p)[a - 1])``
  images, with ``p[c] = r`` and ``p[a != c] = (1 - r) / 9``, so the ratio is
  exact up to rounding. The release hands the attributes out in the data
  set's row order; we hand them out in a seeded random order of the class's
  rows (same counts; ``seed`` picks which images).
* The test set is built with ``r = 0``: *every* test image is
  bias-conflicting, and so is every training image at 0 %, which is
  therefore anti-correlated with the class, not independent of it. We build
  that test set (``ratio=0``) and, for the aligned-vs-conflicting analysis,
  an all-aligned one (``ratio=100``).
* CMNIST-DD colouring: ``pixel * clamp(colour[b] + N(0, s^2 I_3), 0, 1)``
  with one jitter draw per image and ``s`` = 0.05, 0.02, 0.01, 0.005 at
  severity 1-4, stored as 8-bit (``floor(255 x) / 255``, as the release's
  ``astype(uint8)``). The ten colours are LfF's ``colors.th`` (Nam et al.
  2020), which the release loads from a local path that is *not* in the
  repository: the values below come from the chapter's issue and could not be
  checked against the file.
* CCIFAR10-DD: corruption ``b`` at the protocol's severity ``severity + 1``
  (Hendrycks & Dietterich's CIFAR-10-C parameters, as the release calls them);
  our implementations use numpy/scipy/Pillow, see :data:`CORRUPTIONS`.

A builder here is like :func:`ddrepro.data.derive` (cached by config, seed,
parent digest and code; rows 1:1 with the parent, ``source_index`` and
``weights`` kept; a new root identified by its artifact key) but may change the
channel count and statistics (a grey MNIST image becomes an RGB one), which
``derive`` does not allow. Pixels are cached as uint8.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from ..artifacts import artifact_key, cached
from ..config import _check
from ..pixels import from_pixels, to_pixels
from ..runtime import make_generator
from .dataset import ImageData
from .fetching import DataMissingError
from .loading import load

# LfF's colors.th (RGB in [0, 1]): colour b is the bias attribute of digit b.
COLOURS = torch.tensor([
    (0.98368, 0.31252, 0.16858), (0.99053, 0.91561, 0.35151), (0.67296, 0.46107, 0.57981),
    (0.78325, 0.83156, 0.60133), (0.08802, 0.77796, 0.98181), (0.32139, 0.96105, 0.44645),
    (0.02462, 0.23565, 0.75867), (0.55525, 0.10158, 0.76176), (0.20772, 0.39295, 0.01870),
    (0.83366, 0.20241, 0.26694),
])
# Std of the per-image colour jitter at severity 1-4: higher severity, purer colour.
COLOUR_STD = {1: 0.05, 2: 0.02, 3: 0.01, 4: 0.005}
# The class -> corruption map of CCIFAR10-DD (paper, Fig. 1 caption).
CORRUPTION_NAMES = ("snow", "frost", "fog", "brightness", "contrast", "spatter", "elastic",
                    "jpeg", "pixelate", "saturate")


@dataclass(frozen=True)
class BiasedConfig:
    """A biased training or test set: ``ratio`` % bias-aligned images per class, ``severity`` 1-4."""

    ratio: float
    severity: int = 4

    def __post_init__(self) -> None:
        _check(not isinstance(self.ratio, bool) and isinstance(self.ratio, (int, float))
               and 0.0 <= self.ratio <= 100.0, self, "ratio", self.ratio,
               "a percentage in [0, 100] (e.g. 95 for 95 % bias-aligned)")
        _check(self.severity in (1, 2, 3, 4) and not isinstance(self.severity, bool), self,
               "severity", self.severity, "one of 1, 2, 3, 4")


def attribute_counts(class_size: int, label: int, ratio: float, num_classes: int) -> Tensor:
    """How many of a class's ``class_size`` images get each attribute (the release's milestones)."""
    share = torch.full((num_classes,), (1.0 - ratio / 100.0) / (num_classes - 1), dtype=torch.float64)
    share[label] = ratio / 100.0
    milestones = torch.round(class_size * torch.cumsum(share, 0)).long()
    milestones[-1] = class_size  # float round-off must not lose the last image
    return torch.diff(milestones, prepend=torch.zeros(1, dtype=torch.long))


def bias_attributes(labels: Tensor, ratio: float, num_classes: int,
                    generator: torch.Generator) -> Tensor:
    """One bias attribute per row: exact per-class counts, assigned in a seeded order."""
    attrs = torch.empty_like(labels)
    for c in range(num_classes):
        rows = torch.nonzero(labels == c).flatten()
        rows = rows[torch.randperm(rows.numel(), generator=generator)]
        counts = attribute_counts(rows.numel(), c, ratio, num_classes)
        attrs[rows] = torch.arange(num_classes).repeat_interleave(counts)
    return attrs


def colourise(pixels: Tensor, colour: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Grey pixels ``(N, 1, H, W)`` in [0, 1] -> RGB ``(N, 3, H, W)``: each digit painted ``colour``.

    One jittered colour per image (std :data:`COLOUR_STD`), clamped to [0, 1],
    times the grey intensity: the background stays black; 8-bit floor as the release.
    """
    jitter = torch.randn(len(colour), 3, generator=generator) * COLOUR_STD[severity]
    paint = (COLOURS[colour] + jitter).clamp(0.0, 1.0)
    return torch.floor(pixels * paint[:, :, None, None] * 255.0) / 255.0


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


# -- the builders -----------------------------------------------------------------------

def _build_biased(kind: str, parent: ImageData, cfg: BiasedConfig, seed: int, cache: bool,
                  paint: Callable[[Tensor, Tensor, int, torch.Generator], Tensor],
                  mean: tuple[float, ...], std: tuple[float, ...]) -> ImageData:
    """The shared builder: attributes, pixels (cached as uint8), a new root ImageData."""
    if not isinstance(cfg, BiasedConfig):
        raise ValueError(f"{kind} takes a BiasedConfig, got {type(cfg).__name__}.")
    if not isinstance(parent, ImageData):
        raise ValueError(f"{kind} needs an ImageData parent, got {type(parent).__name__}.")
    if parent.num_classes != len(COLOURS):
        raise ValueError(f"{kind} needs a 10-class parent, got {parent.num_classes} classes.")
    generator = make_generator(seed)
    parts = {"builder": kind, "config": cfg, "seed": seed, "parent": parent.digest()}
    code = (paint, __name__)

    def compute() -> dict[str, Tensor]:
        attribute = bias_attributes(parent.labels.cpu(), cfg.ratio, parent.num_classes, generator)
        grey = to_pixels(parent.images.detach().cpu(), parent.mean, parent.std).clamp(0.0, 1.0)
        pixels = paint(grey, attribute, cfg.severity, generator)
        return {"pixels": torch.round(pixels * 255).to(torch.uint8), "attribute": attribute}

    stored = cached("derived", parts, compute, code=code, enabled=cache)
    images = from_pixels(stored["pixels"].float() / 255.0, mean, std)
    attribute = stored["attribute"]
    return ImageData(
        images, parent.labels.cpu().clone(), kind, parent.split, mean, std, parent.classes,
        parent.flip_ok, weights=parent.weights, source_index=parent.source_index,
        attrs={**parent.attrs, "bias": attribute, "aligned": attribute == parent.labels.cpu()},
        content_id=artifact_key("derived", parts, code=code),
    )


def cmnist_dd(parent: ImageData, cfg: BiasedConfig, *, seed: int = 0, cache: bool = True) -> ImageData:
    """CMNIST-DD from (a subset of) MNIST: attrs ``colour`` = ``bias`` (0-9) and ``aligned`` (bool).

    Normalised with MNIST's mean and std in every channel.
    """
    if parent.shape[0] != 1:
        raise ValueError(f"cmnist_dd colours grey digits; the parent has {parent.shape[0]} channels.")
    out = _build_biased("cmnist_dd", parent, cfg, seed, cache, _paint_colour,
                        tuple(parent.mean) * 3 if len(parent.mean) == 1 else parent.mean,
                        tuple(parent.std) * 3 if len(parent.std) == 1 else parent.std)
    return out.with_attrs(colour=out.attrs["bias"])


def _paint_colour(grey: Tensor, attribute: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    return colourise(grey, attribute, severity, generator)


def ccifar10_dd(parent: ImageData, cfg: BiasedConfig, *, seed: int = 0, cache: bool = True) -> ImageData:
    """CCIFAR10-DD from (a subset of) CIFAR-10: attrs ``corruption`` = ``bias`` (0-9), ``aligned``."""
    if parent.shape[0] != 3:
        raise ValueError(f"ccifar10_dd corrupts RGB images; the parent has {parent.shape[0]} channels.")
    out = _build_biased("ccifar10_dd", parent, cfg, seed, cache, corrupt, tuple(parent.mean),
                        tuple(parent.std))
    return out.with_attrs(corruption=out.attrs["bias"])


BIASED_SETS = {"cmnist_dd": ("mnist", cmnist_dd), "ccifar10_dd": ("cifar10", ccifar10_dd)}


def load_biased(name: str, split: str, ratio: float, severity: int = 4, *, seed: int = 0,
                per_class: int | None = None, size: int | None = None, root=None,
                cache: bool = True) -> ImageData:
    """A biased split: ``per_class`` (or ``size``) images of the parent's split, then biased.

    The test split of the paper is ``ratio=0`` (every image bias-conflicting);
    ``ratio=100`` gives the bias-aligned test set.
    """
    if name not in BIASED_SETS:
        raise ValueError(f"unknown biased data set {name!r}; valid: {', '.join(BIASED_SETS)}.")
    cfg = BiasedConfig(ratio=ratio, severity=severity)  # checked before any data is read
    parent_name, build = BIASED_SETS[name]
    try:
        parent = load(parent_name, split, root)
    except DataMissingError as err:
        raise DataMissingError(f"{name} is built from {parent_name}, which is missing: {err}") from None
    parent = parent.subset_per_class(per_class, seed=seed).subset(size, seed=seed)
    return build(parent, cfg, seed=seed, cache=cache)


__all__ = ["BIASED_SETS", "BiasedConfig", "COLOURS", "COLOUR_STD", "CORRUPTIONS", "CORRUPTION_NAMES",
           "attribute_counts", "bias_attributes", "ccifar10_dd", "cmnist_dd", "colourise", "corrupt",
           "load_biased"]
