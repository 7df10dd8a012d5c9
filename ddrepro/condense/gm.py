"""Gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021) and DSA (Zhao & Bilen, ICML 2021).

DC learns the synthetic set S so that, class by class, the gradient of the
training loss w.r.t. the network weights on S matches the gradient on real
data T, along the trajectory of a network trained on S (DC paper, Algorithm 1):

    for each of K steps (``GMConfig.steps``): theta <- fresh random initialisation
        for each of the outer_loops steps:
            L = sum_c D(grad_theta l(T_c; theta), grad_theta l(S_c; theta))
            S <- SGD step on L (lr_img, momentum 0.5)
            unless it was the last outer step: train theta on S for inner_loops epochs

with the layer-wise distance of the DC paper's Eq. 10 (:func:`match_distance`).
DSA applies the *same* random differentiable augmentation to
class c's real and synthetic batches before taking the gradients (one draw
per class, "Siamese"), and augments S while training theta.

Speed: the real gradients carry no autograd graph; only the synthetic
gradients are differentiated again (double backward), and that second backward
stops at the synthetic images (no gradient w.r.t. the network weights is
formed). Classes are visited in a Python loop: batching them with
``torch.func.vmap(grad(...))`` was measured 2.5x *slower* on CPU (one matching
step, ConvNet-3 width 32, 10 classes x 64 real 28x28 images, ipc 10, one
thread: 1.34 s looped vs 3.35 s vmapped; the vmapped convolution weight
gradient dominates).

Outer/inner loops when the config leaves them None follow the authors' table
by IPC (``get_loops`` in their code): 1 -> (1, 1), 10 -> (10, 50), 20 -> (20,
25), 30 -> (30, 20), 40 -> (40, 15), 50 -> (50, 10); another IPC (the authors'
code stops there) takes the rule of the nearest table entry, a tie going to the
larger, cheaper rule. One inner loop is one pass over the synthetic set in
minibatches of ``batch_train``, as in the authors' implementation.

Networks with batch norm: as in the authors' code, before every matching step
one forward pass on ``BN_IMAGES_PER_CLASS`` real images per class updates the
running statistics, which the BN layers then use (eval mode) while gradients
are matched; the network-update steps train them as usual.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..augment import DSA, siamese_augment
from ..config import GMConfig
from ..functional import ce_gradients
from ..nets import build_net, has_batchnorm
from ..train import Recipe, sgd_train
from .base import Context, register

# IPC -> (outer_loops, inner_loops), the DC/DSA authors' implementation (get_loops)
LOOPS_BY_IPC = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
# Added to the norm product in the cosine, as in the authors' distance_wb: rows
# whose gradients are tiny count less than with a pure cosine.
_NORM_EPS = 1e-6
# Real images per class whose forward pass sets a BN net's running statistics before matching.
BN_IMAGES_PER_CLASS = 16


def loops_for_ipc(ipc: int) -> tuple[int, int]:
    """``(outer_loops, inner_loops)`` of the nearest IPC rule in :data:`LOOPS_BY_IPC`."""
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ValueError(f"ipc must be an integer >= 1, got {ipc!r}.")
    nearest = min(LOOPS_BY_IPC, key=lambda rule: (abs(rule - ipc), -rule))
    return LOOPS_BY_IPC[nearest]


def _cosine_distance_rows(real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """``sum_i (1 - cos(real_i, syn_i))`` over the rows of two ``(rows, k)`` matrices."""
    dots = (real * syn).sum(-1)
    norms = real.norm(dim=-1) * syn.norm(dim=-1) + _NORM_EPS
    return (1.0 - dots / norms).sum()


def match_distance(grads_real: Sequence[torch.Tensor], grads_syn: Sequence[torch.Tensor], *,
                   all_params: bool = False) -> torch.Tensor:
    """Distance between two gradients given as per-parameter tensors.

    Default (DC paper, Eq. 10): for every parameter with ``ndim > 1`` (weights;
    biases and norm scales/shifts are left out), reshape to ``(out, -1)`` and
    sum ``1 - cos`` over output rows; sum over layers.
    ``all_params=True``: ``1 - cos`` between the two whole gradients, every
    parameter included and flattened into one vector, the objective of gradient-
    matching poisoning (Geiping et al. 2021; RDM-DC paper, Eq. 4).
    The norm product gets ``+ 1e-6`` (the authors' code), so a zero row has cosine 0.
    Pure (tensors in, scalar out), so it also works under ``torch.func.vmap``.
    """
    if len(grads_real) != len(grads_syn):
        raise ValueError(
            f"{len(grads_real)} real gradient tensors vs {len(grads_syn)} synthetic ones; "
            "pass one tensor per parameter, in the same order."
        )
    for g_real, g_syn in zip(grads_real, grads_syn):
        if g_real.shape != g_syn.shape:
            raise ValueError(f"gradient shapes {tuple(g_real.shape)} and {tuple(g_syn.shape)} differ; "
                             "pair the gradients of the same parameter.")
    if all_params:
        real = torch.cat([g.reshape(-1) for g in grads_real])
        syn = torch.cat([g.reshape(-1) for g in grads_syn])
        return _cosine_distance_rows(real[None], syn[None])
    terms = [_cosine_distance_rows(g_real.reshape(g_real.shape[0], -1), g_syn.reshape(g_syn.shape[0], -1))
             for g_real, g_syn in zip(grads_real, grads_syn) if g_real.ndim > 1]
    if not terms:
        raise ValueError("no parameter with ndim > 1 to match; pass weight gradients or all_params=True.")
    return torch.stack(terms).sum()


def matching_loss(net: nn.Module, real_by_class: torch.Tensor, syn_by_class: torch.Tensor, *,
                  all_params: bool = False, real_weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_c D(grad l(T_c), grad l(S_c))`` at the current weights of ``net`` (DC Algorithm 1).

    ``real_by_class`` ``(C, n, ch, H, W)``, ``syn_by_class`` ``(C, ipc, ch, H, W)``, both
    class-major (block c holds class c). ``real_weights`` ``(C, n)``: the real loss of class c
    is the weighted mean ``sum_i w_i l_i / sum_i w_i`` (per-sample weights of the real data).
    Differentiable w.r.t. the synthetic images; the real gradients are constants unless the
    real images themselves require grad.
    """
    if real_by_class.ndim != 5 or syn_by_class.ndim != 5 or real_by_class.shape[0] != syn_by_class.shape[0]:
        raise ValueError(
            f"real {tuple(real_by_class.shape)} and synthetic {tuple(syn_by_class.shape)} must be "
            "(C, n, ch, H, W) blocks with the same number of classes C."
        )
    if real_weights is not None and tuple(real_weights.shape) != tuple(real_by_class.shape[:2]):
        raise ValueError(f"real_weights has shape {tuple(real_weights.shape)}, expected "
                         f"{tuple(real_by_class.shape[:2])} (num_classes, n).")
    total = real_by_class.new_zeros(())
    for c in range(real_by_class.shape[0]):
        real, syn = real_by_class[c], syn_by_class[c]
        real_grads = ce_gradients(net, real, real.new_full((real.shape[0],), c, dtype=torch.long),
                                  create_graph=real.requires_grad,
                                  weights=None if real_weights is None else real_weights[c])
        syn_grads = ce_gradients(net, syn, syn.new_full((syn.shape[0],), c, dtype=torch.long),
                                 create_graph=True)
        total = total + match_distance(real_grads, syn_grads, all_params=all_params)
    return total


def train_steps(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                batch_size: int, lr: float, generator: torch.Generator, aug: DSA | None = None) -> None:
    """Update ``net`` in place: ``epochs`` shuffled passes of plain SGD on ``(images, labels)``.

    The network-update step of DC's Algorithm 1 (lr ``lr_net``, no momentum,
    no weight decay); with ``aug`` each minibatch is augmented (one op,
    per-image magnitudes), as in DSA. It runs the project's one training loop,
    :func:`ddrepro.train.sgd_train`, on a stack of one model whose buffers are
    views of the module's own (batch-norm statistics update ``net`` in place).
    """
    params = {name: p.detach().unsqueeze(0).clone().requires_grad_(True)
              for name, p in net.named_parameters()}
    buffers = {name: b.unsqueeze(0) for name, b in net.named_buffers()}
    sgd_train(net, params, buffers, images, labels, recipe=Recipe(epochs, batch_size, lr),
              generators=[generator], engine="unrolled", aug=aug, quiet=True)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(params[name][0])


@torch.no_grad()
def freeze_batchnorm_(net: nn.Module, ctx: Context) -> None:
    """Set a BN net's running statistics from real images, then put its BN layers in eval mode.

    The authors' code does this before every matching step: with batch
    statistics, the gradient of a class's few synthetic images would depend on
    that batch alone.
    """
    net.train()
    net(ctx.sample_all_classes(BN_IMAGES_PER_CLASS).flatten(0, 1))
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _fresh_net(ctx: Context) -> nn.Module:
    channels, size = ctx.image_shape[0], ctx.image_shape[1]
    return build_net(ctx.net_cfg, channels, ctx.num_classes, size, generator=ctx.generator).to(ctx.device)


def gradient_matching_run(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor,
                          cfg: GMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """DC / DSA Algorithm 1 with ``cfg``; ``syn_images`` class-major as :func:`condense` builds them."""
    num_classes, ipc = ctx.num_classes, ctx.ipc
    expected = torch.arange(num_classes, device=syn_labels.device).repeat_interleave(ipc)
    if syn_labels.shape != expected.shape or not torch.equal(syn_labels, expected):
        raise ValueError("syn_labels must be class-major (ipc images of class 0, then class 1, ...); "
                         "build the initial set with condense()/initial_synthetic().")
    default_outer, default_inner = loops_for_ipc(ipc)
    outer = cfg.outer_loops if cfg.outer_loops is not None else default_outer
    inner = cfg.inner_loops if cfg.inner_loops is not None else default_inner
    aug = DSA(ctx.aug_cfg, flip=ctx.flip) if cfg.dsa else None
    syn = syn_images.detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.momentum)
    for step in ctx.steps(cfg.steps, state=[syn], optimizer=optimizer):
        net = _fresh_net(ctx)
        batchnorm = has_batchnorm(net)
        for outer_step in range(outer):
            if batchnorm:
                freeze_batchnorm_(net, ctx)
            index = ctx.sample_indices(cfg.batch_real)
            real = ctx.real_images[index]
            weights = None if ctx.real_weights is None else ctx.real_weights[index]
            syn_by_class = syn.view(num_classes, ipc, *syn.shape[1:])
            real_aug, syn_aug = ((real, syn_by_class) if aug is None
                                 else siamese_augment(aug, ctx.generator, real, syn_by_class))
            loss = matching_loss(net, real_aug, syn_aug, real_weights=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[syn])  # the net's weights need no gradient of the matching loss
            optimizer.step()
            ctx.log(loss)
            ctx.check_finite(syn, step)
            if outer_step == outer - 1:
                break
            net.train()
            train_steps(net, syn.detach(), syn_labels, epochs=inner, batch_size=cfg.batch_train,
                        lr=cfg.lr_net, generator=ctx.generator, aug=aug)
    return syn.detach(), syn_labels


@register("dc", GMConfig, default_init="noise", default_config=GMConfig(dsa=False))
def run_dc(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """DC: gradient matching without augmentation (``GMConfig.dsa`` must be False).

    Starts from N(0, 1) noise by default, as the authors' DC: ``main.py``'s
    ``--init`` defaults to ``noise`` and their Table 1 command passes none.
    """
    cfg: GMConfig = ctx.config
    if cfg.dsa:
        raise ValueError("method 'dc' got GMConfig(dsa=True); use method 'dsa' or set dsa=False.")
    return gradient_matching_run(ctx, syn_images, syn_labels, cfg)


@register("dsa", GMConfig, default_init="real", default_config=GMConfig(dsa=True))
def run_dsa(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """DSA: gradient matching with Siamese augmentation (``GMConfig.dsa`` must be True).

    Starts from real images by default: the authors' DSA command passes ``--init real``.
    """
    cfg: GMConfig = ctx.config
    if not cfg.dsa:
        raise ValueError("method 'dsa' got GMConfig(dsa=False); use method 'dc' or set dsa=True.")
    return gradient_matching_run(ctx, syn_images, syn_labels, cfg)


__all__ = [
    "LOOPS_BY_IPC", "BN_IMAGES_PER_CLASS", "loops_for_ipc", "match_distance", "freeze_batchnorm_", "matching_loss",
    "train_steps", "gradient_matching_run", "run_dc", "run_dsa",
]
