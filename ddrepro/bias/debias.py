"""Debiased distillation by sample reweighting: inverse density in a bias-capturing feature space.

Lu et al. (2024, Eq. 6) ask a biased DD to keep the unbiased attributes of a
class and discount the biased ones, and leave the method to future work. The
reweighting of Cui et al. (ICML 2024) is one answer for a class-mean matcher
such as DM: estimate, within each class ``c``, the density ``p_c(z)`` of the
real images in a feature space ``z = phi(x)`` that captures the *bias* (a
colour, a corruption), and weight image ``i`` by

    w_i  proportional to  p_c(z_i) ** (-power),   normalised to mean 1 per class,

so the bias-aligned majority, which sits in one dense mode, counts about as
much in total as each sparse mode of bias-conflicting images. With
``power = 1`` and well separated modes every mode gets the same total weight,
which turns DM's class mean ``sum_i w_i psi(x_i) / sum_i w_i`` into the mean of
a class whose bias attribute is balanced. The weights enter DM through
``ImageData.weights`` (``real.with_weights(w)``); nothing here reads the true
bias attribute: the extractor sees pixels only.

Feature spaces (``DebiasConfig.features``):

* ``"colour"``: the mean RGB of an image's foreground (pixels brighter than
  ``foreground`` of the image's brightest), divided by its largest channel so
  that stroke thickness and brightness drop out: a colour-sensitive extractor
  chosen by the analyst who suspects a colour shortcut;
* ``"pixels"``: the image's pixels downsampled to 4x4 (a generic, weaker choice).

How the weights enter DM (``DebiasConfig.sampling``):

* ``"weights"``: DM draws its uniform real batch per class and takes the *weighted* class mean
  of that batch. At 95 % aligned a batch of 32 holds ~1.6 conflicting images, which then carry
  most of the weight (issue 25): the mean rests on a few images, its effective batch size
  ``(sum w)^2 / sum w^2`` (Kish) falls far below 32, and a batch with no conflicting image at
  all gives the plain aligned mean.
* ``"resample"``: the class's rows are redrawn once, with replacement, with probabilities
  proportional to the weights (:func:`resample_by_weight`), and DM takes plain means of uniform
  batches of the redrawn set: every batch holds conflicting images in the weighted share.

:func:`batch_effective_sizes` measures both by simulating DM's per-class batches.

The density is scikit-learn's :class:`~sklearn.neighbors.KernelDensity`
(Gaussian kernel, ``bandwidth`` in feature units). ``bandwidth="cv"`` chooses
it per class by 5-fold cross-validated log-likelihood of the class's own
features over :data:`BANDWIDTH_GRID` (scikit-learn's ``GridSearchCV``): an
unsupervised choice that reads neither the bias attribute nor any test image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..config import _check
from ..data.dataset import ImageData
from ..pixels import to_pixels

FEATURES = ("colour", "pixels")
SAMPLINGS = ("weights", "resample")
# Candidate bandwidths of bandwidth="cv", in feature units (chromaticities lie in [0, 1]).
BANDWIDTH_GRID = tuple(float(h) for h in np.logspace(-3, 0, 13))


@dataclass(frozen=True)
class DebiasConfig:
    """Inverse-density reweighting: ``features`` (``"colour"`` | ``"pixels"``), Gaussian KDE
    ``bandwidth`` (a number, or ``"cv"``: :func:`select_bandwidth` per class), exponent ``power`` in (0, 1] (1: full inverse density; ours),
    ``foreground`` threshold in (0, 1) of the colour extractor, ``max_weight`` cap relative to
    the class's mean weight (None: no cap), ``sampling`` how DM uses the weights (``"weights"``:
    weighted means of uniform batches; ``"resample"``: the set redrawn by weight, module docstring)."""

    features: str = "colour"
    bandwidth: float | str = 0.05
    power: float = 1.0
    foreground: float = 0.5
    max_weight: float | None = None
    sampling: str = "weights"

    def __post_init__(self) -> None:
        _check(self.features in FEATURES, self, "features", self.features, f"one of {FEATURES}")
        _check(self.bandwidth == "cv" if isinstance(self.bandwidth, str) else self.bandwidth > 0,
               self, "bandwidth", self.bandwidth, "> 0 or 'cv'")
        _check(0.0 < self.power <= 1.0, self, "power", self.power, "in (0, 1]")
        _check(0.0 < self.foreground < 1.0, self, "foreground", self.foreground, "in (0, 1)")
        _check(self.max_weight is None or self.max_weight > 1.0, self, "max_weight",
               self.max_weight, "> 1 or None")
        _check(self.sampling in SAMPLINGS, self, "sampling", self.sampling, f"one of {SAMPLINGS}")


def foreground_colour(pixels: Tensor, threshold: float = 0.5) -> Tensor:
    """``(N, 3, H, W)`` pixels in [0, 1] -> ``(N, 3)`` chromaticity of each image's foreground.

    Foreground: pixels whose brightest channel exceeds ``threshold`` times the
    image's brightest pixel. The mean foreground colour is divided by its
    largest channel, so a thin faint digit and a thick bright one of the same
    paint give the same feature.
    """
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"foreground_colour needs RGB images (N, 3, H, W), got {tuple(pixels.shape)}.")
    value = pixels.amax(1, keepdim=True)
    peak = value.flatten(1).amax(1).clamp_min(1e-8)
    mask = (value >= threshold * peak[:, None, None, None]).to(pixels.dtype)
    mean = (pixels * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1.0)
    return mean / mean.amax(1, keepdim=True).clamp_min(1e-8)


def bias_features(real: ImageData, cfg: DebiasConfig) -> Tensor:
    """The feature of every real image in which the bias is expected to show (``cfg.features``)."""
    pixels = to_pixels(real.images.detach().cpu(), real.mean, real.std).clamp(0.0, 1.0)
    if cfg.features == "colour":
        return foreground_colour(pixels, cfg.foreground)
    return torch.nn.functional.adaptive_avg_pool2d(pixels, 4).flatten(1)


def select_bandwidth(points: np.ndarray, grid: tuple[float, ...] = BANDWIDTH_GRID,
                     folds: int = 5) -> float:
    """The bandwidth of ``grid`` with the highest held-out log-likelihood of ``points`` ``(n, d)``
    (``folds``-fold cross-validation, scikit-learn's ``GridSearchCV``; ties: the smallest)."""
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KernelDensity

    if points.shape[0] < 2:
        raise ValueError(f"select_bandwidth needs >= 2 points, got {points.shape[0]}.")
    # shuffled folds: the rows of a class may be ordered by attribute
    cv = KFold(n_splits=min(folds, points.shape[0]), shuffle=True, random_state=0)
    search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": list(grid)}, cv=cv)
    return float(search.fit(points).best_params_["bandwidth"])


def inverse_density_weights(features: Tensor, labels: Tensor, num_classes: int,
                            cfg: DebiasConfig) -> Tensor:
    """Per-sample weights ``p_c(z_i) ** -power`` with a KDE per class, mean 1 within each class."""
    from sklearn.neighbors import KernelDensity

    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features must be (N, d) with one row per label; got "
                         f"{tuple(features.shape)} for {labels.shape[0]} labels.")
    weights = torch.ones(len(labels), dtype=torch.float64)
    feats = features.double().numpy()
    for c in range(num_classes):
        rows = torch.nonzero(labels == c).flatten()
        if rows.numel() < 2:
            continue
        bandwidth = select_bandwidth(feats[rows]) if cfg.bandwidth == "cv" else cfg.bandwidth
        kde = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(feats[rows])
        log_density = kde.score_samples(feats[rows])
        w = np.exp(-cfg.power * (log_density - log_density.max()))  # shifted: no overflow
        w = w / w.mean()
        if cfg.max_weight is not None:  # cap, then renormalise (a few passes converge)
            for _ in range(10):
                w = np.minimum(w, cfg.max_weight)
                w = w / w.mean()
        weights[rows] = torch.from_numpy(w)
    return weights.float()


