"""Matching training trajectories, MTT (Cazenavette et al. 2022, Algorithm 1).

The "process alignment" method the effect-alignment paper argues against, run
as its authors run it. Its expert buffer is theirs (``buffer.py``;
:func:`ddrepro.condense.expert.expert_buffer`): ``n_experts`` networks trained
on the real set with DSA at a constant rate, one checkpoint per epoch. Each
iteration

1. draws an expert and a start epoch ``t`` uniformly from ``[0, max_start)``;
2. starts a student at the expert's ``theta*_t`` and takes ``N = syn_steps``
   plain SGD steps on synthetic minibatches, each augmented by DSA with fresh
   draws (``distill.py``), with a learnable step size
   (:func:`sgd_unroll`, the whole unroll kept for backpropagation);
3. scores the student against the expert ``M = expert_steps`` epochs later
   with Eq. 2 of MTT,
   ``||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2``
   (:func:`trajectory_matching_loss`);
4. updates the images and the (log) step size by SGD with momentum.

Labels stay hard, as in MTT. The learned step size is the one MTT trains its
evaluation networks with (``distill.py`` sets ``args.lr_net = syn_lr.item()``):
:func:`evaluation_recipe`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..augment import DSA
from ..config import EvalConfig, _check, _positive
from ..functional import Params, loss_function
from ..synthetic import SyntheticSet
from .base import Context, register
from .expert import expert_buffer, flat_distance


@dataclass(frozen=True)
class MTTConfig:
    """Matching training trajectories, MTT (Cazenavette et al. 2022), Algorithm 1.

    The buffer (the authors' ``buffer.py``): ``n_experts`` networks trained for
    ``expert_epochs`` by plain SGD at the constant rate ``expert_lr`` on batches
    of ``expert_batch``, with DSA when ``dsa``, a checkpoint per epoch. Each
    step starts a student at epoch ``t < max_start`` of a random expert, takes
    ``syn_steps`` (N) SGD steps on synthetic batches of ``batch_syn`` (None:
    the whole set; DSA on each when ``dsa``, as ``distill.py``) with a
    learnable step size, and matches epoch ``t + expert_steps`` (M). Images:
    SGD, ``lr_img``, ``momentum`` (the authors' 0.5). The student step size
    starts at ``lr_init`` (None: the expert's, as in MTT) and is learned as its
    *logarithm* with SGD at ``lr_lr`` (ours: MTT learns the raw rate, at 1e-5
    to 1e-7). Defaults: MTT's CIFAR-10 IPC 10 row (N = 30, M = 2, 5,000
    iterations, starts below epoch 20, 50-epoch experts, 100 of them as
    ``buffer.py``'s default); the book has no ZCA, so ``lr_img`` is the IPC
    1/50 value 1,000.
    """

    steps: int = 5000
    syn_steps: int = 30
    expert_steps: int = 2
    max_start: int = 20
    batch_syn: int | None = None
    lr_img: float = 1000.0
    lr_lr: float = 0.01
    lr_init: float | None = None
    momentum: float = 0.5
    expert_epochs: int = 50
    expert_lr: float = 0.01
    expert_batch: int = 256
    n_experts: int = 100
    dsa: bool = True

    def __post_init__(self) -> None:
        _positive(self, "steps", "syn_steps", "expert_steps", "max_start", "lr_img", "lr_lr",
                  "expert_epochs", "expert_lr", "expert_batch", "n_experts")
        _check(self.batch_syn is None or self.batch_syn > 0, self, "batch_syn", self.batch_syn, "> 0 or None")
        _check(self.lr_init is None or self.lr_init > 0, self, "lr_init", self.lr_init, "> 0 or None")
        _check(0.0 <= self.momentum < 1.0, self, "momentum", self.momentum, "in [0, 1)")
        _check(isinstance(self.dsa, bool), self, "dsa", self.dsa, "True or False")


def sgd_unroll(base: nn.Module, params: Params, buffers: Params,
               batches: list[tuple[Tensor, Tensor]], lr: Tensor) -> Params:
    """The parameters after one plain SGD step (step size ``lr``) per ``(images, targets)`` batch.

    Every step keeps its graph (``create_graph``), so the result is
    differentiable w.r.t. the images, the targets, ``lr`` and the starting
    ``params`` (which must require grad for the first step's gradient):
    backpropagation through the unrolled steps, as trajectory matching needs.
    """
    loss = loss_function(base)
    for images, targets in batches:
        grads = torch.autograd.grad(loss(params, buffers, images, targets), list(params.values()),
                                    create_graph=True)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def trajectory_matching_loss(base: nn.Module, buffers: Params, start: Params, target: Params,
                             batches: list[tuple[Tensor, Tensor]], lr: Tensor) -> Tensor:
    """MTT's Eq. 2: the student's distance to the target, relative to the expert's own step.

    The student starts at ``start`` (detached here), takes one SGD step of
    size ``lr`` per batch, and is compared with ``target``. Zero exactly when
    the student lands on the target; differentiable w.r.t. the batches' images
    and ``lr``.
    """
    if not batches:
        raise ValueError("trajectory matching needs at least one student step (syn_steps >= 1).")
    expert_step = flat_distance(start, target)
    if not expert_step > 0:
        raise ValueError("the start and target checkpoints are identical; the expert did not move "
                         "between them (raise expert_steps or the expert's learning rate).")
    student = {name: p.detach().clone().requires_grad_(True) for name, p in start.items()}
    end = sgd_unroll(base, student, buffers, batches, lr)
    return flat_distance(end, target) / expert_step


def check_ranges(cfg: MTTConfig) -> int:
    """The buffer's last checkpoint (epoch) index, after checking that every start has its target."""
    last = cfg.expert_epochs
    if cfg.max_start - 1 + cfg.expert_steps > last:
        raise ValueError(
            f"max_start={cfg.max_start} and expert_steps={cfg.expert_steps} reach epoch "
            f"{cfg.max_start - 1 + cfg.expert_steps}, beyond the expert buffer's last ({last}: "
            f"one checkpoint per epoch of {cfg.expert_epochs}); lower max_start or expert_steps, "
            f"or train longer experts (expert_epochs).")
    return last


def student_batches(n_syn: int, cfg: MTTConfig, generator: torch.Generator) -> list[Tensor]:
    """``syn_steps`` rows of the synthetic set: reshuffled chunks of ``batch_syn`` (MTT's order)."""
    size = n_syn if cfg.batch_syn is None else min(cfg.batch_syn, n_syn)
    chunks: list[Tensor] = []
    while len(chunks) < cfg.syn_steps:
        chunks.extend(torch.randperm(n_syn, generator=generator).split(size))
    return chunks[:cfg.syn_steps]


def student_inputs(images: Tensor, aug: DSA | None, generator: torch.Generator) -> Tensor:
    """A student step's images: DSA with fresh draws (one op per batch, as ``DiffAugment`` in
    ``distill.py``) when ``aug``, else as they are; differentiable w.r.t. ``images``."""
    if aug is None:
        return images
    return aug.apply(images, aug.sample_params(images.shape[0], generator, device=images.device))


def evaluation_recipe(syn: SyntheticSet, eval_cfg: EvalConfig) -> EvalConfig:
    """``eval_cfg`` at MTT's learned step size, as MTT evaluates its sets (``args.lr_net = syn_lr``).

    A set without a learned step (any other method) keeps ``eval_cfg``.
    """
    lr = syn.meta.get("student_lr")
    return eval_cfg if lr is None else dataclasses.replace(eval_cfg, lr=float(lr))


@register("mtt", MTTConfig, default_init="real")
def run(ctx: Context, syn_images: Tensor, syn_labels: Tensor):
    """MTT, Algorithm 1 (module docstring), with ``MTTConfig``; hard labels."""
    cfg: MTTConfig = ctx.config
    check_ranges(cfg)  # before the experts are trained
    experts = expert_buffer(ctx, cfg, cfg.n_experts, cfg.dsa)
    aug = DSA(ctx.aug_cfg, flip=ctx.flip) if cfg.dsa else None
    syn = syn_images.detach().clone().requires_grad_(True)
    lr_init = cfg.expert_lr if cfg.lr_init is None else cfg.lr_init
    log_lr = torch.tensor(lr_init, device=ctx.device).log().requires_grad_(True)
    optimizer = torch.optim.SGD([{"params": [syn], "lr": cfg.lr_img},
                                 {"params": [log_lr], "lr": cfg.lr_lr}], momentum=cfg.momentum)
    for step in ctx.steps(cfg.steps, state=[syn, log_lr], optimizer=optimizer):
        traj = experts[int(torch.randint(len(experts), (1,), generator=ctx.generator))]
        t = int(torch.randint(cfg.max_start, (1,), generator=ctx.generator))
        start = {name: p[t] for name, p in traj.params.items()}
        target = {name: p[t + cfg.expert_steps] for name, p in traj.params.items()}
        rows = [r.to(ctx.device) for r in student_batches(syn.shape[0], cfg, ctx.generator)]
        batches = [(student_inputs(syn[r], aug, ctx.generator), syn_labels[r]) for r in rows]
        loss = trajectory_matching_loss(traj.base, traj.buffers, start, target, batches, log_lr.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ctx.log(loss)
        ctx.check_finite(syn, step)
        ctx.check_finite(log_lr, step, "student log step size")
    ctx.meta["student_lr"] = float(log_lr.detach().exp())
    return syn.detach(), syn_labels


__all__ = ["MTTConfig", "check_ranges", "evaluation_recipe", "run", "sgd_unroll", "student_batches",
           "student_inputs", "trajectory_matching_loss"]
