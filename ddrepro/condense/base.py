"""The one condenser interface: validation, initialisation, caching, progress.

Every method is a function ``run(ctx, syn_images, syn_labels) -> (images, labels)``
registered with :func:`register`; :func:`condense` wraps it with input checks,
the artifact cache, timing and the resolved config stored in ``meta``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..artifacts import cached
from ..config import AugConfig, NetConfig, to_dict
from ..registry import Registry
from ..runtime import make_generator, progress, resolve_device, is_quiet
from ..synthetic import SyntheticSet

INITS = ("real", "noise")


@dataclass(frozen=True)
class Condenser:
    """A registered method: its config class (None: no hyperparameters) and its loop.

    ``default_config`` (None: ``config_cls()``) lets two methods share a config
    class with different defaults (``"dsa"`` is ``GMConfig(dsa=True)``).
    """

    name: str
    config_cls: type | None
    run: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    default_init: str = "real"
    default_config: Any = None


CONDENSERS: Registry[Condenser] = Registry("condenser")


def register(name: str, config_cls: type | None, *, default_init: str = "real",
             default_config: Any = None, replace: bool = False):
    """Decorator: ``@register("dm", DMConfig)`` above ``def run(ctx, syn_images, syn_labels)``.

    ``replace=True`` lets a re-run notebook cell register a new version of a method.
    """

    def add(run: Callable[..., tuple[torch.Tensor, torch.Tensor]]):
        CONDENSERS.register(name, replace=replace)(
            Condenser(name, config_cls, run, default_init, default_config))
        return run

    return add


@dataclass
class Context:
    """What a method's loop receives; built by :func:`condense`, never by hand."""

    method: str
    real_images: torch.Tensor          # (N, C, H, W) on ``device``
    real_labels: torch.Tensor          # (N,) int64 on ``device``
    class_indices: list[torch.Tensor]  # per class, indices into real_images (on device)
    num_classes: int
    ipc: int
    config: Any
    net_cfg: NetConfig
    aug_cfg: AugConfig
    flip: bool                         # DSA flip only for data where mirroring keeps the class
    device: torch.device
    generator: torch.Generator         # CPU generator: all sampling goes through it
    seed: int
    quiet: bool
    real_weights: torch.Tensor | None = None  # (N,) on device, from ImageData.weights

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.real_images.shape[1:])  # type: ignore[return-value]

    def sample_indices(self, n: int) -> torch.Tensor:
        """``(num_classes, n)`` indices into ``real_images``: ``n`` per class, without replacement.

        ``n`` is capped by the smallest class so the batch stays rectangular.
        Indices (not images) so that per-sample weights or targets can be gathered too.
        """
        n = min(n, min(int(idx.numel()) for idx in self.class_indices))
        rows = [idx[torch.randperm(idx.numel(), generator=self.generator)[:n].to(idx.device)]
                for idx in self.class_indices]
        return torch.stack(rows)

    def sample_all_classes(self, n: int) -> torch.Tensor:
        """``(num_classes, n, C, H, W)`` real batch, one block per class (:meth:`sample_indices`)."""
        return self.real_images[self.sample_indices(n)]

    def steps(self, total: int, desc: str | None = None):
        """The progress-wrapped step range every loop iterates over."""
        return progress(range(total), desc=desc or f"{self.method} ipc={self.ipc}", total=total,
                        quiet=self.quiet)

    def check_finite(self, tensor: torch.Tensor, step: int, what: str = "synthetic images") -> None:
        """Fail loudly, naming method and step, as soon as the optimisation diverges."""
        if not torch.isfinite(tensor).all():
            raise FloatingPointError(
                f"{self.method}: {what} became NaN/inf at step {step} "
                f"(ipc={self.ipc}, seed={self.seed}); lower the learning rate."
            )


