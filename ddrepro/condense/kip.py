"""Kernel inducing points, KIP (Nguyen, Chen & Lee, ICLR 2021).

KIP replaces the inner network training of meta-learning distillation by its
infinite-width limit: a network trained to convergence with squared loss acts
like kernel ridge regression (KRR) with its neural tangent kernel. The support
set (the synthetic images ``X_s`` with targets ``y_s``) is learned by minimising
the KRR error on a batch of real targets ``(X_t, y_t)`` (KIP paper, Eq. 1 and
Algorithm 1):

    L(X_s, y_s) = || y_t - K_ts (K_ss + lambda I)^{-1} y_s ||^2,
    lambda = reg * trace(K_ss) / n_s,

with the FC ReLU NTK of :mod:`ddrepro.kernels` (``KIPConfig.depth`` hidden
layers). Each step draws ``batch_real`` real images from all classes and takes
one Adam step on the images and, when ``learn_labels``, on the targets.

Labels. KRR regresses *targets*, so labels are mean-centred one-hot vectors,
``1 - 1/C`` for the class and ``-1/C`` elsewhere (:func:`centred_onehot`); the
centring makes the all-zero prediction the uninformed one, as in the KIP paper's
label-centring. Learned targets are regression targets, not probabilities, and
can leave the simplex. The evaluator trains networks with (soft) cross-entropy,
so :func:`targets_to_soft_labels` maps them back: add ``1/C`` (undoing the
centring), clip negatives to 0 and renormalise each row. This is the identity on
un-learned targets (centred one-hot -> one-hot), keeps the relative mass the
KRR put on each class, and never invents mass a softmax would spread over all
classes. With ``learn_labels=False`` the hard int64 labels are returned.

The kernel and the solve run in float64: with ``reg = 1e-6`` the system's
condition number can reach ~1e6, too close to float32's resolution.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..config import KIPConfig
from ..kernels import relu_ntk
from .base import Context, register

_JITTER_TRIES = 4


def centred_onehot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(n, C)`` float targets: one-hot minus ``1/C`` (KRR regression targets)."""
    if labels.ndim != 1 or labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64 of shape (n,), got {labels.dtype} {tuple(labels.shape)}.")
    onehot = torch.nn.functional.one_hot(labels, num_classes).to(torch.float32)
    return onehot - 1.0 / num_classes


def targets_to_soft_labels(targets: torch.Tensor) -> torch.Tensor:
    """Learned centred targets ``(n, C)`` -> probability rows: ``clip(y + 1/C, 0)`` renormalised.

    A row with no positive mass left (every entry <= -1/C) becomes uniform.
    """
    num_classes = targets.shape[1]
    mass = (targets + 1.0 / num_classes).clamp_min(0.0)
    total = mass.sum(1, keepdim=True)
    uniform = torch.full_like(mass, 1.0 / num_classes)
    return torch.where(total > 0, mass / total.clamp_min(torch.finfo(mass.dtype).tiny), uniform)


def _solve_spd(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``matrix^{-1} rhs`` by Cholesky, adding growing jitter if rounding made it indefinite."""
    scale = matrix.diagonal().mean().abs().clamp_min(torch.finfo(matrix.dtype).tiny)
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    jitter = 0.0
    for attempt in range(_JITTER_TRIES):
        chol, info = torch.linalg.cholesky_ex(matrix + jitter * scale * eye)
        if int(info) == 0:
            return torch.cholesky_solve(rhs, chol)
        jitter = 1e-10 * 100.0 ** attempt
    raise FloatingPointError(
        f"KIP: K_ss + lambda I is not positive definite even with jitter {jitter:g} x mean diagonal; "
        "raise KIPConfig.reg."
    )


def krr_loss(k_ts: torch.Tensor, k_ss: torch.Tensor, y_t: torch.Tensor, y_s: torch.Tensor,
             reg: float) -> torch.Tensor:
    """``||y_t - K_ts (K_ss + lambda I)^{-1} y_s||^2`` with ``lambda = reg * tr(K_ss) / n_s`` (KIP Eq. 1)."""
    n_s = k_ss.shape[0]
    lam = reg * torch.trace(k_ss) / n_s
    eye = torch.eye(n_s, dtype=k_ss.dtype, device=k_ss.device)
    alpha = _solve_spd(k_ss + lam * eye, y_s)
    return ((y_t - k_ts @ alpha) ** 2).sum()


def kip_loss(x_t: torch.Tensor, y_t: torch.Tensor, x_s: torch.Tensor, y_s: torch.Tensor, *,
             reg: float, depth: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The KRR loss of support ``(x_s, y_s)`` on targets ``(x_t, y_t)`` under the FC ReLU NTK."""
    if x_t.shape[0] != y_t.shape[0] or x_s.shape[0] != y_s.shape[0]:
        raise ValueError(
            f"{x_t.shape[0]} target images vs {y_t.shape[0]} targets, {x_s.shape[0]} support images "
            f"vs {y_s.shape[0]} targets; pass one target row per image."
        )
    x_t, y_t, x_s, y_s = (t.to(dtype) for t in (x_t, y_t, x_s, y_s))
    k_ss = relu_ntk(x_s, depth=depth)
    k_ts = relu_ntk(x_t, x_s, depth=depth)
    return krr_loss(k_ts, k_ss, y_t, y_s, reg)


def kip_optimise(
    real_images: torch.Tensor,
    real_targets: torch.Tensor,
    syn_images: torch.Tensor,
    syn_targets: torch.Tensor,
    cfg: KIPConfig,
    generator: torch.Generator,
    steps: Iterable[int],
    ctx: Context | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """KIP Algorithm 1: Adam on the support images (and targets) against random real batches.

    Returns the learned images, targets and the loss of every step (before its update).
    ``ctx`` (optional) supplies the divergence check.
    """
    images = syn_images.detach().clone().requires_grad_(True)
    targets = syn_targets.detach().clone().requires_grad_(cfg.learn_labels)
    params = [images, targets] if cfg.learn_labels else [images]
    optimiser = torch.optim.Adam(params, lr=cfg.lr)
    n_real = real_images.shape[0]
    batch = min(cfg.batch_real, n_real)
    losses = []
    for step in steps:
        pick = torch.randperm(n_real, generator=generator)[:batch].to(real_images.device)
        loss = kip_loss(real_images[pick], real_targets[pick], images, targets,
                        reg=cfg.reg, depth=cfg.depth)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if ctx is not None:
            ctx.check_finite(images, step)
    return images.detach(), targets.detach(), losses


@register("kip", KIPConfig)
def run(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """Learn ``ipc`` images per class (and soft labels when ``learn_labels``) with KIP."""
    cfg: KIPConfig = ctx.config
    real_targets = centred_onehot(ctx.real_labels, ctx.num_classes)
    syn_targets = centred_onehot(syn_labels, ctx.num_classes)
    images, targets, _ = kip_optimise(ctx.real_images, real_targets, syn_images, syn_targets,
                                      cfg, ctx.generator, ctx.steps(cfg.steps), ctx)
    if not cfg.learn_labels:
        return images, syn_labels
    ctx.check_finite(targets, step=cfg.steps - 1, what="learned labels")
    return images, targets_to_soft_labels(targets)


__all__ = ["centred_onehot", "targets_to_soft_labels", "krr_loss", "kip_loss", "kip_optimise"]
