"""K networks held as one stack of parameters: build them, run them, save and reload them.

Every tensor of :class:`TrainedModels` has a leading model axis ``K``
(``torch.func.stack_module_state``), so K networks can be trained, probed or
differentiated together (:mod:`ddrepro.train`, :mod:`ddrepro.evaluate`,
:mod:`ddrepro.functional`). ``to_dict``/``from_dict`` turn them into plain
tensors and strings, the form the artifact cache stores (and reads back
with ``weights_only=True``).

Engines for the K forward passes: ``"vmap"`` turns every layer into one
grouped operation over the K models (what a GPU wants); ``"unrolled"`` runs
the models one after another with ordinary kernels, which a CPU prefers
(measured in ``benchmarks/bench_eval_batched.py``) and which networks with
BatchNorm need (their running statistics update in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .config import NetConfig, to_dict
from .nets import build_net, has_batchnorm

ENGINES = ("auto", "vmap", "unrolled")


def resolve_engine(engine: str, device: torch.device, net: nn.Module) -> str:
    """``"auto"``: vmap on CUDA, unrolled on the CPU and for BatchNorm networks (module doc)."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; choose one of {', '.join(ENGINES)}.")
    has_bn = has_batchnorm(net)
    if engine == "vmap" and has_bn:
        raise ValueError("BatchNorm updates running statistics in place and cannot train under vmap; "
                         "use engine='unrolled' or norm='instancenorm'.")
    if engine == "auto":
        return "vmap" if device.type == "cuda" and not has_bn else "unrolled"
    return engine


def init_stacked(net_cfg: NetConfig, in_channels: int, num_classes: int, image_size: int,
                 init_seeds: Sequence[int], device: torch.device
                 ) -> tuple[nn.Module, dict[str, Tensor], dict[str, Tensor]]:
    """One network per seed, stacked: ``(template module, params (K, ...), buffers (K, ...))``."""
    nets = [build_net(net_cfg, in_channels, num_classes, image_size, seed=s).to(device)
            for s in init_seeds]
    params, buffers = stack_module_state(nets)
    return nets[0], params, buffers


