"""The expert runs that trajectory-reading condensers read (EAD and MTT).

EAD (:mod:`ddrepro.condense.ead`) reads gradients at the checkpoints of one
plain SGD run on the real set (:func:`expert_for`, the cached
:func:`ddrepro.trajectory.expert_trajectory`: no augmentation, since the
estimator's derivation is about the plain loss). MTT
(:mod:`ddrepro.condense.mtt`) reads a *buffer* of several experts, as its
authors' ``buffer.py`` writes it (:func:`expert_buffer`): ``n_experts``
networks trained with DSA on the real set at a constant rate, one checkpoint
per epoch. Both run at a constant rate (:func:`expert_recipe`): the step a
checkpoint stands for is then the expert's own, never a decayed one that
MTT's single learned step would have to average in. Neither method imports
the other.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ..artifacts import cached, tensor_digest
from ..augment import DSA
from ..config import AugConfig, EvalConfig, NetConfig
from ..models import TrainedModels
from ..train import steps_per_epoch, train_models
from ..trajectory import Trajectory, expert_trajectory
from .base import Context


class ExpertFields(Protocol):
    """What a config must hold to name its expert run (``EADConfig`` and ``MTTConfig`` do)."""

    expert_epochs: int
    expert_lr: float
    expert_batch: int


def expert_recipe(cfg: ExpertFields, augment: str = "none") -> EvalConfig:
    """The expert's plain SGD at a constant rate: no momentum, no weight decay, no decay, one network.

    MTT's ``buffer.py`` trains its experts at ``lr_teacher`` throughout (its
    ``--decay`` is off by default), with momentum and L2 0. ``augment``:
    ``"dsa"`` for MTT's buffer (``buffer.py`` trains with DSA), ``"none"`` for EAD.
    """
    return EvalConfig(epochs=cfg.expert_epochs, batch_size=cfg.expert_batch, lr=cfg.expert_lr,
                      momentum=0.0, weight_decay=0.0, n_models=1, augment=augment,
                      decay_epochs=())


def expert_checkpoints(n_real: int, cfg: ExpertFields) -> int:
    """How many recorded checkpoints of EAD's expert are followed by an update: the buffer's last index.

    The buffer holds ``expert_checkpoints + 1`` checkpoints, indices 0 (the
    initialisation) to ``expert_checkpoints``; known from the sizes alone, so
    callers check their ranges before the expert is trained. ``cfg`` needs
    ``checkpoint_every`` (EAD's unit: updates).
    """
    updates = steps_per_epoch(n_real, cfg.expert_batch) * cfg.expert_epochs
    return updates // cfg.checkpoint_every


def expert_for(ctx: Context, cfg: ExpertFields) -> tuple[Trajectory, TrainedModels]:
    """EAD's cached expert run on ``ctx``'s real set: its trajectory (on the device) and the model."""
    models = expert_trajectory(ctx.real_images, ctx.real_labels, num_classes=ctx.num_classes,
                               net_cfg=ctx.net_cfg, eval_cfg=expert_recipe(cfg),
                               record_every=cfg.checkpoint_every, seed=ctx.seed, device=ctx.device,
                               quiet=ctx.quiet)
    return Trajectory.from_models(models, 0).to(ctx.device), models


def expert_buffer(ctx: Context, cfg: ExpertFields, n_experts: int, dsa: bool) -> list[Trajectory]:
    """MTT's replay buffer on ``ctx``'s real set (:func:`train_buffer`), on the device."""
    models = train_buffer(ctx.real_images, ctx.real_labels, num_classes=ctx.num_classes,
                          net_cfg=ctx.net_cfg, cfg=cfg, n_experts=n_experts,
                          aug_cfg=ctx.aug_cfg if dsa else None, flip=ctx.flip, seed=ctx.seed,
                          device=ctx.device, quiet=ctx.quiet)
    return [Trajectory.from_models(models, k).to(ctx.device) for k in range(n_experts)]


def train_buffer(images: Tensor, labels: Tensor, *, num_classes: int, net_cfg: NetConfig,
                 cfg: ExpertFields, n_experts: int, aug_cfg: AugConfig | None, flip: bool,
                 seed: int, device: str | torch.device = "auto",
                 quiet: bool | None = None) -> TrainedModels:
    """MTT's replay buffer: ``n_experts`` networks with one checkpoint per epoch (cached artifact).

    As the authors' ``buffer.py``: each expert is a fresh network trained by
    SGD at the constant rate ``expert_lr`` (:func:`expert_recipe`), with DSA
    (``aug_cfg``; mirroring only when ``flip``) on every batch unless
    ``aug_cfg`` is None, and a checkpoint at the start and after every epoch,
    so index ``e`` is the network after ``e`` epochs. The experts train
    together in one call of the shared loop (:func:`ddrepro.train.train_models`;
    expert k's run depends on its key ``(seed, k)`` only). Pages call this to
    train the buffer before timing MTT's steps; :func:`expert_buffer` reads it.
    """
    if isinstance(n_experts, bool) or not isinstance(n_experts, int) or n_experts < 1:
        raise ValueError(f"n_experts must be an int >= 1, got {n_experts!r}.")
    recipe = expert_recipe(cfg, "none" if aug_cfg is None else "dsa")
    per_epoch = steps_per_epoch(images.shape[0], cfg.expert_batch)
    parts = {"images": tensor_digest(images), "labels": tensor_digest(labels),
             "num_classes": num_classes, "net": net_cfg, "eval": recipe, "aug": aug_cfg,
             "flip": None if aug_cfg is None else flip, "n_experts": n_experts,
             "record_every": per_epoch, "seed": seed}

    def compute() -> dict:
        aug = None if aug_cfg is None else DSA(aug_cfg, flip=flip)
        models = train_models(images, labels, net_cfg=net_cfg, eval_cfg=recipe,
                              num_classes=num_classes, n_models=n_experts, seed=seed, aug=aug,
                              record_every=per_epoch, device=device, quiet=quiet)
        return models.to_dict()

    stored = cached("expert_buffer", parts, compute, code=("ddrepro.condense.expert",))
    return TrainedModels.from_dict(stored, device=images.device)


def flat_distance(a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
    """``||a - b||^2`` over every parameter tensor (one flattened vector)."""
    return sum(((a[name] - b[name]) ** 2).sum() for name in a)


__all__ = ["ExpertFields", "expert_buffer", "expert_checkpoints", "expert_for", "expert_recipe",
           "flat_distance", "train_buffer"]
