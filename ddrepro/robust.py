"""Class-mean estimators for distribution matching (the real side of DM's Eq. 6).

DM (Zhao & Bilen 2023; Eq. 6 of Dong et al. 2022) matches the *mean* embedding
of each class's real images with that of its synthetic images. RDM-DC (Zheng &
Li, UAI 2023, Alg. 3) replaces the real-side mean by a *calibrated* mean
(Alg. 4, with the power method of Alg. 5) so that a few poisoned images cannot
drag it; the paper's baselines (Sec. 4.5) are the coordinate-wise median, the
trimmed mean and the truncated mean.

An estimator is chosen by a small frozen :class:`MeanEstimatorConfig` (name,
poisoning rate ``rate`` = eps_p, power-method iterations), which is part of
``DMConfig`` and therefore of the condenser's cache key; the plain mean is
still named by the string ``"mean"`` (so DM's cache keys did not change).
Every robust estimator drops ``k = ceil(3 eps_p N)`` of a batch of ``N``
representations, the paper's choice (Sec. 4.3 and 5.1); eps_p is the
poisons' share *of their class* when they all sit in one class.

Estimators see one class at a time, ``(n, d) -> (d,)``; :func:`class_means`
batches them over classes with ``torch.vmap``, so they are written with tensor
ops only: no ``.item()``, no data-dependent Python control flow (``k`` is a
Python int fixed by ``n``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import torch
from torch import Tensor

from .registry import Registry

# (feats (n, d), spec, start (d,): the power method's start vector) -> (d,)
MeanEstimator = Callable[[Tensor, "MeanEstimatorConfig", Tensor], Tensor]

MEAN_ESTIMATORS: Registry[MeanEstimator] = Registry("mean estimator")

# The paper drops ceil(3 eps N) representations (Sec. 4.3: about 2 eps would be
# dropped by the ideal threshold, one eps of them clean; 3 eps leaves a margin).
DROP_FACTOR = 3


@dataclass(frozen=True)
class MeanEstimatorConfig:
    """Which class-mean estimator DM uses on the real side, and its parameters.

    ``name``: one of :data:`MEAN_ESTIMATORS` ("mean", "calibrated", "median",
    "trimmed", "truncated"). ``rate``: the poisoning rate eps_p the defender
    assumes, in (0, 0.5) for the robust estimators (0 for the plain mean);
    ``k = ceil(3 rate N)`` representations of a batch of N are dropped.
    ``power_iterations``: iterations of the power method (Alg. 5, "a few"),
    used by "calibrated" only.
    """

    name: str = "mean"
    rate: float = 0.0
    power_iterations: int = 10

    def __post_init__(self) -> None:
        if self.name not in MEAN_ESTIMATORS:
            raise ValueError(f"MeanEstimatorConfig.name = {self.name!r} is invalid: it must be one of "
                             f"{MEAN_ESTIMATORS.names()}.")
        if self.name == "mean":
            if self.rate != 0.0:
                raise ValueError(f"MeanEstimatorConfig.rate = {self.rate!r} is invalid for the plain "
                                 "mean, which drops nothing: leave it at 0 or pick a robust estimator.")
        elif not (isinstance(self.rate, (int, float)) and 0.0 < self.rate < 0.5):
            raise ValueError(f"MeanEstimatorConfig.rate = {self.rate!r} is invalid: the poisoning rate "
                             "eps_p must be in (0, 0.5) (e.g. 0.1 for 1% poisons all in one of 10 classes).")
        if isinstance(self.power_iterations, bool) or not isinstance(self.power_iterations, int) \
                or self.power_iterations < 1:
            raise ValueError(f"MeanEstimatorConfig.power_iterations = {self.power_iterations!r} is "
                             "invalid: it must be an integer >= 1.")

    @property
    def robust(self) -> bool:
        """Whether it drops or down-weights anything (everything but the plain mean)."""
        return self.name != "mean"

    def drop_count(self, n: int) -> int:
        """``k = ceil(3 eps_p n)`` (0 for the plain mean); ``ValueError`` when ``k >= n``."""
        if not self.robust:
            return 0
        k = math.ceil(DROP_FACTOR * self.rate * n - 1e-9)  # 1e-9: 3 * 0.1 * 10 is 3.0000000000000004
        if k >= n:
            raise ValueError(f"{self.name} mean with rate {self.rate} drops k = ceil(3 * {self.rate} * {n}) "
                             f"= {k} of a batch of {n}: nothing would be left; use a larger batch "
                             "(batch_real) or a smaller rate.")
        return k


EstimatorSpec = Union[str, MeanEstimatorConfig]


def as_config(spec: EstimatorSpec) -> MeanEstimatorConfig:
    """``"mean"`` or a :class:`MeanEstimatorConfig` -> the config; a robust name alone is an error."""
    if isinstance(spec, MeanEstimatorConfig):
        return spec
    if isinstance(spec, str):
        MEAN_ESTIMATORS.get(spec)  # unknown names list the registered ones
        if spec != "mean":
            raise ValueError(f"mean estimator {spec!r} needs a poisoning rate: pass "
                             f"MeanEstimatorConfig({spec!r}, rate=...) instead of the bare name.")
        return MeanEstimatorConfig()
    raise ValueError(f"a mean estimator is 'mean' or a MeanEstimatorConfig, got {type(spec).__name__}.")


# -- the estimators (one class, (n, d) -> (d,)) ----------------------------------

def weighted_mean(feats: Tensor, weights: Tensor | None = None) -> Tensor:
    """The barycentre ``sum_i w_i f_i / sum_i w_i`` (plain mean when ``weights`` is None).

    With weights it is the importance-weighted class mean the debiasing
    chapter needs; a class whose sampled weights sum to zero gives NaN, which
    the condenser's finiteness check then reports.
    """
    if weights is None:
        return feats.mean(0)
    weights = weights.to(feats.dtype)
    return (weights @ feats) / weights.sum()


def start_vector(d: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Tensor:
    """Alg. 5's random start ``v ~ N(0, I)``, drawn from a fixed seed.

    Fixed so that the estimator is a deterministic function of its input
    (same batch, same mean); drawn outside ``vmap`` (which refuses random ops)
    and passed in.
    """
    generator = torch.Generator().manual_seed(0)
    return torch.randn(d, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)


def power_method(centred: Tensor, iterations: int, start: Tensor | None = None) -> Tensor:
    """Top eigenvector of the covariance of ``centred`` ``(n, d)`` rows, by Alg. 5.

    ``v <- Sigma v / ||Sigma v||`` with ``Sigma v`` computed as
    ``centred^T (centred v)``, O(n d) per iteration instead of forming the
    ``d x d`` covariance (its 1/(N-1) factor cancels in the normalisation).
    """
    v = start_vector(centred.shape[-1], centred.dtype, centred.device) if start is None else start
    for _ in range(iterations):  # a fixed count: fine under vmap
        v = centred.T @ (centred @ v)
        v = v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)
    return v


def _mean_of_lowest(feats: Tensor, scores: Tensor, k: int) -> Tensor:
    """Mean of the ``n - k`` rows with the smallest scores (drop the ``k`` highest)."""
    keep = scores.argsort()[: feats.shape[0] - k]
    return feats[keep].mean(0)


def calibrated_mean(feats: Tensor, k: int, iterations: int, start: Tensor | None = None) -> Tensor:
    """Mean calibration, Alg. 4: drop the ``k`` rows farthest from the mean along the top direction.

    Score ``|<r_i - mean, v>|`` with ``v`` the covariance's top eigenvector
    (:func:`power_method`), drop the ``k`` highest scores, average the rest.
    """
    centre = feats.mean(0)
    centred = feats - centre
    v = power_method(centred, iterations, start)
    return _mean_of_lowest(feats, (centred @ v).abs(), k)


def coordinate_median(feats: Tensor) -> Tensor:
    """Coordinate-wise median (Sec. 4.5); the midpoint of the two middle values for even ``n``."""
    ordered = feats.sort(0).values
    n = feats.shape[0]
    return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])


def trimmed_mean(feats: Tensor, k: int) -> Tensor:
    """Trimmed mean (Sec. 4.5): per coordinate drop the ``ceil(k/2)`` largest and smallest values."""
    half = math.ceil(k / 2)
    ordered = feats.sort(0).values
    return ordered[half: feats.shape[0] - half].mean(0)


def truncated_mean(feats: Tensor, k: int) -> Tensor:
    """Truncated mean (Sec. 4.5): drop the ``k`` rows with the largest distance to the mean."""
    distances = (feats - feats.mean(0)).norm(dim=1)
    return _mean_of_lowest(feats, distances, k)


MEAN_ESTIMATORS.register("mean")(lambda feats, spec, start: feats.mean(0))
MEAN_ESTIMATORS.register("calibrated")(
    lambda feats, spec, start: calibrated_mean(feats, spec.drop_count(feats.shape[0]),
                                               spec.power_iterations, start))
MEAN_ESTIMATORS.register("median")(lambda feats, spec, start: coordinate_median(feats))
MEAN_ESTIMATORS.register("trimmed")(
    lambda feats, spec, start: trimmed_mean(feats, spec.drop_count(feats.shape[0])))
MEAN_ESTIMATORS.register("truncated")(
    lambda feats, spec, start: truncated_mean(feats, spec.drop_count(feats.shape[0])))


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
        raise ValueError(f"k = {k!r} must be an integer in [0, {n}) for a batch of {n}: "
                         "at least one representation must remain.")


def robust_mean(feats: Tensor, name: str, k: int, iterations: int = 10) -> Tensor:
    """The named estimator with an explicit drop count ``k`` (for tests and sweeps; k = 0 allowed)."""
    if feats.ndim != 2:
        raise ValueError(f"feats must be (n, d), got shape {tuple(feats.shape)}.")
    _check_k(k, feats.shape[0])
    if name == "trimmed" and 2 * math.ceil(k / 2) >= feats.shape[0]:
        raise ValueError(f"trimmed mean drops 2 * ceil({k}/2) of {feats.shape[0]} values per coordinate: "
                         "nothing would be left; use a smaller k.")
    table = {"mean": lambda: feats.mean(0), "calibrated": lambda: calibrated_mean(feats, k, iterations),
             "median": lambda: coordinate_median(feats), "trimmed": lambda: trimmed_mean(feats, k),
             "truncated": lambda: truncated_mean(feats, k)}
    if name not in table:
        MEAN_ESTIMATORS.get(name)
    return table[name]()


def class_means(feats: Tensor, spec: EstimatorSpec = "mean", weights: Tensor | None = None) -> Tensor:
    """``(C, n, d) -> (C, d)``: the estimator ``spec`` on every class at once (``vmap``).

    ``weights`` ``(C, n)`` gives the importance-weighted plain mean; combined
    with a robust estimator it is an error (which rows would a weight-aware
    calibration drop? the paper does not say), not silently dropped.
    """
    spec = as_config(spec)
    if weights is not None:
        if spec.robust:
            raise ValueError(f"the {spec.name} mean cannot use per-sample weights; condense an "
                             "unweighted set (real.with_weights(None)) or use the plain mean.")
        return torch.vmap(weighted_mean)(feats, weights)
    if spec.robust:
        k = spec.drop_count(feats.shape[1])
        if spec.name == "trimmed" and 2 * math.ceil(k / 2) >= feats.shape[1]:
            raise ValueError(f"trimmed mean with rate {spec.rate} drops 2 * ceil({k}/2) of "
                             f"{feats.shape[1]} values per coordinate; use a smaller rate or a larger batch.")
    estimator = MEAN_ESTIMATORS.get(spec.name)
    start = start_vector(feats.shape[-1], feats.dtype, feats.device)
    return torch.vmap(lambda f: estimator(f, spec, start))(feats)


def get_mean_estimator(name: str) -> MeanEstimator:
    """The estimator registered as ``name``; unknown names raise ``ValueError`` listing the known ones."""
    return MEAN_ESTIMATORS.get(name)


__all__ = [
    "DROP_FACTOR", "MEAN_ESTIMATORS", "MeanEstimator", "MeanEstimatorConfig", "EstimatorSpec",
    "as_config", "calibrated_mean", "class_means", "coordinate_median", "get_mean_estimator",
    "power_method", "robust_mean", "start_vector", "trimmed_mean", "truncated_mean",
    "weighted_mean",
]
