"""Gradients of a network's loss as functions of its parameters (``torch.func``).

Three chapters need the training loss's gradient w.r.t. the *weights* as a
value to compute with rather than a side effect of ``backward``:

* gradient matching (DC/DSA, and gradient-matching poisoning) compares the
  gradient on real and on synthetic images (:func:`ce_gradients`);
* the effect-alignment estimator and EAD take inner products of gradients at
  many checkpoints of one trajectory (:func:`checkpoint_grads`, batched over
  checkpoints with ``vmap`` instead of a Python loop);
* DP-SGD clips each example's gradient (:func:`per_example_grads`).

All of them stay differentiable w.r.t. the *images* (and soft labels), so a
synthetic set can be learned through them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .train import batch_loss, per_sample_loss

Params = dict[str, Tensor]


def ce_gradients(net: nn.Module, images: Tensor, labels: Tensor, *, create_graph: bool,
                 weights: Tensor | None = None) -> list[Tensor]:
    """Gradient of the (weighted) mean cross-entropy on ``(images, labels)`` w.r.t. ``net``'s parameters.

    ``weights`` ``(n,)``: the loss is ``sum_i w_i l_i / sum_i w_i`` (None: the plain mean).
    ``create_graph=True`` keeps it differentiable (w.r.t. the images) for a second backward.
    Works under ``torch.no_grad()`` too (the weight gradient is the output, not a side effect).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    with torch.enable_grad():
        logits = net(images)
        if weights is None:
            loss = F.cross_entropy(logits, labels)
        else:
            loss = (per_sample_loss(logits, labels) * weights).sum() / weights.sum()
        return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def loss_function(base: nn.Module) -> Callable[[Params, Params, Tensor, Tensor], Tensor]:
    """``(params, buffers, images, targets) -> mean loss`` of ``base``'s architecture (functional)."""
    def loss(params: Params, buffers: Params, images: Tensor, targets: Tensor) -> Tensor:
        return batch_loss(functional_call(base, (params, buffers), (images,)), targets, None)
    return loss


def per_example_grads(base: nn.Module, params: Params, buffers: Params, images: Tensor,
                      targets: Tensor) -> Params:
    """``{name: (n, ...)}``: the gradient of each example's own loss, in one vmapped pass.

    Networks with batch norm have no per-example gradient (an example's loss
    depends on its batch); use instance norm, as the papers' ConvNet does.
    """
    loss = loss_function(base)

    def one(x: Tensor, y: Tensor) -> Params:
        return grad(loss)(params, buffers, x.unsqueeze(0), y.unsqueeze(0))

    return vmap(one)(images, targets)


def checkpoint_grads(base: nn.Module, stacked_params: Params, buffers: Params, images: Tensor,
                     targets: Tensor) -> Params:
    """``{name: (T, ...)}``: the gradient of the mean loss on ``(images, targets)`` at T parameter sets.

    ``stacked_params`` holds T checkpoints with a leading axis
    (:meth:`ddrepro.models.TrainedModels.params_at` of several checkpoints,
    stacked); ``buffers`` are shared. One vmapped pass over the checkpoints;
    differentiable w.r.t. ``images`` and ``targets``.
    """
    loss = loss_function(base)
    return vmap(grad(loss), in_dims=(0, None, None, None))(stacked_params, buffers, images, targets)


def flatten(grads: Params | list[Tensor], lead: int = 0) -> Tensor:
    """Concatenate per-parameter tensors into one vector per leading index: ``(*lead_dims, P)``."""
    values = list(grads.values()) if isinstance(grads, dict) else list(grads)
    lead_shape = values[0].shape[:lead]
    return torch.cat([v.reshape(*lead_shape, -1) for v in values], dim=-1)


__all__ = ["ce_gradients", "checkpoint_grads", "flatten", "loss_function", "per_example_grads"]
