"""Chapter 2's measurements: Dong et al. (ICML 2022) checked against their own propositions.

The paper's analysis (Sec. 4, App. A-D) is about DM with a random *linear*
extractor ``psi(x) = theta x``: for one draw the loss of a class is
``|| theta (mean(T) - mean(S)) ||^2`` (Eq. 19), whose gradient is the *same*
for every synthetic image, ``-(2/|S|) theta^T theta (mean(T) - mean(S))``
(Eq. 20). Everything below measures what that implies:

* Prop. 4.3: the barycentres coincide (Eq. 10) and the parts of the synthetic
  images outside span(T) sum to zero (Eq. 11): :func:`decomposition`;
* Prop. 4.4: a real initialisation moves by the barycentre gap only (Eq. 12);
  a noise initialisation keeps its part outside span(T) up to the common shift
  that zeroes its mean (Eqs. 13, 29-30): :func:`decomposition`;
* Prop. 4.10's key step (Eq. 35): the change ``||s'_i - s_i||`` of a synthetic
  image when one real image leaves T, with shared initialisation and coupled
  real batches, against ``2B/|T|``: :func:`leave_one_out`;
* Fig. 7: the barycentre distance over DM's iterations, which
  :func:`ddrepro.condense.condense` records (``record_every``).

Everything lives in DM's working space, the *normalised* images (an affine
map of the pixels): barycentres map to barycentres, but span(T) is the span
of the normalised images, so ranks are computed there.

The membership experiments (halves, preparations, LiRA's shadows, the
chapter's study and grid jobs) are in :mod:`ddrepro.privacy.membership`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from ..condense import condense
from ..config import DMConfig
from ..data import ImageData
from ..synthetic import SyntheticSet


# -- span(T) and the decomposition of Props. 4.3-4.4 ----------------------------------

@dataclass(frozen=True)
class Span:
    """An orthonormal basis ``(d, r)`` (float64) of span(T); ``rank`` counts singular values
    above ``rtol`` times the largest."""

    basis: Tensor
    rank: int
    dim: int
    rtol: float
    singular_values: Tensor

    def outside(self, x: Tensor) -> Tensor:
        """``(m, d)`` float64: the part of each row of ``x`` orthogonal to the span."""
        flat = x.detach().double().flatten(1)
        return flat - (flat @ self.basis) @ self.basis.T


def span_of(points: Tensor, rtol: float = 1e-5) -> Span:
    """span of the rows of ``points`` ``(n, ...)`` by SVD in float64 (Assumption 4.1: ``rank < d``)."""
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"rtol = {rtol!r} must lie in (0, 1).")
    flat = points.detach().double().flatten(1)
    if flat.shape[0] < 1:
        raise ValueError("span_of needs at least one point.")
    u, s, vh = torch.linalg.svd(flat, full_matrices=False)
    rank = int((s > rtol * s[0]).sum()) if s[0] > 0 else 0
    return Span(vh[:rank].T.contiguous(), rank, flat.shape[1], rtol, s)


def initial_images(syn: SyntheticSet) -> Tensor:
    """The set a condensation started from: its step-0 snapshot (``condense(..., snapshot_every=)``)."""
    snaps = syn.history.get("snapshots")
    if snaps is None or int(syn.history["snapshot_step"][0]) != 0:
        raise ValueError("this synthetic set kept no initial snapshot; condense it with snapshot_every=steps.")
    return snaps[0]


def decomposition(syn: SyntheticSet, real: ImageData, rtol: float = 1e-5) -> pd.DataFrame:
    """Per synthetic image: the quantities of Props. 4.3-4.4 (``syn`` condensed from ``real``).

    Columns: ``class``, ``rank`` (of T_c) and ``d``; ``bary_rel``
    ``||mean(S_c) - mean(T_c)|| / ||mean(T_c)||`` (Eq. 10); ``sum_outside_rel``
    ``||sum_i P_perp s_i|| / sum_i ||s_i||`` (Eq. 11, relative to the images' size);
    ``to_init`` ``||s_i - s_i(0)||`` and ``init_norm`` ``||s_i(0)||``; ``eq12_err``
    ``||s_i - (s_i(0) + mean(T_c) - mean(S_c(0)))|| / ||s_i - s_i(0)||`` (Eq. 12, the
    shift common to all images); ``outside_before`` / ``outside_after`` ``||P_perp s_i||``
    at the start and end, and ``eq29_err`` ``||P_perp (s_i - s_i(0)) + P_perp mean(S_c(0))||
    / ||P_perp s_i(0)||`` (the part outside moves only by minus its initial mean, Eqs. 29-30).
    Needs the initial snapshot (:func:`initial_images`).
    """
    start = initial_images(syn)
    hard = syn.hard_labels()
    rows = []
    for c in range(real.num_classes):
        t = real.images[real.labels == c].double().flatten(1)
        s = syn.images[hard == c].double().flatten(1)
        s0 = start[hard == c].double().flatten(1)
        span = span_of(t, rtol)
        t_mean, s_mean, s0_mean = t.mean(0), s.mean(0), s0.mean(0)
        out, out0 = span.outside(s), span.outside(s0)
        size = s.norm(dim=1).sum()
        moved = s - s0
        predicted = t_mean - s0_mean
        for i in range(s.shape[0]):
            rows.append({
                "class": c, "image": i, "rank": span.rank, "d": span.dim,
                "bary_rel": float((s_mean - t_mean).norm() / t_mean.norm()),
                "sum_outside_rel": float(out.sum(0).norm() / size),
                "to_init": float(moved[i].norm()), "init_norm": float(s0[i].norm()),
                "eq12_err": float((moved[i] - predicted).norm() / moved[i].norm().clamp_min(1e-30)),
                "outside_before": float(out0[i].norm()), "outside_after": float(out[i].norm()),
                "eq29_err": float((out[i] - out0[i] + out0.mean(0)).norm()
                                  / out0[i].norm().clamp_min(1e-30)),
            })
    return pd.DataFrame(rows)


def theory_dm_config(ipc: int, dim: int, width: int, steps: int, batch_real: int) -> DMConfig:
    """DM as the propositions analyse it: no augmentation, no momentum, and a step size for
    ``theta ~ N(0, 1)`` in R^{k x d}. One step maps the barycentre gap D to
    ``(I - lr (2 / ipc) theta^T theta) D``; the nonzero eigenvalues of ``theta^T theta`` lie
    below about ``(sqrt d + sqrt k)^2``, so ``lr = ipc / (2 (sqrt d + sqrt k)^2)`` shrinks D in
    theta's row space without overshooting. ``batch_real`` >= the class size uses the exact
    class mean (the analysis' T, not a minibatch of it)."""
    lr = ipc / (2 * (dim ** 0.5 + width ** 0.5) ** 2)
    return DMConfig(steps=steps, batch_real=batch_real, lr_img=lr, momentum=0.0, dsa=False)


# -- Prop. 4.10: one real image leaves T ----------------------------------------------

@dataclass(frozen=True)
class LeaveOneOut:
    """``change`` ``(ipc,)``: ``||s'_i - s_i||`` for the removed image's class; ``others``: the
    largest change of any other class's image; ``bound``: ``2B / |T_c|`` (Eq. 35) with ``B`` the
    largest norm in T, S and S'; ``linear``: ``||mean(T'_c) - mean(T_c)||``, the change the
    linear-extractor analysis predicts for every image; ``removed``: the image's root index."""

    change: Tensor
    others: float
    bound: float
    linear: float
    norm_bound: float
    members: int
    removed: int


def leave_one_out(method: str, real: ImageData, ipc: int, *, cls: int = 0, seed: int = 0,
                  **condense_kwargs: Any) -> LeaveOneOut:
    """Condense T and T' = T without one image x of class ``cls``, coupled: same seed, hence the
    same initialisation, network draws and augmentations, and the same real batches (x is
    given weight 0 in T', so batches are drawn from the same rows and T' just omits x;
    the class mean is the weighted mean). x is the first image of the class not used to
    initialise S (Prop. 4.10 assumes it). ``method`` must honour per-sample weights (DM, MMD,
    DC/DSA, KIP)."""
    if not 0 <= cls < real.num_classes:
        raise ValueError(f"cls = {cls!r} is not a class of {real.name} (0..{real.num_classes - 1}).")
    ones = torch.ones(len(real))
    syn = condense(method, real.with_weights(ones), ipc, seed=seed, **condense_kwargs)
    used = syn.meta.get("init_indices")
    rows = torch.nonzero(real.labels == cls).flatten()
    if used is not None:
        rows = rows[~torch.isin(real.source_index[rows], used)]
    if rows.numel() == 0:
        raise ValueError(f"every image of class {cls} initialised S; lower ipc.")
    x = int(rows[0])
    weights = ones.clone()
    weights[x] = 0.0
    syn2 = condense(method, real.with_weights(weights), ipc, seed=seed, **condense_kwargs)
    hard = syn.hard_labels()
    change = (syn2.images - syn.images).flatten(1).double().norm(dim=1)
    class_rows = torch.nonzero(real.labels == cls).flatten()
    t = real.images[class_rows].double().flatten(1)
    keep = class_rows != x
    norms = torch.cat([t.norm(dim=1), syn.images.flatten(1).double().norm(dim=1),
                       syn2.images.flatten(1).double().norm(dim=1)])
    big_b = float(norms.max())
    return LeaveOneOut(change[hard == cls], float(change[hard != cls].max()) if (hard != cls).any()
                       else 0.0, 2 * big_b / t.shape[0], float((t[keep].mean(0) - t.mean(0)).norm()),
                       big_b, t.shape[0], int(real.source_index[x]))


__all__ = ["LeaveOneOut", "Span", "decomposition", "initial_images", "leave_one_out", "span_of",
           "theory_dm_config"]
