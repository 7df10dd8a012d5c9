"""One recorded SGD run as a value: checkpoints, step sizes, and the updates between them.

The effect estimator (Prop. 3.2 of the effect-alignment paper,
:mod:`ddrepro.effects.influence`) and EAD (Alg. 1, :mod:`ddrepro.condense.ead`) both
read a training trajectory ``{(theta^t, eta_t)}``; trajectory matching (MTT)
would read the same buffer. :func:`expert_trajectory` trains it with the
shared loop (:func:`ddrepro.train.train_models`, ``record_every``) and caches
it as an artifact keyed by the data, the recipe and the seed, so every method
and ablation on the same data reuses one expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .artifacts import cached, tensor_digest
from .config import EvalConfig, NetConfig
from .functional import checkpoint_grads, flatten
from .models import TrainedModels
from .train import train_models


@dataclass
class Trajectory:
    """T checkpoints of one network, stacked: ``params[name]`` is ``(T, ...)``.

    ``lrs[t]``: the step size of the updates after checkpoint t; ``updates[t]``:
    how many SGD updates lie between checkpoint t and t + 1 (0 for the last,
    which ends the run). ``lrs * updates`` is the step length each checkpoint
    stands for in a sum over the run (the derived estimator's weights).
    """

    base: nn.Module
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    lrs: Tensor
    updates: Tensor

    def __len__(self) -> int:
        return int(self.lrs.numel())

    @classmethod
    def from_models(cls, models: TrainedModels, k: int = 0) -> "Trajectory":
        """Model ``k``'s recorded trajectory (``train_models(..., record_every=...)``)."""
        if not models.trajectory:
            raise ValueError("the models have no trajectory; train them with record_every=k.")
        if not 0 <= k < models.n_models:
            raise ValueError(f"model index {k} out of range; there are {models.n_models} models.")
        snaps = models.trajectory
        params = {name: torch.stack([s[name][k] for s in snaps]) for name in models.params}
        buffers = {name: snaps[-1].get(name, t)[k] for name, t in models.buffers.items()}
        steps = torch.stack([s["step"] for s in snaps]).to(torch.int64)
        updates = torch.cat([steps[1:] - steps[:-1], steps.new_zeros(1)])
        lrs = torch.stack([s["lr"] for s in snaps]).to(torch.float32)
        return cls(models.template(), params, buffers, lrs, updates)

    def take(self, index: Tensor) -> "Trajectory":
        """The checkpoints ``index`` (a 1-D int tensor) as a trajectory of their own."""
        return Trajectory(self.base, {n: p[index] for n, p in self.params.items()}, self.buffers,
                          self.lrs[index], self.updates[index])

    def to(self, device: torch.device | str) -> "Trajectory":
        return Trajectory(self.base.to(device), {n: p.to(device) for n, p in self.params.items()},
                          {n: b.to(device) for n, b in self.buffers.items()},
                          self.lrs.to(device), self.updates.to(device))


def sample_checkpoints(n_checkpoints: int, t_m: int, generator: torch.Generator) -> Tensor:
    """``t_m`` distinct checkpoint indices drawn uniformly from ``range(n_checkpoints)`` (Eq. 5), sorted."""
    if isinstance(t_m, bool) or not isinstance(t_m, int) or t_m < 1:
        raise ValueError(f"t_m must be an int >= 1, got {t_m!r}.")
    if t_m > n_checkpoints:
        raise ValueError(f"t_m={t_m} exceeds the {n_checkpoints} checkpoints that can be sampled; "
                         "lower t_m or record the trajectory more often (record_every).")
    return torch.randperm(n_checkpoints, generator=generator)[:t_m].sort().values


def expert_trajectory(images: Tensor, labels: Tensor, *, num_classes: int, net_cfg: NetConfig,
                      eval_cfg: EvalConfig, record_every: int, seed: int = 0,
                      device: str | torch.device = "auto", quiet: bool | None = None,
                      cache: bool = True) -> TrainedModels:
    """One network trained on ``(images, labels)`` with its trajectory recorded (cached artifact).

    The recipe is ``eval_cfg`` (no augmentation: the estimator's derivation
    assumes the plain loss); ``n_models`` is forced to 1.
    """
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be an int >= 1, got {record_every!r}.")
    parts = {"images": tensor_digest(images), "labels": tensor_digest(labels),
             "num_classes": num_classes, "net": net_cfg, "eval": eval_cfg,
             "record_every": record_every, "seed": seed}

    def compute() -> dict:
        models = train_models(images, labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                              num_classes=num_classes, n_models=1, seed=seed,
                              record_every=record_every, device=device, quiet=quiet)
        return models.to_dict()

    stored = cached("expert_trajectory", parts, compute, code=("ddrepro.trajectory",), enabled=cache)
    return TrainedModels.from_dict(stored, device=images.device)


def group_grads(traj: Trajectory, images: Tensor, targets: Tensor) -> Tensor:
    """``(T, P)``: the gradient of the mean loss on ``(images, targets)`` at every checkpoint of ``traj``.

    One vmapped pass over the checkpoints; an empty group has gradient zero.
    """
    n_params = sum(p[0].numel() for p in traj.params.values())
    if images.shape[0] == 0:
        return torch.zeros(len(traj), n_params, device=images.device)
    grads = checkpoint_grads(traj.base, traj.params, traj.buffers, images, targets)
    return flatten(grads, lead=1)


__all__ = ["Trajectory", "expert_trajectory", "group_grads", "sample_checkpoints"]
