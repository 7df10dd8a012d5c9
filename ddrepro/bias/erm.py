"""A bias feature that does not assume the bias: the embedding of a briefly trained ERM network.

The colour extractor of :mod:`ddrepro.bias.debias` knows that the shortcut is colour: an
*oracle* feature, chosen by an analyst who already knows the bias. The usual alternative when
the bias is unknown (LfF, Nam et al. 2020; JTT, Liu et al. 2021) is a network trained briefly by
plain empirical risk minimisation on the biased set: it learns the easy shortcut first, so its
embedding separates the bias-aligned majority from the conflicting minority. Here the features
are that network's penultimate embedding (``net.embed``), standardised and reduced to ``dims``
principal components fitted on the training set (scikit-learn's ``PCA``), so that a Gaussian
KDE bandwidth has a meaning in them; :func:`ddrepro.bias.debias.inverse_density_weights` then
weights them as it weights colours. Nothing here reads the bias attribute.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..config import EvalConfig, NetConfig
from ..data.dataset import ImageData
from ..train import train_models


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


__all__ = ["balance_score", "erm_feature_map"]