def stacked_forward(base: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor],
                    x: Tensor, engine: str) -> Tensor:
    """Logits ``(K, b, classes)`` of the K models; ``x`` is ``(K, b, ...)`` or ``(b, ...)`` shared."""
    shared = x.dim() == 4
    if engine == "vmap":
        def one(p: dict[str, Tensor], b: dict[str, Tensor], xk: Tensor) -> Tensor:
            return functional_call(base, (p, b), (xk,))
        return vmap(one, in_dims=(0, 0, None if shared else 0))(params, buffers, x)
    n_models = next(iter(params.values())).shape[0]
    outs = []
    for k in range(n_models):
        state = {name: t[k] for name, t in params.items()} | {name: t[k] for name, t in buffers.items()}
        outs.append(functional_call(base, state, (x if shared else x[k],)))
    return torch.stack(outs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class TrainedModels:
    """K trained networks as stacked parameters (every tensor has a leading model axis).

    ``trajectory`` (when recorded) lists checkpoints: the stacked parameters
    (and buffers) by name, ``"step"`` (training iterations done), ``"updates"``
    ``(K,)`` (updates each model received; models on smaller sets finish their
    epochs earlier) and ``"lr"`` (the step size of the update that follows; for
    the last checkpoint, that of the last update).
    """

    net_cfg: NetConfig
    in_channels: int
    num_classes: int
    image_size: int
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    trajectory: list[dict[str, Tensor]] | None = None
    engine: str = "auto"
    _base: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def n_models(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def template(self) -> nn.Module:
        """A module of the right architecture whose own weights are never used (functional calls)."""
        if self._base is None:
            self._base = build_net(self.net_cfg, self.in_channels, self.num_classes, self.image_size,
                                   seed=0).to(self.device)
        return self._base

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 1024) -> Tensor:
        """Logits ``(K, N, num_classes)`` of every model on ``images``, in eval mode."""
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise ValueError("predict needs an (N, C, H, W) tensor.")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        base = self.template().eval()
        engine = resolve_engine(self.engine, self.device, base)
        params = {k: v.detach() for k, v in self.params.items()}
        chunks = [stacked_forward(base, params, self.buffers, chunk.to(self.device), engine)
                  for chunk in images.split(batch_size)]
        return torch.cat(chunks, dim=1)

    def _check_model(self, k: Any) -> None:
        if not _is_int(k) or not 0 <= k < self.n_models:
            raise ValueError(f"model index {k!r} out of range; there are {self.n_models} models.")

    def _module_from(self, state: dict[str, Tensor], k: int) -> nn.Module:
        net = build_net(self.net_cfg, self.in_channels, self.num_classes, self.image_size, seed=0)
        own = {name: t[k].detach() for name, t in state.items() if name in self.params}
        own |= {name: (state.get(name, t))[k] for name, t in self.buffers.items()}
        net.load_state_dict(own)
        return net.to(self.device).eval()

    def module(self, k: int) -> nn.Module:
        """Model ``k`` as an ordinary module (a copy, in eval mode)."""
        self._check_model(k)
        return self._module_from(self.params, k)

    def params_at(self, checkpoint: int) -> dict[str, Tensor]:
        """The stacked parameters ``(K, ...)`` at recorded ``checkpoint`` (negative counts from the end)."""
        if not self.trajectory:
            raise ValueError("no trajectory was recorded; train with record_every=...")
        if not _is_int(checkpoint) or not -len(self.trajectory) <= checkpoint < len(self.trajectory):
            raise ValueError(f"checkpoint {checkpoint!r} out of range; {len(self.trajectory)} recorded.")
        snap = self.trajectory[checkpoint]
        return {name: snap[name] for name in self.params}

    def module_at(self, checkpoint: int, k: int = 0) -> nn.Module:
        """Model ``k`` as it was at recorded ``checkpoint`` (a copy, in eval mode)."""
        self._check_model(k)
        params = self.params_at(checkpoint)
        return self._module_from(params | {n: self.trajectory[checkpoint].get(n, b)
                                           for n, b in self.buffers.items()}, k)

    def select(self, rows: Sequence[int] | Tensor) -> "TrainedModels":
        """The models ``rows`` as their own stack (trajectories included)."""
        index = torch.as_tensor(rows, dtype=torch.int64, device=self.device)
        traj = None if self.trajectory is None else [
            {name: (t[index] if t.dim() and t.shape[0] == self.n_models and name != "lr"
                    and name != "step" else t) for name, t in snap.items()}
            for snap in self.trajectory]
        return TrainedModels(self.net_cfg, self.in_channels, self.num_classes, self.image_size,
                             {n: t[index] for n, t in self.params.items()},
                             {n: t[index] for n, t in self.buffers.items()}, traj, self.engine)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the artifact cache (tensors on the CPU, the config as a dict)."""
        cpu = lambda d: {k: v.detach().cpu() for k, v in d.items()}  # noqa: E731
        return {"net": to_dict(self.net_cfg), "in_channels": self.in_channels,
                "num_classes": self.num_classes, "image_size": self.image_size,
                "params": cpu(self.params), "buffers": cpu(self.buffers),
                "trajectory": None if self.trajectory is None else [cpu(s) for s in self.trajectory],
                "engine": self.engine}

    @classmethod
    def from_dict(cls, d: dict[str, Any], device: str | torch.device = "cpu") -> "TrainedModels":
        move = lambda t: {k: v.to(device) for k, v in t.items()}  # noqa: E731
        traj = None if d["trajectory"] is None else [move(s) for s in d["trajectory"]]
        return cls(NetConfig(**d["net"]), d["in_channels"], d["num_classes"], d["image_size"],
                   move(d["params"]), move(d["buffers"]), traj, d["engine"])


__all__ = ["ENGINES", "TrainedModels", "init_stacked", "resolve_engine", "stacked_forward"]
