"""Effect alignment for dataset distillation, EAD (Alg. 1 of the effect-alignment paper).

One expert network is trained on the real set D and its trajectory
``{(theta^t, eta_t)}`` recorded (:func:`ddrepro.condense.expert.expert_for`,
a cached artifact shared by every run on the same data, MTT included). The synthetic set
starts from real images, labelled softly by the expert's final weights, and
both images and labels (as logits, so they stay distributions) are learned by
minimising Eq. 7 on minibatches:

    | sum_t w_t <grad L(D_p, theta^t), (1 - alpha) grad L(D_t, theta^t) - grad L(S_t, theta^t)> |

over ``t_m`` sampled checkpoints, with ``w_t`` the checkpoint's step length
``eta_t x updates`` (normalised to mean 1), D_p a real batch playing P, D_t a
real batch playing D and S_t a synthetic batch. Each gradient family is one
vmapped pass over the sampled checkpoints
(:func:`ddrepro.trajectory.group_grads` over
:func:`ddrepro.functional.checkpoint_grads`), not a Python loop.

``alpha``: replacing G = D_t by A = S_t, the first-order unroll gives
``grad L(D') - grad L(D) = grad L(S_t) - grad L(D_t)`` whatever the batch
sizes, i.e. ``alpha = 0``; the paper's ``(|D| - |S|) / |S|`` makes ``1 - alpha``
hugely negative. The default is 0; the chapter ablates it.

Rows outside the sampled synthetic batch get no gradient, but Adam would
still move them by its running moments; each step updates only the sampled
rows of the images and label logits, and their moments (:func:`lazy_adam_step`,
as TensorFlow's LazyAdam), so a row changes only in the steps whose loss saw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import _check, _positive
from ..trajectory import group_grads, sample_checkpoints
from .base import Context, register
from .expert import expert_checkpoints, expert_for


@dataclass(frozen=True)
class EADConfig:
    """Effect alignment (EAD, Alg. 1 of the effect-alignment paper): expert trajectory, sampled checkpoints.

    The paper gives no learning rates, iteration counts, ``t_m``, network or
    expert epochs: every default here is ours, to be tuned on a validation
    split. The expert: ``expert_epochs`` of plain SGD (``expert_lr``, batches of
    ``expert_batch``) on the real data with a checkpoint every
    ``checkpoint_every`` updates; each EAD step samples ``t_m`` checkpoints,
    ``batch_real`` images for D_p and for D_t and ``batch_syn`` synthetic ones,
    and updates images (Adam, ``lr_img``) and label logits (``lr_label``).
    ``alpha``: the coefficient of Eq. 7, ``(1 - alpha) <gP, gD_t>``; 0 is what
    the first-order derivation gives for any batch sizes (the paper's
    ``(|D| - |S|) / |S|`` is about 500 at our MNIST IPC 10). ``soft_labels``
    False keeps hard one-hot labels fixed (the ablation). Chapter 5's study
    settings (estimator pairs, ablation grids) are :class:`ddrepro.effects.config.EffectsConfig`.
    """

    expert_epochs: int = 50
    checkpoint_every: int = 10
    t_m: int = 10
    steps: int = 1000
    lr_img: float = 0.1
    lr_label: float = 0.01
    batch_real: int = 256
    batch_syn: int = 256
    alpha: float = 0.0
    expert_lr: float = 0.01
    expert_batch: int = 256
    soft_labels: bool = True

    def __post_init__(self) -> None:
        _positive(self, "expert_epochs", "checkpoint_every", "t_m", "steps", "lr_img",
                  "lr_label", "batch_real", "batch_syn", "expert_lr", "expert_batch")
        _check(math.isfinite(self.alpha), self, "alpha", self.alpha, "a finite number")


def effect_alignment_loss(g_p: Tensor, g_d: Tensor, g_s: Tensor, alpha: float,
                          weights: Tensor | None = None) -> Tensor:
    """Eq. 7: ``|sum_t w_t <gP_t, (1 - alpha) gD_t - gS_t>|`` over rows t (sampled checkpoints)."""
    if not g_p.shape == g_d.shape == g_s.shape or g_p.dim() != 2:
        raise ValueError(f"gradients must be three (t_m, P) tensors of one shape, got "
                         f"{tuple(g_p.shape)}, {tuple(g_d.shape)}, {tuple(g_s.shape)}.")
    per_checkpoint = (g_p * ((1.0 - alpha) * g_d - g_s)).sum(1)
    if weights is not None:
        per_checkpoint = per_checkpoint * weights
    return per_checkpoint.sum().abs()


def check_soft_labels(labels: Tensor, num_classes: int) -> None:
    """Soft labels must be ``(n, C)`` rows of finite, non-negative numbers that sum to 1."""
    if labels.dim() != 2 or labels.shape[1] != num_classes or not labels.is_floating_point():
        raise ValueError(f"soft labels must be a float (n, {num_classes}) tensor, got "
                         f"{labels.dtype} {tuple(labels.shape)}.")
    if not torch.isfinite(labels).all():
        raise ValueError("soft labels are not finite (NaN or inf); a diverged expert? Lower "
                         "expert_lr or check the expert's training.")
    if (labels < 0).any() or not torch.allclose(labels.sum(1), torch.ones(len(labels), dtype=labels.dtype,
                                                                          device=labels.device), atol=1e-4):
        raise ValueError("soft labels must be probability distributions (rows >= 0 summing to 1); "
                         "pass softmax(logits).")


def _expert(ctx: Context, cfg: EADConfig) -> tuple:
    """The cached expert trajectory on the real set and its models (shared with MTT: ``expert.py``)."""
    return expert_for(ctx, cfg)


def _random_rows(n: int, size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randperm(n, generator=generator)[:min(size, n)].to(device)


def lazy_adam_step(optimizer: torch.optim.Adam, params: list[Tensor], rows: Tensor) -> None:
    """``optimizer.step()`` restricted to ``rows`` (leading index) of every tensor in ``params``.

    The other rows keep their values and their Adam moments: without this, a
    row outside the sampled batch (zero gradient) still moves by its running
    first moment divided by the root of its second. The step count (bias
    correction) stays shared, as in LazyAdam. All rows sampled: a plain step.
    """
    n = params[0].shape[0]
    idle = torch.ones(n, dtype=torch.bool, device=params[0].device)
    idle[rows] = False
    if not idle.any():
        optimizer.step()
        return
    saved = []
    for p in params:
        state = optimizer.state.get(p, {})
        moments = {k: v[idle].clone() for k, v in state.items()
                   if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n}
        saved.append((p.detach()[idle].clone(), moments))
    optimizer.step()
    with torch.no_grad():
        for p, (values, moments) in zip(params, saved):
            p[idle] = values
            for k, v in moments.items():
                optimizer.state[p][k][idle] = v


@register("ead", EADConfig, default_init="real")
def run(ctx: Context, syn_images: Tensor, syn_labels: Tensor):
    """EAD, Alg. 1 (module docstring), with ``EADConfig``; returns soft labels unless ``soft_labels=False``."""
    cfg: EADConfig = ctx.config
    available = expert_checkpoints(ctx.real_images.shape[0], cfg)
    if cfg.t_m > available:  # checked before the expert is trained
        raise ValueError(f"t_m={cfg.t_m} exceeds the expert's {available} checkpoints; lower "
                         "t_m, lower checkpoint_every or raise expert_epochs.")
    traj, models = _expert(ctx, cfg)
    eligible = torch.nonzero(traj.updates.cpu() > 0).flatten()
    syn = syn_images.detach().clone().requires_grad_(True)
    state, groups = [syn], [{"params": [syn], "lr": cfg.lr_img}]
    if cfg.soft_labels:
        with torch.no_grad():  # Alg. 1's initialisation: the final expert's soft labels
            logits = models.predict(syn_images)[0].to(ctx.device)
        check_soft_labels(logits.softmax(1), ctx.num_classes)  # before any step, not after
        label_logits = logits.clone().requires_grad_(True)
        state.append(label_logits)
        groups.append({"params": [label_logits], "lr": cfg.lr_label})
    optimizer = torch.optim.Adam(groups)
    n_real, n_syn = ctx.real_images.shape[0], syn.shape[0]
    for step in ctx.steps(cfg.steps, state=state, optimizer=optimizer):
        picks = eligible[sample_checkpoints(eligible.numel(), cfg.t_m, ctx.generator)]
        sampled = traj.take(picks.to(ctx.device))
        weights = sampled.lrs * sampled.updates
        weights = weights / weights.mean()
        p_rows = _random_rows(n_real, cfg.batch_real, ctx.generator, ctx.device)
        d_rows = _random_rows(n_real, cfg.batch_real, ctx.generator, ctx.device)
        s_rows = _random_rows(n_syn, cfg.batch_syn, ctx.generator, ctx.device)
        with torch.no_grad():
            g_p = group_grads(sampled, ctx.real_images[p_rows], ctx.real_labels[p_rows])
            g_d = group_grads(sampled, ctx.real_images[d_rows], ctx.real_labels[d_rows])
        targets = (label_logits[s_rows].softmax(1) if cfg.soft_labels else syn_labels[s_rows])
        g_s = group_grads(sampled, syn[s_rows], targets)
        loss = effect_alignment_loss(g_p, g_d, g_s, cfg.alpha, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lazy_adam_step(optimizer, state, s_rows)
        ctx.log(loss)
        ctx.check_finite(syn, step)
        if cfg.soft_labels:
            ctx.check_finite(label_logits, step, "label logits")
    if not cfg.soft_labels:
        return syn.detach(), syn_labels
    labels = label_logits.detach().softmax(1)
    check_soft_labels(labels, ctx.num_classes)
    return syn.detach(), labels


__all__ = ["EADConfig", "check_soft_labels", "effect_alignment_loss", "lazy_adam_step", "run"]
