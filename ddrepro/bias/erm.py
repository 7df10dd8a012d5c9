"""A bias feature that does not assume the bias: the embedding of a briefly trained ERM network.

The colour extractor of :mod:`ddrepro.bias.debias` knows that the shortcut is colour: an
*oracle* feature, chosen by an analyst who already knows the bias. The usual alternative when
the bias is unknown (LfF, Nam et al. 2020; JTT, Liu et al. 2021) is a network trained briefly by
plain empirical risk minimisation on the biased set: it learns the easy shortcut first, so its
embedding separates the bias-aligned majority from the conflicting minority. Here the features
are that network's penultimate embedding (``net.embed``), standardised and reduced to ``dims``
principal components fitted on the training set (scikit-learn's ``PCA``), so that a Gaussian
KDE bandwidth has a meaning in them; :func:`ddrepro.bias.debias.inverse_density_weights` then
weights them as it weights colours. The feature reads no bias attribute.

The debiasing grid distils DM with these weights (``"dm-erm/r95/k0"``,
:func:`erm_distil_and_score`): per seed, the ERM network is trained on that seed's biased
training set (:func:`erm_features`, cached), the KDE bandwidth and the weight cap are chosen on
that seed's validation split (:func:`choose_weighting`, the same function the page calls for the
hue feature), and the training set, weighted by :func:`erm_weighted`, goes to
:func:`ddrepro.bias.study.distil_and_score` as the hue-weighted set does. The choice reads the
validation split's group labels (:func:`balance_score`), as JTT and GroupDRO select.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..artifacts import cached
from ..config import AugConfig, EvalConfig, NetConfig
from ..data.dataset import ImageData
from ..evaluate import EvalResult
from ..synthetic import SyntheticSet
from ..train import train_models
from ..tuning import Choice, choose
from . import study as bs
from .debias import DebiasConfig, inverse_density_weights

# The ERM network of the feature (ours, the same at every profile): trained ERM_EPOCHS epochs,
# briefly, so that it stops at the easy shortcut (LfF's and JTT's premise), and its embedding
# reduced to ERM_DIMS principal components, few enough for a per-class Gaussian KDE. Module
# constants, not BiasConfig fields: one fixed choice of ours at every profile, not a size that
# scales from smoke to paper. The page and the grid's "dm-erm" jobs read the same two numbers,
# and both enter the key of the cached features (erm_features), so a change re-keys the ERM
# cells only.
ERM_EPOCHS = 3
ERM_DIMS = 8
# The candidates each feature's (bandwidth, max_weight) is chosen among on the validation split
# (choose_weighting), ours: bandwidths in the feature's units (chromaticities lie in [0, 1]; the
# ERM components are scaled so that the first has unit std) and caps on a weight relative to its
# class's mean (None: no cap).
HUE_BANDWIDTHS = (0.02, 0.05, 0.1, 0.2)
ERM_BANDWIDTHS = (0.1, 0.25, 0.5, 1.0)
WEIGHT_CAPS = (None, 10.0, 50.0)


def erm_feature_map(real: ImageData, *, net_cfg: NetConfig, epochs: int, dims: int, seed: int,
                    lr: float = 0.01, batch_size: int = 256, device: str | torch.device = "cpu",
                    quiet: bool | None = True) -> Callable[[ImageData], Tensor]:
    """Train one network on ``real`` for ``epochs`` epochs (the project's loop, no augmentation,
    constant rate: briefly, so that it stops at the shortcut), fit a standardising PCA with
    ``dims`` components to its embeddings of ``real``, and return the map ``data -> (N, dims)``."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if epochs < 1 or dims < 1:
        raise ValueError(f"erm_feature_map needs epochs >= 1 and dims >= 1, got {epochs} and {dims}.")
    cfg = EvalConfig(epochs=epochs, batch_size=batch_size, lr=lr, n_models=1, augment="none",
                     decay_epochs=())
    models = train_models(real.images, real.labels, net_cfg=net_cfg, eval_cfg=cfg,
                          num_classes=real.num_classes, n_models=1, seed=seed, aug=None,
                          device=device, quiet=quiet)
    net = models.module(0).cpu().eval()

    @torch.no_grad()
    def embed(data: ImageData) -> np.ndarray:
        return torch.cat([net.embed(chunk) for chunk in data.images.cpu().split(1024)]).double().numpy()

    train_emb = embed(real)
    scaler = StandardScaler().fit(train_emb)
    pca = PCA(n_components=min(dims, *train_emb.shape), random_state=seed).fit(scaler.transform(train_emb))
    scale = np.sqrt(pca.explained_variance_[0])  # first component to unit std: bandwidths in its units

    def features(data: ImageData) -> Tensor:
        return torch.from_numpy(pca.transform(scaler.transform(embed(data))) / scale).float()

    return features


def balance_score(weights: Tensor, aligned: Tensor, num_colours: int = 10) -> float:
    """Minus the distance (points) of the aligned images' share of the weight from one colour's
    fair share ``100 / num_colours``: 0 is a perfectly colour-balanced class mean. Reads the
    group labels (``aligned``): a score for a validation split, as JTT and GroupDRO select."""
    share = 100 * float(weights[aligned].sum() / weights.sum())
    return -abs(share - 100 / num_colours)


