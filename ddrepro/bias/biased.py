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
  2020), which the release loads from a local path that is *not* in its
  repository; they agree to 5e-6 with ``data/resource/colors.th`` of
  github.com/alinlab/LfF (commit e66796e), whose values
  ``tests/bias/test_biased.py`` stores and compares.
* CCIFAR10-DD: corruption ``b`` at the protocol's severity ``severity + 1``
  (Hendrycks & Dietterich's CIFAR-10-C parameters, as the release calls them);
  our implementations use numpy/scipy/Pillow, see :mod:`ddrepro.bias.corruptions`.

A builder here is like :func:`ddrepro.data.derive` (cached by config, seed,
parent digest and code; rows 1:1 with the parent, ``source_index`` and
``weights`` kept; a new root identified by its artifact key) but may change the
channel count and statistics (a grey MNIST image becomes an RGB one), which
``derive`` does not allow. Pixels are cached as uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..artifacts import artifact_key, cached
from ..config import _check
from ..pixels import from_pixels, to_pixels
from ..runtime import make_generator
from .corruptions import CORRUPTION_NAMES, CORRUPTIONS, corrupt
from ..data.dataset import ImageData
from ..data.fetching import DataMissingError
from ..data.loading import load

# LfF's colors.th (RGB in [0, 1]): colour b is the bias attribute of digit b.
COLOURS = torch.tensor([
    (0.98368, 0.31252, 0.16858), (0.99053, 0.91561, 0.35151), (0.67296, 0.46107, 0.57981),
    (0.78325, 0.83156, 0.60133), (0.08802, 0.77796, 0.98181), (0.32139, 0.96105, 0.44645),
    (0.02462, 0.23565, 0.75867), (0.55525, 0.10158, 0.76176), (0.20772, 0.39295, 0.01870),
    (0.83366, 0.20241, 0.26694),
])
# Std of the per-image colour jitter at severity 1-4: higher severity, purer colour.
COLOUR_STD = {1: 0.05, 2: 0.02, 3: 0.01, 4: 0.005}


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
