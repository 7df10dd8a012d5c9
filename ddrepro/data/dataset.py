"""``ImageData``: a labelled image tensor pair with the facts needed to use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..artifacts import tensor_digest


@dataclass
class ImageData:
    """Images ``(N, C, H, W)`` float32, normalised per channel, and int64 labels.

    Unpacks like a pair: ``images, labels = load("mnist", "train")``.
    ``flip_ok`` says whether a horizontal flip keeps the class (not for digits),
    which DSA needs to know.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    flip_ok: bool = True
    # Optional per-sample weights (N,), e.g. inverse feature density for debiasing;
    # distribution-matching condensers use them in their real class means.
    weights: torch.Tensor | None = None
    _digest: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}.")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}."
            )
        if self.labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64, got {self.labels.dtype}.")
        if self.weights is not None and (self.weights.shape != self.labels.shape
                                         or not bool((self.weights >= 0).all())):
            raise ValueError("weights must be a non-negative (N,) tensor, one per image.")

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.images, self.labels))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def digest(self) -> str:
        """sha256 of images and labels: the data's identity in artifact keys."""
        if self._digest is None:
            self._digest = tensor_digest(self.images) + tensor_digest(self.labels)[:16]
            if self.weights is not None:
                self._digest += tensor_digest(self.weights)[:16]
        return self._digest

    def indices_by_class(self) -> list[torch.Tensor]:
        return [torch.nonzero(self.labels == c).flatten() for c in range(self.num_classes)]

    def _take(self, index: torch.Tensor) -> "ImageData":
        return ImageData(self.images[index], self.labels[index], self.name, self.split,
                         self.mean, self.std, self.classes, self.flip_ok,
                         None if self.weights is None else self.weights[index])

    def subset_per_class(self, n: int | None, seed: int = 0) -> "ImageData":
        """``n`` random images of every class (all of a class with fewer); None keeps everything."""
        if n is None:
            return self
        if n < 1:
            raise ValueError(f"per-class subset size must be >= 1, got {n}.")
        gen = torch.Generator().manual_seed(seed)
        picks = [idx[torch.randperm(idx.numel(), generator=gen)[:n]] for idx in self.indices_by_class()]
        return self._take(torch.cat(picks))

    def subset(self, n: int | None, seed: int = 0) -> "ImageData":
        """``n`` random images (class proportions kept in expectation); None keeps everything."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"subset size must be >= 1, got {n}.")
        gen = torch.Generator().manual_seed(seed)
        return self._take(torch.randperm(len(self), generator=gen)[:n])


__all__ = ["ImageData"]