def debias_weights(real: ImageData, cfg: DebiasConfig = DebiasConfig()) -> Tensor:
    """Inverse-density weights of ``real``'s rows, from pixels and labels only."""
    return inverse_density_weights(bias_features(real, cfg), real.labels.cpu(), real.num_classes, cfg)


def resample_by_weight(real: ImageData, weights: Tensor, seed: int) -> ImageData:
    """``real`` redrawn per class with replacement, as many rows as the class has, row ``i`` drawn
    with probability ``w_i / sum_c w`` (``seed`` drives the draw); the result is unweighted."""
    if weights.shape != (len(real),) or bool((weights < 0).any()):
        raise ValueError(f"resample_by_weight needs one weight >= 0 per row; got "
                         f"{tuple(weights.shape)} for {len(real)} rows.")
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for rows in real.indices_by_class():
        if rows.numel() == 0:
            continue
        w = weights[rows].double()
        if float(w.sum()) <= 0:
            raise ValueError("resample_by_weight: a class has zero total weight.")
        picks.append(rows[torch.multinomial(w, rows.numel(), replacement=True, generator=gen)])
    return real.take(torch.cat(picks).long()).with_weights(None)


def debiased(real: ImageData, cfg: DebiasConfig = DebiasConfig(), seed: int = 0) -> ImageData:
    """``real`` reweighted by :func:`debias_weights`: as per-sample weights (DM's weighted class
    means, ``sampling="weights"``) or redrawn by weight (``"resample"``, ``seed`` drives it)."""
    weights = debias_weights(real, cfg)
    if cfg.sampling == "resample":
        return resample_by_weight(real, weights, seed)
    return real.with_weights(weights)


