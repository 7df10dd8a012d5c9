"""Attacking the released set S itself (Dong et al. 2022, Sec. 3: the attacker holds S).

The paper's attacks query a network trained on S; its threat model also
hands the attacker S. The simplest attack on S scores a candidate by its
distance to the nearest synthetic image of its class: a set that copied or
stayed close to its members puts them nearer than fresh images of the same
distribution. Distances are taken in pixels (the normalised space S lives in)
and in a fixed feature space, the embedding of a randomly initialised network
(fixed by its seed, never trained, so it carries no information about T). The
AUC comes from scikit-learn, with the smaller distance the stronger "member".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..config import NetConfig
from ..nets import build_net
from ..synthetic import SyntheticSet


def nearest_distance(candidates: Tensor, labels: Tensor, synthetic: Tensor, syn_labels: Tensor) -> Tensor:
    """``(n,)`` L2 distance from each candidate to its nearest synthetic image of the same class
    (``candidates`` and ``synthetic`` are ``(n, ...)`` / ``(m, ...)`` in one space)."""
    if candidates.shape[1:] != synthetic.shape[1:]:
        raise ValueError(f"candidates {tuple(candidates.shape[1:])} and synthetic "
                         f"{tuple(synthetic.shape[1:])} are not in one space.")
    if syn_labels.dim() != 1:
        raise ValueError("nearest_distance needs hard synthetic labels (one class per image).")
    missing = set(labels.tolist()) - set(syn_labels.tolist())
    if missing:
        raise ValueError(f"classes {sorted(missing)} have no synthetic image to compare with.")
    dist = torch.cdist(candidates.flatten(1).double(), synthetic.flatten(1).double())
    same = labels[:, None] == syn_labels[None, :]
    return dist.masked_fill(~same, float("inf")).min(1).values


def random_features(net_cfg: NetConfig, shape: tuple[int, int, int], num_classes: int, *,
                    seed: int) -> Callable[[Tensor], Tensor]:
    """The embedding of an untrained network of ``net_cfg`` with weights fixed by ``seed``
    (DM's own kind of extractor, Eq. 6): a feature space chosen before any data is seen."""
    net = build_net(net_cfg, shape[0], num_classes, shape[1], seed=seed).eval()

    @torch.no_grad()
    def embed(images: Tensor) -> Tensor:
        return torch.cat([net.embed(chunk) for chunk in images.split(512)])

    return embed


def distance_auc(positive: Tensor, negative: Tensor) -> float:
    """AUC of "nearer is a member": ``positive`` distances should be the smaller ones."""
    if positive.numel() == 0 or negative.numel() == 0:
        raise ValueError("distance_auc needs at least one positive and one negative distance.")
    scores = -torch.cat([positive, negative]).double().numpy()
    truth = [1] * positive.numel() + [0] * negative.numel()
    return float(roc_auc_score(truth, scores))


def direct_auc(syn: SyntheticSet, positive: Any, negative: Any,
               embed: Callable[[Tensor], Tensor] | None = None) -> float:
    """The nearest-synthetic-image attack on S between two sets of candidates (ImageData: the
    ones that should be members first), in pixels or, with ``embed``, in its feature space."""
    view = embed or (lambda x: x)
    syn_x = view(syn.images)
    return distance_auc(nearest_distance(view(positive.images), positive.labels, syn_x, syn.labels),
                        nearest_distance(view(negative.images), negative.labels, syn_x, syn.labels))


__all__ = ["direct_auc", "distance_auc", "nearest_distance", "random_features"]
