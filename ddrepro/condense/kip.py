"""Kernel inducing points, KIP (Nguyen, Chen & Lee, ICLR 2021).

KIP replaces the inner network training of meta-learning distillation by its
infinite-width limit: a network trained to convergence with squared loss acts
like kernel ridge regression (KRR) with its neural tangent kernel. The support
set (the synthetic images ``X_s`` with targets ``y_s``) is learned by minimising
the KRR error on a batch of real targets ``(X_t, y_t)`` (KIP paper, Algorithm 1):

    L(X_s, y_s) = 1 / (2 n_t C) * || y_t - K_ts (K_ss + lambda I)^{-1} y_s ||^2,
    lambda = reg * trace(K_ss) / n_s,

i.e. half the mean squared residual over the ``n_t x C`` target entries. The
Privacy-for-Free paper (Dong et al. 2022, Eq. 3) restates KIP's objective as
``1/2 ||.||^2``; the reference code (kip/KIP.ipynb, ``loss_acc_fn``) also
divides by the number of entries, ``0.5 * mean``, and we follow the code, so
loss values are comparable with its logs and do not grow with ``batch_real``.

The kernel is the FC ReLU NTK of :mod:`ddrepro.kernels` (``KIPConfig.depth``
hidden layers) with the paper's ``sigma_w^2 = 2, sigma_b^2 = 1e-4``
(``KIPConfig.sigma_w2``/``sigma_b2``). Each step draws a class-balanced target
batch, ``batch_real // C`` real images per class ("we always [sample] in a
class-balanced way", KIP paper, experimental setup; the reference's
``class_balanced_sample``), so ``batch_real`` is rounded down to a multiple of
the class count; the per-class count is also capped by the smallest class.
With ``KIPConfig.dsa`` the target batch and the support set are augmented first, by class
(one DSA draw per class applied to that class's targets and support images,
:func:`ddrepro.augment.siamese_augment`, as DM does; Privacy for Free, App. E.1), so the
kernel compares augmented images with augmented images. Then it takes one Adam step on the
images and, when ``learn_labels``, on the targets.

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

This mapping is our choice, not the reference's: the reference notebook stops
at KRR and has no cross-entropy evaluation to feed. Its default is
``LEARN_LABELS = False``, while the paper reports KIP with and without learned
labels; our default ``learn_labels=True`` makes a default run exercise the
full KIP parametrisation (images and labels) and the evaluator's soft-label
path, and ``learn_labels=False`` reproduces the reference's default.

The kernel and the solve run in float64: with ``reg = 1e-6`` the system's
condition number can reach ~1e6, too close to float32's resolution.
"""

from __future__ import annotations

import torch

from ..augment import DSA, siamese_augment
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
             reg: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``0.5 * mean((y_t - K_ts (K_ss + lambda I)^{-1} y_s)^2)``, ``lambda = reg * tr(K_ss) / n_s``.

    The mean runs over all ``n_t x C`` entries, as in the reference code; see the
    module docstring for how this relates to Privacy-for-Free's Eq. 3.
    ``weights`` ``(n_t,)``: per-sample weights of the real targets, the mean
    becoming ``sum_i w_i ||r_i||^2 / (C sum_i w_i)`` (a weight 0 drops a target).
    """
    n_s = k_ss.shape[0]
    lam = reg * torch.trace(k_ss) / n_s
    eye = torch.eye(n_s, dtype=k_ss.dtype, device=k_ss.device)
    alpha = _solve_spd(k_ss + lam * eye, y_s)
    residual = ((y_t - k_ts @ alpha) ** 2)
    if weights is None:
        return 0.5 * residual.mean()
    weights = weights.to(residual.dtype)
    return 0.5 * (weights @ residual).sum() / (weights.sum() * residual.shape[1])


def kip_loss(x_t: torch.Tensor, y_t: torch.Tensor, x_s: torch.Tensor, y_s: torch.Tensor, *,
             reg: float, depth: int, sigma_w2: float, sigma_b2: float,
             weights: torch.Tensor | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The KRR loss of support ``(x_s, y_s)`` on targets ``(x_t, y_t)`` under the FC ReLU NTK.

    The variances have no defaults so that KIP always states them (the kernel
    module's own defaults are not the paper's).
    """
    if x_t.shape[0] != y_t.shape[0] or x_s.shape[0] != y_s.shape[0]:
        raise ValueError(
            f"{x_t.shape[0]} target images vs {y_t.shape[0]} targets, {x_s.shape[0]} support images "
            f"vs {y_s.shape[0]} targets; pass one target row per image."
        )
    x_t, y_t, x_s, y_s = (t.to(dtype) for t in (x_t, y_t, x_s, y_s))
    kernel = {"depth": depth, "sigma_w2": sigma_w2, "sigma_b2": sigma_b2}
    k_ss = relu_ntk(x_s, **kernel)
    k_ts = relu_ntk(x_t, x_s, **kernel)
    return krr_loss(k_ts, k_ss, y_t, y_s, reg, weights)


