"""Untargeted DM poisoning at a small rate (ours; Zheng & Li, UAI 2023, Sec. 2.3).

The paper states, without an experiment, that untargeted attacks "could not
degrade the performance with a small poisoning rate like 1 %", and argues it
from the poisoned class mean moving little (Lemma 4.1: the deviation grows
with the rate eps). This module builds the simplest such attack on the
crafting loop of :func:`ddrepro.poisoning.poison.craft_dm_poisons`:

* ``rate`` of the training set is poisoned, spread over all classes: in every
  class ``c``, ``max(1, round(rate * n_c))`` images drawn at random;
* class ``c``'s poisons are perturbed (L-inf ``eps`` in pixels, signed Adam,
  the same projection and 1/255 quantisation as the targeted attack) so that
  their mean embedding in random ConvNets matches the mean embedding of
  ``anchors`` clean images of class ``c + 1 (mod C)``: Eq. 5 with the target's
  embedding replaced by another class's mean. This *pulls* class ``c``'s mean
  towards its neighbour's, the direction that confuses a DM victim most
  directly (pushing it "away" from its clean mean has no preferred direction
  and an unbounded loss).

The victim condenses the poisoned set; the attack works if its clean test
accuracy drops. The crafted perturbations are one cached artifact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..artifacts import cached
from ..config import AugConfig, NetConfig, _check
from ..data import ImageData, PerturbConfig, derive
from ..pixels import to_pixels
from ..runtime import make_generator, progress, resolve_device
from .poison import DMPoisonConfig, _Problem, class_rows, craft_dm_poisons


@dataclass(frozen=True)
class UntargetedPoisonConfig(DMPoisonConfig):
    """DM poisoning's fields (``loss`` must stay "mean"); ``rate`` is the share of *every* class
    poisoned; ``anchors`` clean images of the next class stand for its mean embedding."""

    anchors: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.loss == "mean", self, "loss", self.loss, '"mean" (the untargeted attack matches class means)')
        _check(not isinstance(self.anchors, bool) and isinstance(self.anchors, int) and self.anchors >= 1,
               self, "anchors", self.anchors, "an integer >= 1")


def untargeted_rows(real: ImageData, rate: float, seed: int) -> Tensor:
    """``max(1, round(rate * n_c))`` random rows of every class ``c`` (int64, sorted), drawn with ``seed``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate < 0.5:
        raise ValueError(f"poisoning rate {rate!r} must be in (0, 0.5).")
    generator, chosen = make_generator(seed), []
    for label in range(real.num_classes):
        rows = class_rows(real, label)
        if rows.numel() < 2:
            raise ValueError(f"class {label} has {rows.numel()} images; the untargeted attack needs >= 2 "
                             "per class (poisons and anchors of the previous class).")
        count = max(1, math.floor(rate * rows.numel() + 0.5))
        chosen.append(rows[torch.randperm(rows.numel(), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


@dataclass
class UntargetedResult:
    """The poisoned training set and how it was made."""

    data: ImageData          # the derived set; attr ``poisoned`` marks the poisons
    rows: Tensor             # the poisons' rows
    curves: Tensor           # (C, steps): each class's mean matching loss per step
    seconds: float


def untargeted_poison(real: ImageData, cfg: UntargetedPoisonConfig = UntargetedPoisonConfig(), *,
                      net_cfg: NetConfig = NetConfig(), aug_cfg: AugConfig = AugConfig(), seed: int = 0,
                      device: str | torch.device = "auto", quiet: bool | None = None,
                      cache: bool = True) -> UntargetedResult:
    """Untargeted DM poisoning of ``real`` (module docstring): one crafting run per class, cached."""
    rows = untargeted_rows(real, cfg.rate, seed)
    parts = {"attack": "untargeted", "config": cfg, "real": real.digest(), "net": net_cfg, "aug": aug_cfg,
             "flip": real.flip_ok, "seed": seed}
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        generator = make_generator(seed)
        deltas, curves = [], []
        classes = range(real.num_classes)
        for label in progress(classes, desc="untargeted poisoning (classes)", quiet=quiet):
            mine = rows[real.labels[rows].cpu() == label]
            others = class_rows(real, (label + 1) % real.num_classes, exclude=rows)
            anchors = others[torch.randperm(others.numel(), generator=generator)[:cfg.anchors]]
            problem = _Problem.of(real, mine, to_pixels(real.images[anchors], real.mean, real.std),
                                  net_cfg=net_cfg, aug_cfg=aug_cfg, dsa=cfg.dsa, device=dev)
            out = craft_dm_poisons(problem, cfg, generator, dev, quiet=True)
            deltas.append(out["delta"])
            curves.append(out["curve"])
        order = torch.cat([rows[real.labels[rows].cpu() == label] for label in classes])
        delta = torch.cat(deltas)[order.argsort()]       # back to the sorted order of ``rows``
        return {"delta": delta, "curves": torch.stack(curves), "seconds": time.perf_counter() - start}

    crafted = cached("poison", parts, compute, code=(craft_dm_poisons, "ddrepro.poisoning.untargeted"),
                     enabled=cache)
    data = derive("perturb", real, PerturbConfig(eps=cfg.eps), seed=seed, cache=cache, index=rows,
                  delta=crafted["delta"])
    return UntargetedResult(data, rows, crafted["curves"], crafted["seconds"])


__all__ = ["UntargetedPoisonConfig", "UntargetedResult", "untargeted_poison", "untargeted_rows"]
