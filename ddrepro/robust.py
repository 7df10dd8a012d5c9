"""Class-mean estimators for distribution matching (the real side of DM's Eq. 6).

DM (Zhao & Bilen 2023; Eq. 6 of Dong et al. 2022) matches the *mean* embedding
of each class's real images with that of its synthetic images. RDM-DC (Zheng &
Li) replaces the real-side mean with robust estimates (median, trimmed mean,
calibrated mean) to resist poisoned samples. Every estimator here has one
signature, ``(feats: (n, d), weights: (n,) | None) -> (d,)``, and is looked up
by name in :data:`MEAN_ESTIMATORS` (``DMConfig.mean_estimator``).

Estimators see one class at a time; callers batch them over classes with
``torch.vmap`` (see :func:`ddrepro.condense.dm.real_class_means`), so an
estimator must be written with tensor ops only: no ``.item()``, no
data-dependent Python control flow.
"""

from __future__ import annotations

from typing import Callable

import torch

from .registry import Registry

MeanEstimator = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]

MEAN_ESTIMATORS: Registry[MeanEstimator] = Registry("mean estimator")


@MEAN_ESTIMATORS.register("mean")
def weighted_mean(feats: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The barycentre ``sum_i w_i f_i / sum_i w_i`` (plain mean when ``weights`` is None).

    With weights it is the importance-weighted class mean the debiasing
    chapter needs; a class whose sampled weights sum to zero gives NaN, which
    the condenser's finiteness check then reports.
    """
    if weights is None:
        return feats.mean(0)
    weights = weights.to(feats.dtype)
    return (weights @ feats) / weights.sum()


def get_mean_estimator(name: str) -> MeanEstimator:
    """The estimator registered as ``name``; unknown names raise ``ValueError`` listing the known ones."""
    return MEAN_ESTIMATORS.get(name)


__all__ = ["MEAN_ESTIMATORS", "MeanEstimator", "weighted_mean", "get_mean_estimator"]
