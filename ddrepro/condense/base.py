"""The one condenser interface: validation, initialisation, caching, progress, records, resume.

Every method is a function ``run(ctx, syn_images, syn_labels) -> (images, labels)``
registered with :func:`register`; :func:`condense` wraps it with input checks,
the artifact cache, timing and the resolved config stored in ``meta``. A
method's loop iterates over ``ctx.steps(total, state=[...], optimizer=...)``
and calls ``ctx.log(loss)``: that gives it a progress bar, per-step records
and snapshots (``record_every``/``snapshot_every``), and periodic saves from
which a killed run resumes (:mod:`ddrepro.condense.tracking`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from ..artifacts import ArtifactStore, artifact_key, cached
from ..config import AugConfig, NetConfig, to_dict
from ..registry import Registry
from ..runtime import make_generator, progress, resolve_device, is_quiet
from ..synthetic import SyntheticSet
from .tracking import History, Resume

INITS = ("real", "noise")


@dataclass(frozen=True)
class Condenser:
    """A registered method: its config class (None: no hyperparameters) and its loop.

    ``default_init``: the initialisation the method's authors use ("noise"
    for DC, whose code defaults to it; "real" otherwise), pinned by
    ``tests/condense/test_base.py``.
    ``default_config`` (None: ``config_cls()``) lets two methods share a config
    class with different defaults (``"dsa"`` is ``GMConfig(dsa=True)``).
    ``weights``: whether the method honours per-sample weights of the real data
    (a method that cannot refuses a weighted set instead of ignoring it).
    """

    name: str
    config_cls: type | None
    run: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    default_init: str = "real"
    default_config: Any = None
    weights: bool = True


CONDENSERS: Registry[Condenser] = Registry("condenser")


def register(name: str, config_cls: type | None, *, default_init: str = "real",
             default_config: Any = None, weights: bool = True, replace: bool = False):
    """Decorator: ``@register("dm", DMConfig)`` above ``def run(ctx, syn_images, syn_labels)``.

    ``weights=False`` for a method that cannot honour per-sample weights;
    ``replace=True`` lets a re-run notebook cell register a new version of a method.
    """

    def add(run: Callable[..., tuple[torch.Tensor, torch.Tensor]]):
        CONDENSERS.register(name, replace=replace)(
            Condenser(name, config_cls, run, default_init, default_config, weights))
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
    history: History | None = None            # per-step records (None: nothing recorded)
    resume: Resume | None = None              # periodic state saves (None: not resumable)
    meta: dict[str, Any] = field(default_factory=dict)  # what a method adds to the set's meta
    source_index: torch.Tensor | None = None  # (N,) real rows' indices in their root set (CPU)
    _losses: list[torch.Tensor] = field(default_factory=list)

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

    def steps(self, total: int, desc: str | None = None, *, state: Sequence[torch.Tensor] = (),
              optimizer: Any = None) -> Iterator[int]:
        """The step range every loop iterates over, with a progress bar.

        ``state``: the tensors the loop learns (the synthetic images first;
        learned labels next), ``optimizer`` their optimiser. With them the
        run records its history and saves its state as configured, and a
        killed run continues from its last saved step.
        """
        start = 0
        if state and self.resume is not None and self.history is not None:
            start = self.resume.restore(state, optimizer, self.generator, self.history)
        if state and self.history is not None and start == 0:
            self.history.observe(0, state[0], [], last=False)
        bar = progress(range(start, total), desc=desc or f"{self.method} ipc={self.ipc}",
                       total=total, initial=start, quiet=self.quiet)
        for step in bar:
            self._losses = []
            yield step
            if not state or self.history is None:
                continue
            self.history.observe(step + 1, state[0], self._losses, last=step + 1 == total)
            if self.resume is not None and self.resume.due(step + 1, total):
                self.resume.save(step + 1, state, optimizer, self.generator, self.history)

    def log(self, loss: torch.Tensor) -> None:
        """The matching loss of the current step (averaged when logged several times).

        Kept as a tensor: it is read (a device sync) only when a record is due.
        """
        self._losses.append(loss.detach())

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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``ipc`` images per class: random real images (``init="real"``) or N(0, 1) noise.

    Returns the images, their class-major labels and the rows of
    ``real_images`` they were copied from (None for noise).
    """
    num_classes = len(class_indices)
    labels = torch.arange(num_classes).repeat_interleave(ipc)
    if init == "noise":
        images = torch.randn((num_classes * ipc, *real_images.shape[1:]), generator=generator)
        return images.to(real_images.device), labels.to(real_images.device), None
    picks = []
    for c, idx in enumerate(class_indices):
        if idx.numel() < ipc:
            raise ValueError(
                f"class {c} has only {idx.numel()} real images, fewer than ipc={ipc}; "
                "lower ipc or use more training data."
            )
        order = torch.randperm(idx.numel(), generator=generator)[:ipc].to(idx.device)
        picks.append(idx[order])
    rows = torch.cat(picks)
    return real_images[rows].clone(), labels.to(real_images.device), rows