def target_indices(ctx: Context, batch_real: int) -> torch.Tensor:
    """``(C * n,)`` class-balanced indices into ``ctx.real_images``, ``n = batch_real // C`` per class.

    ``Context.sample_indices`` draws them (without replacement, ``n`` capped by the smallest class).
    """
    per_class = batch_real // ctx.num_classes
    if per_class < 1:
        raise ValueError(
            f"KIPConfig.batch_real = {batch_real} is smaller than the {ctx.num_classes} classes; "
            "the class-balanced target batch needs at least one image per class."
        )
    return ctx.sample_indices(per_class).flatten()


def kip_optimise(
    ctx: Context,
    syn_images: torch.Tensor,
    syn_targets: torch.Tensor,
    cfg: KIPConfig,
    steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """KIP Algorithm 1: Adam on the support images (and targets) against class-balanced real batches.

    The real targets are the centred one-hot labels of ``ctx.real_labels``,
    weighted by ``ctx.real_weights`` when the real set has per-sample weights.
    Runs ``steps`` (default ``cfg.steps``) steps; returns the learned images,
    targets and the loss of every step (before its update). With ``cfg.dsa`` the support
    set must be class-major with the same count per class (as :func:`run` receives it).
    """
    num_classes = ctx.num_classes
    if cfg.dsa and syn_images.shape[0] % num_classes:
        raise ValueError(f"KIP with DSA augments by class: {syn_images.shape[0]} support images do not "
                         f"split into {num_classes} equal class blocks.")
    aug = DSA(ctx.aug_cfg, flip=ctx.flip) if cfg.dsa else None
    real_targets = centred_onehot(ctx.real_labels, num_classes)
    images = syn_images.detach().clone().requires_grad_(True)
    targets = syn_targets.detach().clone().requires_grad_(cfg.learn_labels)
    params = [images, targets] if cfg.learn_labels else [images]
    optimiser = torch.optim.Adam(params, lr=cfg.lr_img)
    losses = []
    total = cfg.steps if steps is None else steps
    for step in ctx.steps(total, state=[images, targets], optimizer=optimiser):
        pick = target_indices(ctx, cfg.batch_real)  # class-major
        weights = None if ctx.real_weights is None else ctx.real_weights[pick]
        real, support = ctx.real_images[pick], images
        if aug is not None:
            real_by_class, syn_by_class = siamese_augment(
                aug, ctx.generator, real.view(num_classes, -1, *real.shape[1:]),
                images.view(num_classes, -1, *images.shape[1:]))
            real, support = real_by_class.flatten(0, 1), syn_by_class.flatten(0, 1)
        loss = kip_loss(real, real_targets[pick], support, targets, reg=cfg.reg,
                        depth=cfg.depth, sigma_w2=cfg.sigma_w2, sigma_b2=cfg.sigma_b2,
                        weights=weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        ctx.log(loss)
        losses.append(float(loss.detach()))
        ctx.check_finite(images, step)
    return images.detach(), targets.detach(), losses


@register("kip", KIPConfig, default_init="real")  # KIP.ipynb: class_balanced_sample of X_TRAIN
def run(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """Learn ``ipc`` images per class (and soft labels when ``learn_labels``) with KIP."""
    cfg: KIPConfig = ctx.config
    expected = torch.arange(ctx.num_classes, device=syn_labels.device).repeat_interleave(ctx.ipc)
    if cfg.dsa and (syn_labels.shape != expected.shape or not torch.equal(syn_labels, expected)):
        raise ValueError("KIP with DSA needs class-major syn_labels (ipc images of class 0, then class "
                         "1, ...); build the initial set with condense()/initial_synthetic().")
    syn_targets = centred_onehot(syn_labels, ctx.num_classes)
    images, targets, _ = kip_optimise(ctx, syn_images, syn_targets, cfg)
    if not cfg.learn_labels:
        return images, syn_labels
    ctx.check_finite(targets, step=cfg.steps - 1, what="learned labels")
    return images, targets_to_soft_labels(targets)


__all__ = ["centred_onehot", "targets_to_soft_labels", "krr_loss", "kip_loss", "target_indices",
           "kip_optimise"]
