"""ZCA whitening as a data transform: fit on one set, apply to any set of the same shape.

The privacy paper (Dong et al. 2022) runs KIP with and without ZCA
preprocessing, as KIP's authors do (Nguyen et al. 2021). For the flattened
images ``X`` (n, d), with mean ``m`` and covariance
``C = (X - m)^T (X - m) / n = U diag(s) U^T``, the whitening matrix is

    W = U diag(1 / sqrt(s + reg * mean(s))) U^T,

and a row ``x`` maps to ``(x - m) W``. ``W`` is symmetric (ZCA is the
whitening that stays closest to the original pixels, unlike PCA whitening,
which rotates them). The regulariser is *relative* to the mean eigenvalue
``mean(s) = trace(C) / d``, so one ``reg`` means the same on MNIST and
CIFAR-10: it damps the directions of tiny variance (noise, or none at all
when n < d) that plain whitening would blow up. KIP's reference
preprocessing regularises the same way (``reg * trace(C) / d``); it also
standardises every image first and treats the rank-deficient directions
separately, which we leave to the caller.

Everything is computed in float64 (the covariance of 784 or 3072 pixels is
badly conditioned); :meth:`ZCA.apply` returns float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import _check
from .dataset import ImageData
from .derived import BuiltRows, register_derived


@dataclass(frozen=True, eq=False)  # eq=False: tensors do not compare to one bool
class ZCA:
    """A fitted whitening: ``mean`` (d,) and the symmetric ``matrix`` (d, d), both float64."""

    mean: Tensor
    matrix: Tensor

    def apply(self, images: Tensor) -> Tensor:
        """Whiten ``images`` (n, ...) with d features each; same shape, float32."""
        flat = images.detach().reshape(images.shape[0], -1).to(torch.float64)
        if flat.shape[1] != self.mean.shape[0]:
            raise ValueError(f"ZCA was fitted on {self.mean.shape[0]} features per image, "
                             f"got images of shape {tuple(images.shape[1:])}.")
        whitened = (flat - self.mean.to(flat.device)) @ self.matrix.to(flat.device)
        return whitened.to(torch.float32).reshape(images.shape)


def fit_zca(images: Tensor, reg: float = 0.1) -> ZCA:
    """Fit ZCA whitening to ``images`` (n, ...), flattened; ``reg`` > 0 relative to the mean eigenvalue."""
    if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg > 0:
        raise ValueError(f"fit_zca: reg must be a number > 0 (relative to the mean eigenvalue), got {reg!r}.")
    if not isinstance(images, Tensor) or images.ndim < 2 or images.shape[0] < 2:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"fit_zca needs at least 2 images (n, ...), got {shape}.")
    flat = images.detach().reshape(images.shape[0], -1).to(torch.float64)
    mean = flat.mean(0)
    centred = flat - mean
    cov = centred.T @ centred / flat.shape[0]
    eigvals, eigvecs = torch.linalg.eigh(cov)
    eigvals = eigvals.clamp(min=0.0)  # round-off can make zero eigenvalues slightly negative
    if float(eigvals.mean()) == 0.0:
        raise ValueError("fit_zca: the images do not vary (all equal); there is nothing to whiten.")
    scale = (eigvals + reg * eigvals.mean()).rsqrt()
    matrix = (eigvecs * scale) @ eigvecs.T
    # Averaging with the transpose makes W == W.T exactly (floating-point a + b == b + a).
    matrix = (matrix + matrix.T) / 2
    return ZCA(mean.cpu(), matrix.cpu())


@dataclass(frozen=True)
class ZCAConfig:
    """ZCA's regulariser, relative to the mean eigenvalue of the covariance; > 0."""

    reg: float = 0.1

    def __post_init__(self) -> None:
        _check(not isinstance(self.reg, bool) and isinstance(self.reg, (int, float))
               and self.reg > 0, self, "reg", self.reg, "a number > 0")


def _check_zca(parent: ImageData, cfg: ZCAConfig, fit_on: ImageData | None = None) -> None:
    if fit_on is None:
        return
    if not isinstance(fit_on, ImageData):
        raise ValueError(f"zca: fit_on must be an ImageData or None, got {type(fit_on).__name__}.")
    if fit_on.shape != parent.shape:
        raise ValueError(f"zca: fit_on has images of shape {fit_on.shape}, the data set {parent.shape}; "
                         "fit on images of the same shape.")


@register_derived("zca", ZCAConfig, check=_check_zca)
def zca(parent: ImageData, cfg: ZCAConfig, generator: torch.Generator, *,
        fit_on: ImageData | None = None) -> BuiltRows:
    """The parent's images whitened with a ZCA fitted on ``fit_on`` (default: the parent itself).

    Fit on the training set, apply to the test set: ``derive("zca", test,
    fit_on=train)``. The result keeps the parent's ``mean``/``std`` fields,
    but its images are no longer normalised pixels: do not map them back with
    :func:`ddrepro.pixels.to_pixels`. Deterministic: ``generator`` is not used.
    """
    whitening = fit_zca((parent if fit_on is None else fit_on).images, cfg.reg)
    return BuiltRows(whitening.apply(parent.images), parent.labels)


__all__ = ["ZCA", "ZCAConfig", "fit_zca"]