def _validate(method: str, ipc: Any, init: str, config: Any, seed: Any, real: Any,
              every: dict[str, Any]) -> Condenser:
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
    if getattr(real, "weights", None) is not None and not condenser.weights:
        raise ValueError(f"{method} cannot honour per-sample weights (ImageData.weights); "
                         "drop them with real.with_weights(None) or use a matching method.")
    for name, value in every.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}.")
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
    record_every: int | None = None,
    snapshot_every: int | None = None,
    checkpoint_every: int | None = None,
    device: str | torch.device = "auto",
    quiet: bool | None = None,
    cache: bool = True,
) -> SyntheticSet:
    """Distil ``real`` (an :class:`ddrepro.data.ImageData`) into ``ipc`` images per class.

    ``config`` defaults to the method's paper configuration; ``init`` to the
    initialisation its authors' code uses (``Condenser.default_init``: N(0, 1)
    noise for DC, random real images for every other method). ``record_every`` /
    ``snapshot_every`` keep per-step records / images in ``SyntheticSet.history``
    (:class:`~ddrepro.condense.tracking.History`). The result is cached under a
    key of every argument that changes it and of the method's code; while it
    runs, its state is saved every ``checkpoint_every`` steps (None: every two
    minutes), so a killed run resumes where it stopped.
    ``meta["init_indices"]`` names the real images a real initialisation copied,
    as indices into ``real``'s root set (``real.source_index``).
    """
    every = {"record_every": record_every, "snapshot_every": snapshot_every,
             "checkpoint_every": checkpoint_every}
    condenser = _validate(method, ipc, init or "real", config, seed, real, every)
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
    if record_every or snapshot_every:  # records change the artifact, not the images
        parts["record"] = (record_every, snapshot_every)
    code = (condenser.run, "ddrepro.condense.base")
    store = ArtifactStore()
    resume = Resume(store, artifact_key("synthetic", parts, code=code), every=checkpoint_every)

    def compute() -> dict[str, Any]:
        generator = make_generator(seed)
        real_images = real.images.to(dev)
        real_labels = real.labels.to(dev)
        class_indices = [torch.nonzero(real_labels == c).flatten() for c in range(real.num_classes)]
        syn_images, syn_labels, init_rows = initial_synthetic(real_images, class_indices, ipc, init,
                                                              generator)
        real_means = torch.stack([real_images[idx].mean(0) for idx in class_indices])
        history = History(record_every, snapshot_every, real_means,
                          torch.tensor(real.std, device=dev).view(-1, 1, 1), syn_images.clone())
        ctx = Context(
            method=method, real_images=real_images, real_labels=real_labels,
            class_indices=class_indices, num_classes=real.num_classes, ipc=ipc, config=config,
            net_cfg=net_cfg, aug_cfg=aug_cfg, flip=real.flip_ok, device=dev,
            generator=generator, seed=seed, quiet=quiet,
            real_weights=None if real.weights is None else real.weights.to(dev),
            history=history, resume=resume if cache else None, source_index=real.source_index,
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
            "init_indices": None if init_rows is None else real.source_index[init_rows.cpu()],
        } | ctx.meta
        return SyntheticSet(images.detach().cpu(), labels.detach().cpu(), real.mean, real.std,
                            meta, history.result() if history.active else {}).to_dict()

    result = SyntheticSet.from_dict(cached("synthetic", parts, compute, code=code, store=store,
                                           enabled=cache))
    if cache:
        resume.clear()  # the finished set is cached: its resume state is no longer needed
    return result


__all__ = ["CONDENSERS", "Condenser", "Context", "condense", "initial_synthetic", "register"]
