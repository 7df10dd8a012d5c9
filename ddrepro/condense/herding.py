"""Herding (Welling, ICML 2009): the coreset baseline of the DC paper (Zhao et al., ICLR 2021).

Per class, pick real images one at a time so that the running mean of the
picked embeddings stays as close as possible to the class's mean embedding
(the greedy herding rule as used for coreset selection, e.g. iCaRL Alg. 4):

    p_t = argmin_{i not picked} || mu_c - (1/t) (f_i + sum_{j < t} f_{p_j}) ||^2

Embeddings come from a ConvNet trained briefly on the real data
(``HerdingConfig.embed_epochs`` epochs of the project's one training loop,
:func:`ddrepro.train.train_models`, without augmentation) or, with
``embed_epochs=0``, from a randomly initialised one. Everything is seeded from
the condenser's generator, and ties go to the lowest index, so the selection
is deterministic for a seed. The initial synthetic set is ignored: herding
selects, it does not optimise.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import EvalConfig, HerdingConfig
from ..train import train_models
from ..nets import build_net
from .base import Context, register


def herding_order(feats: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, d) -> (k,)`` distinct row indices chosen greedily by herding (module docstring).

    Expanding the objective, candidate ``i`` at step ``t`` minimises
    ``||f_i||^2 + 2 f_i . (s - t mu)`` with ``s`` the sum of picked features,
    so each step is one matrix-vector product over the candidates.
    """
    n = feats.shape[0]
    if feats.ndim != 2:
        raise ValueError(f"herding_order needs (n, d) features, got shape {tuple(feats.shape)}.")
    if not 1 <= k <= n:
        raise ValueError(f"cannot herd k={k} of n={n} samples; pick 1 <= k <= n.")
    feats = feats.double()  # the objective differences can be tiny next to ||f||^2
    mean = feats.mean(0)
    sq_norms = feats.pow(2).sum(1)
    picked_sum = torch.zeros_like(mean)
    available = torch.ones(n, dtype=torch.bool, device=feats.device)
    order = []
    for t in range(1, k + 1):
        score = sq_norms + 2.0 * feats @ (picked_sum - t * mean)
        score = score.masked_fill(~available, float("inf"))
        pick = int(torch.argmin(score))  # first minimum: deterministic tie-break
        order.append(pick)
        available[pick] = False
        picked_sum = picked_sum + feats[pick]
    return torch.tensor(order, dtype=torch.int64, device=feats.device)


@torch.no_grad()
def embed_all(net: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``net.embed`` over ``images`` in chunks, in eval mode (running statistics for batch norm)."""
    net.eval()
    return torch.cat([net.embed(chunk) for chunk in images.split(batch_size)])


def embedding_net(ctx: Context, cfg: HerdingConfig, seed: int) -> nn.Module:
    """A ConvNet trained ``cfg.embed_epochs`` epochs on the real data (a random one for 0)."""
    channels, size = ctx.image_shape[0], ctx.image_shape[1]
    if cfg.embed_epochs == 0:
        return build_net(ctx.net_cfg, channels, ctx.num_classes, size, seed=seed).to(ctx.device)
    eval_cfg = EvalConfig(epochs=cfg.embed_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                          n_models=1, augment="none")
    models = train_models(ctx.real_images, ctx.real_labels, net_cfg=ctx.net_cfg, eval_cfg=eval_cfg,
                          num_classes=ctx.num_classes, n_models=1, seed=seed, aug=None,
                          device=ctx.device, quiet=ctx.quiet)
    return models.module(0).to(ctx.device)


@register("herding", HerdingConfig, weights=False)
def run(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """``ipc`` herded real images per class, class-major like every condenser's output.

    Per-sample weights are refused (``weights=False``): the herding target is the plain class mean.
    """
    cfg: HerdingConfig = ctx.config
    for c, idx in enumerate(ctx.class_indices):
        if idx.numel() < ctx.ipc:
            raise ValueError(f"class {c} has only {idx.numel()} real images, fewer than "
                             f"ipc={ctx.ipc}; lower ipc or use more training data.")
    seed = int(torch.randint(0, 2**62, (1,), generator=ctx.generator))
    feats = embed_all(embedding_net(ctx, cfg, seed), ctx.real_images)
    picks = torch.cat([idx[herding_order(feats[idx], ctx.ipc)] for idx in ctx.class_indices])
    labels = torch.arange(ctx.num_classes, device=ctx.device).repeat_interleave(ctx.ipc)
    if ctx.source_index is not None:  # which real images were selected (provenance)
        ctx.meta["selected_indices"] = ctx.source_index[picks.cpu()]
    return ctx.real_images[picks].clone(), labels


__all__ = ["herding_order", "embed_all", "embedding_net", "run"]
