"""The expert buffer that trajectory-reading condensers share (EAD and MTT).

EAD (:mod:`ddrepro.condense.ead`) reads gradients at the checkpoints of one
SGD run on the real set; MTT (:mod:`ddrepro.condense.mtt`) starts students at
them and matches later ones. Both take the run from here, so equal expert
settings (``expert_epochs``, ``expert_lr``, ``expert_batch``,
``checkpoint_every``: fields of both configs) are one cached artifact
(:func:`ddrepro.trajectory.expert_trajectory`), not one per method. Neither
method imports the other.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from ..config import EvalConfig
from ..models import TrainedModels
from ..train import steps_per_epoch
from ..trajectory import Trajectory, expert_trajectory
from .base import Context


class ExpertFields(Protocol):
    """What a config must hold to name its expert (``EADConfig`` and ``MTTConfig`` do)."""

    expert_epochs: int
    expert_lr: float
    expert_batch: int
    checkpoint_every: int


def expert_recipe(cfg: ExpertFields) -> EvalConfig:
    """The expert's plain SGD: no momentum, no weight decay, no augmentation, one network."""
    return EvalConfig(epochs=cfg.expert_epochs, batch_size=cfg.expert_batch, lr=cfg.expert_lr,
                      momentum=0.0, weight_decay=0.0, n_models=1, augment="none")


def expert_checkpoints(n_real: int, cfg: ExpertFields) -> int:
    """How many recorded checkpoints are followed by an update: the last index of the buffer.

    The buffer holds ``expert_checkpoints + 1`` checkpoints, indices 0 (the
    initialisation) to ``expert_checkpoints``; known from the sizes alone, so
    callers check their ranges before the expert is trained.
    """
    updates = steps_per_epoch(n_real, cfg.expert_batch) * cfg.expert_epochs
    return updates // cfg.checkpoint_every


def expert_for(ctx: Context, cfg: ExpertFields) -> tuple[Trajectory, TrainedModels]:
    """The cached expert run on ``ctx``'s real set: its trajectory (on the device) and the models."""
    models = expert_trajectory(ctx.real_images, ctx.real_labels, num_classes=ctx.num_classes,
                               net_cfg=ctx.net_cfg, eval_cfg=expert_recipe(cfg),
                               record_every=cfg.checkpoint_every, seed=ctx.seed, device=ctx.device,
                               quiet=ctx.quiet)
    return Trajectory.from_models(models, 0).to(ctx.device), models


def flat_distance(a: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
    """``||a - b||^2`` over every parameter tensor (one flattened vector)."""
    return sum(((a[name] - b[name]) ** 2).sum() for name in a)


__all__ = ["ExpertFields", "expert_checkpoints", "expert_for", "expert_recipe", "flat_distance"]