def kish_size(weights: Tensor) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``: n for equal weights, 1 for one."""
    w = weights.double()
    total = float((w ** 2).sum())
    if total <= 0:
        raise ValueError("kish_size needs at least one positive weight.")
    return float(w.sum()) ** 2 / total


def batch_effective_sizes(weights: Tensor | None, labels: Tensor, batch: int, draws: int, seed: int,
                          groups: Tensor | None = None) -> dict[str, float]:
    """DM's real batches simulated: ``draws`` batches of ``min(batch, class size)`` rows per class,
    uniform without replacement (as :meth:`ddrepro.condense.base.Context.sample_indices`).

    Returns the mean Kish size of a class's batch under ``weights`` (None: equal weights; a
    row drawn twice counts twice, as in a resampled set) and, given ``groups`` (1 = minority,
    an evaluation aid), the share of class batches with no minority row and the minority's
    mean share of a batch's weight."""
    gen = torch.Generator().manual_seed(seed)
    sizes, empty, share = [], [], []
    classes = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]
    n = min(batch, min(int(rows.numel()) for rows in classes))
    for _ in range(draws):
        for rows in classes:
            pick = rows[torch.randperm(rows.numel(), generator=gen)[:n]]
            w = torch.ones(n, dtype=torch.float64) if weights is None else weights[pick].double()
            sizes.append(kish_size(w))
            if groups is not None:
                minority = groups[pick].bool()
                empty.append(float(not bool(minority.any())))
                share.append(float(w[minority].sum() / w.sum()))
    out = {"batch": float(n), "effective batch": float(np.mean(sizes))}
    if groups is not None:
        out |= {"batches with no minority row (%)": 100 * float(np.mean(empty)),
                "minority share of a batch's weight (%)": 100 * float(np.mean(share))}
    return out


def effective_share(weights: Tensor, groups: Tensor) -> dict[int, float]:
    """The share of the total weight each group holds (an evaluation aid: it reads ``groups``)."""
    total = float(weights.sum())
    return {int(g): float(weights[groups == g].sum()) / total for g in torch.unique(groups)}


__all__ = ["BANDWIDTH_GRID", "DebiasConfig", "FEATURES", "SAMPLINGS", "batch_effective_sizes",
           "bias_features", "debias_weights", "debiased", "effective_share", "foreground_colour",
           "inverse_density_weights", "kish_size", "resample_by_weight", "select_bandwidth"]
