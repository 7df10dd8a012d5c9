"""GAN-leaks, the full black-box attack (Chen, Yu, Zhang & Fritz, CCS 2020, Sec. 5.1).

The attacker holds only k samples G(z_1..k, y) per class of a generator
trained on the members T. A query x is scored by how well the samples
reconstruct it, L(x) = min_j ||x - G(z_j, y)||_2 over the samples of its
class (the paper's Eq. 50 with the reconstruction searched over the drawn
samples instead of optimised over z): members, which the generator fitted,
should be reconstructed better. Dong et al. (Table 4) run the white-box
variant (z optimised by gradient descent) on CelebA; this one needs no
access to G's weights.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reconstruction_distance(queries: Tensor, query_labels: Tensor, samples: Tensor,
                            sample_labels: Tensor, chunk: int = 512) -> Tensor:
    """``(n,)``: L2 distance of each query to the nearest sample of its class (Chen et al., Eq. 6)."""
    if queries.shape[1:] != samples.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape[1:])} and samples {tuple(samples.shape[1:])} "
                         "must have the same image shape.")
    if query_labels.shape != (len(queries),) or sample_labels.shape != (len(samples),):
        raise ValueError("one label per query and per sample.")
    missing = sorted(set(query_labels.tolist()) - set(sample_labels.tolist()))
    if missing:
        raise ValueError(f"no generated sample of class(es) {missing}: draw samples of every queried class.")
    q, s = queries.flatten(1).double(), samples.flatten(1).double()
    out = torch.empty(len(q), dtype=torch.float64)
    for start in range(0, len(q), chunk):
        rows = slice(start, start + chunk)
        d = torch.cdist(q[rows], s)
        d[query_labels[rows, None] != sample_labels[None, :]] = float("inf")
        out[rows] = d.min(1).values
    return out.float()


__all__ = ["reconstruction_distance"]