def erm_features(real: ImageData, val: ImageData, *, net_cfg: NetConfig, seed: int,
                 epochs: int = ERM_EPOCHS, dims: int = ERM_DIMS, device: str | torch.device = "cpu",
                 quiet: bool | None = True) -> dict[str, Any]:
    """:func:`erm_feature_map` of ``real`` applied to ``real`` and ``val``, cached over both sets,
    the network's config, ``epochs``, ``dims`` and ``seed``: ``{"train": (len(real), dims),
    "val": (len(val), dims), "seconds": the training and embedding time of the computing run}``."""
    parts = {"real": real.digest(), "val": val.digest(), "net": net_cfg, "epochs": epochs,
             "dims": dims, "seed": seed}

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        features = erm_feature_map(real, net_cfg=net_cfg, epochs=epochs, dims=dims, seed=seed,
                                   device=device, quiet=quiet)
        return {"train": features(real), "val": features(val), "seconds": time.perf_counter() - start}

    return cached("erm-features", parts, compute, code=(__name__,))


def choose_weighting(name: str, val_features: Tensor, val: ImageData, test: ImageData, *,
                     bandwidths: Sequence[float], caps: Sequence[float | None] = WEIGHT_CAPS) -> Choice:
    """The ``(bandwidth, max_weight)`` of :func:`ddrepro.bias.debias.inverse_density_weights`
    (Cui et al. 2024's reweighting, ``power`` 1) whose weights of the validation split ``val``
    (features ``val_features``, one row per image) come closest to colour balance
    (:func:`balance_score`, which reads ``val``'s group labels), among ``bandwidths`` x ``caps``
    (:func:`ddrepro.tuning.choose`: ties go to the first). Refuses a ``test`` split that shares
    an image with ``val`` (:meth:`ddrepro.tuning.Choice.check_disjoint`)."""
    if val_features.ndim != 2 or val_features.shape[0] != len(val):
        raise ValueError(f"choose_weighting: val_features must be (len(val), d) = ({len(val)}, d); "
                         f"got {tuple(val_features.shape)}.")
    aligned = val.attrs["aligned"]
    scores = {(float(h), cap): balance_score(inverse_density_weights(
                  val_features, val.labels.cpu(), val.num_classes,
                  DebiasConfig(bandwidth=float(h), max_weight=cap)), aligned)
              for h in bandwidths for cap in caps}
    share = 100 * float(aligned.float().mean())
    choice = choose(f"{name}: (bandwidth, max_weight)", scores, rows=bs.split_ids(val),
                    chosen_on=f"the colour balance of the weights on {len(val)} held-out training "
                              f"images, {share:.0f} % aligned (their group labels read)")
    choice.check_disjoint(bs.split_ids(test), "the test images")
    return choice


def erm_weighted(real: ImageData, val: ImageData, test: ImageData, *, net_cfg: NetConfig, seed: int,
                 bandwidths: Sequence[float] = ERM_BANDWIDTHS,
                 caps: Sequence[float | None] = WEIGHT_CAPS, device: str | torch.device = "cpu",
                 quiet: bool | None = True) -> tuple[ImageData, Choice, float]:
    """``real`` with the inverse-density weights of its ERM features (:func:`erm_features`), at
    the ``(bandwidth, max_weight)`` chosen on ``val`` (:func:`choose_weighting`; ``test`` only to
    refuse an overlap), ``power`` 1. Returns the weighted set, the choice and the seconds the
    weights took (the ERM network's training and embedding, as measured when it was computed,
    plus the choice and the KDE)."""
    features = erm_features(real, val, net_cfg=net_cfg, seed=seed, device=device, quiet=quiet)
    start = time.perf_counter()
    choice = choose_weighting("ERM embedding", features["val"], val, test, bandwidths=bandwidths,
                              caps=caps)
    bandwidth, cap = choice.value
    weights = inverse_density_weights(features["train"], real.labels.cpu(), real.num_classes,
                                      DebiasConfig(bandwidth=bandwidth, max_weight=cap))
    return real.with_weights(weights), choice, float(features["seconds"]) + time.perf_counter() - start


def erm_distil_and_score(*, method: str, real: ImageData, val: ImageData, test: ImageData, ipc: int,
                         config: Any, seed: int, net_cfg: NetConfig, aug_cfg: AugConfig,
                         eval_cfg: EvalConfig, device: str | torch.device = "auto",
                         quiet: bool | None = None) -> tuple[SyntheticSet, EvalResult, float, Choice]:
    """A cell of the debiasing grid with the feature that does not assume the bias: ``real``
    weighted by :func:`erm_weighted` (the ERM network trained on ``real`` with ``seed``, the
    settings chosen on ``val``), then :func:`ddrepro.bias.study.distil_and_score` of the weighted
    set (weighted class means, as ``"dm-debiased"``). Returns ``(set, result, seconds the
    weights took, choice)``: the other cells' triple and the choice."""
    weighted, choice, seconds = erm_weighted(real, val, test, net_cfg=net_cfg, seed=seed,
                                             device=device, quiet=quiet)
    syn, result, _ = bs.distil_and_score(method=method, real=weighted, test=test, ipc=ipc,
                                         config=config, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                                         eval_cfg=eval_cfg, debias=None, device=device, quiet=quiet)
    return syn, result, seconds, choice


__all__ = ["ERM_BANDWIDTHS", "ERM_DIMS", "ERM_EPOCHS", "HUE_BANDWIDTHS", "WEIGHT_CAPS", "balance_score",
           "choose_weighting", "erm_distil_and_score", "erm_feature_map", "erm_features",
           "erm_weighted"]