def initial_synthetic(
    real_images: torch.Tensor,
    class_indices: list[torch.Tensor],
    ipc: int,
    init: str,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` images per class: random real images (``init="real"``) or N(0, 1) noise."""
    num_classes = len(class_indices)
    labels = torch.arange(num_classes).repeat_interleave(ipc)
    if init == "noise":
        images = torch.randn((num_classes * ipc, *real_images.shape[1:]), generator=generator)
        return images.to(real_images.device), labels.to(real_images.device)
    picks = []
    for c, idx in enumerate(class_indices):
        if idx.numel() < ipc:
            raise ValueError(
                f"class {c} has only {idx.numel()} real images, fewer than ipc={ipc}; "
                "lower ipc or use more training data."
            )
        order = torch.randperm(idx.numel(), generator=generator)[:ipc].to(idx.device)
        picks.append(idx[order])
    return real_images[torch.cat(picks)].clone(), labels.to(real_images.device)


def _validate(method: str, ipc: Any, init: str, config: Any, seed: Any) -> Condenser:
    condenser = CONDENSERS.get(method)
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ValueError(f"ipc must be an integer >= 1, got {ipc!r}.")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    if condenser.config_cls is not None and config is not None and not isinstance(config, condenser.config_cls):
        raise ValueError(
            f"{method} takes a {condenser.config_cls.__name__}, got {type(config).__name__}."
        )
    return condenser


def condense(
    method: str,
    real: Any,
    ipc: int,
    *,
    config: Any = None,
    init: str | None = None,
    seed: int = 0,
    net_cfg: NetConfig = NetConfig(),
    aug_cfg: AugConfig = AugConfig(),
    device: str | torch.device = "auto",
    quiet: bool | None = None,
    cache: bool = True,
) -> SyntheticSet:
    """Distil ``real`` (an :class:`ddrepro.data.ImageData`) into ``ipc`` images per class.

    ``config`` defaults to the method's paper configuration; ``init`` to the
    method's usual initialisation (real images). The result is cached under a
    key of every argument that changes it plus the ddrepro source.
    """
    condenser = _validate(method, ipc, init or "real", config, seed)
    init = init or condenser.default_init
    if condenser.config_cls is not None and config is None:
        config = (condenser.default_config if condenser.default_config is not None
                  else condenser.config_cls())
    dev = resolve_device(device)
    quiet = is_quiet(quiet)
    parts = {
        "method": method, "config": config, "ipc": ipc, "init": init, "seed": seed,
        "net": net_cfg, "aug": aug_cfg, "data": real.digest(), "dataset": real.name,
    }

    def compute() -> dict[str, Any]:
        generator = make_generator(seed)
        real_images = real.images.to(dev)
        real_labels = real.labels.to(dev)
        class_indices = [torch.nonzero(real_labels == c).flatten() for c in range(real.num_classes)]
        syn_images, syn_labels = initial_synthetic(real_images, class_indices, ipc, init, generator)
        ctx = Context(
            method=method, real_images=real_images, real_labels=real_labels,
            class_indices=class_indices, num_classes=real.num_classes, ipc=ipc, config=config,
            net_cfg=net_cfg, aug_cfg=aug_cfg, flip=real.flip_ok, device=dev,
            generator=generator, seed=seed, quiet=quiet,
            real_weights=None if real.weights is None else real.weights.to(dev),
        )
        start = time.perf_counter()
        images, labels = condenser.run(ctx, syn_images, syn_labels)
        seconds = time.perf_counter() - start
        ctx.check_finite(images, step=-1)
        meta = {
            "method": method, "dataset": real.name, "ipc": ipc, "init": init, "seed": seed,
            "config": to_dict(config) if config is not None else None,
            "net": to_dict(net_cfg), "aug": to_dict(aug_cfg), "seconds": seconds,
            "device": str(dev),
        }
        return SyntheticSet(images.detach().cpu(), labels.detach().cpu(), real.mean, real.std,
                            meta).to_dict()

    return SyntheticSet.from_dict(cached("synthetic", parts, compute, enabled=cache))


__all__ = ["CONDENSERS", "Condenser", "Context", "condense", "initial_synthetic", "register"]
