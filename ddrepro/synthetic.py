"""The synthetic set: the one object every condenser returns and every evaluator takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .artifacts import load_torch, save_torch
from .pixels import to_pixels


@dataclass
class SyntheticSet:
    """A condensed data set.

    ``images``: float32 ``(n, C, H, W)`` in the *normalised* space of the real data.
    ``labels``: int64 ``(n,)`` hard labels, or float ``(n, num_classes)`` soft labels.
    ``mean``/``std``: the per-channel normalisation, so images can be shown or re-used.
    ``meta``: the resolved config, method, dataset, ipc, seed, timings, and
    ``init_indices`` (the real images a real initialisation copied).
    ``history``: per-step records of the condensation when asked for
    (:class:`ddrepro.condense.tracking.History`), else empty.
    """

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    history: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"SyntheticSet.images must be (n, C, H, W), got {tuple(self.images.shape)}.")
        if self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"SyntheticSet has {self.images.shape[0]} images but {self.labels.shape[0]} labels."
            )
        if self.labels.ndim == 1 and self.labels.dtype != torch.int64:
            raise ValueError(f"hard labels must be int64, got {self.labels.dtype}.")
        if self.labels.ndim == 2 and not self.labels.is_floating_point():
            raise ValueError("soft labels must be a float (n, num_classes) tensor.")

    @property
    def soft(self) -> bool:
        return self.labels.ndim == 2

    def __len__(self) -> int:
        return self.images.shape[0]

    def hard_labels(self) -> torch.Tensor:
        return self.labels.argmax(1) if self.soft else self.labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images.detach().cpu(),
            "labels": self.labels.detach().cpu(),
            "mean": tuple(self.mean),
            "std": tuple(self.std),
            "meta": dict(self.meta),
            "history": dict(self.history),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SyntheticSet":
        return cls(d["images"], d["labels"], tuple(d["mean"]), tuple(d["std"]),
                   dict(d.get("meta", {})), dict(d.get("history", {})))

    def save(self, path: str | Path) -> None:
        """Atomic ``.pt`` dict ``{images, labels, mean, std, meta}`` any tool can load."""
        save_torch(self.to_dict(), Path(path))

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticSet":
        return cls.from_dict(load_torch(Path(path)))

    def denormalised(self) -> torch.Tensor:
        """Images mapped back to [0, 1] pixel space, for display."""
        return to_pixels(self.images.detach().cpu(), self.mean, self.std, clamp=True)


__all__ = ["SyntheticSet"]
