"""``ImageData``: a labelled image tensor pair with the facts needed to use it, and its provenance.

Provenance. Every row knows where it came from: ``source_index[i]`` is row
``i``'s index in the *root* set (the set as loaded or built), and it survives
every :meth:`ImageData.take`, subset of a subset included, so membership
masks over the root set are exact. Per-sample ``attrs`` (colour, bias-aligned
flag, poisoned flag, ...) and ``weights`` travel with their rows the same way.

Identity. :meth:`ImageData.digest` is what artifact keys hash. A root set is
identified by its pixels and labels (or by an identity its builder supplies,
e.g. the raw files' checksums, so a 60,000-image set is not re-hashed); a
subset by its *lineage*, the root's identity plus the positions of its rows
in the root (``root_rows``), which costs one small hash instead of a pass over
the pixels. ``source_index`` is provenance only: a derived set (coloured or
poisoned copies of MNIST) is a new root whose rows still point at the
MNIST images they were made from.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Iterator

import torch

from ..artifacts import tensor_digest


def _check_rows(name: str, tensor: torch.Tensor, n: int) -> None:
    if not isinstance(tensor, torch.Tensor) or tensor.dim() < 1 or tensor.shape[0] != n:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must be a tensor with one row per image ({n}), got {shape}.")


@dataclass
class ImageData:
    """Images ``(N, C, H, W)`` float32, normalised per channel, and int64 labels.

    Unpacks like a pair: ``images, labels = load("mnist", "train")``.
    ``flip_ok`` says whether a horizontal flip keeps the class (not for digits),
    which DSA needs to know. ``weights`` ``(N,)`` are optional per-sample
    weights (e.g. inverse feature density for debiasing) that condensers
    matching real data honour; ``attrs`` maps names to per-sample tensors
    ``(N, ...)``; ``source_index`` ``(N,)`` int64 indexes the root set
    (``arange(N)`` for a root).
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    flip_ok: bool = True
    weights: torch.Tensor | None = None
    source_index: torch.Tensor | None = None
    attrs: dict[str, torch.Tensor] = field(default_factory=dict)
    # Identity of the root set's images and labels when its builder knows it
    # cheaply (raw-file checksums, a derived set's cache key); else the pixels are hashed.
    content_id: str | None = field(default=None, repr=False)
    # Identity of the root set this one was taken from (None: this set is a root),
    # and the positions of this set's rows in that root.
    root_id: str | None = field(default=None, repr=False)
    root_rows: torch.Tensor | None = field(default=None, repr=False)
    _digest: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}.")
        n = self.images.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(f"{n} images but labels of shape {tuple(self.labels.shape)}.")
        if self.labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64, got {self.labels.dtype}.")
        if self.weights is not None:
            if self.weights.shape != (n,) or not bool((self.weights >= 0).all()):
                raise ValueError("weights must be a non-negative (N,) tensor, one per image.")
        if self.source_index is None:
            self.source_index = torch.arange(n)
        elif self.source_index.shape != (n,) or self.source_index.dtype != torch.int64:
            raise ValueError(f"source_index must be an int64 ({n},) tensor, got "
                             f"{self.source_index.dtype} {tuple(self.source_index.shape)}.")
        if not isinstance(self.attrs, dict):
            raise ValueError(f"attrs must be a dict of per-sample tensors, got {type(self.attrs).__name__}.")
        for key, value in self.attrs.items():
            _check_rows(f"attrs[{key!r}]", value, n)

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

    # -- identity ---------------------------------------------------------------

    def root_digest(self) -> str:
        """Identity of the root set's images and labels (this set's own when it is a root)."""
        if self.root_id is not None:
            return self.root_id
        if self.content_id is None:
            self.content_id = tensor_digest(self.images) + tensor_digest(self.labels)[:16]
        return self.content_id

    def digest(self) -> str:
        """The data's identity in artifact keys: lineage (or content), weights and attrs."""
        if self._digest is None:
            h = hashlib.sha256(self.root_digest().encode())
            if self.root_id is not None:  # a subset: which rows of the root, in which order
                h.update(b"rows" + tensor_digest(self.root_rows).encode())
            if self.weights is not None:
                h.update(b"weights" + tensor_digest(self.weights).encode())
            for key in sorted(self.attrs):
                h.update(f"attr:{key}".encode() + tensor_digest(self.attrs[key]).encode())
            self._digest = h.hexdigest()
        return self._digest

    # -- rows -------------------------------------------------------------------

    def take(self, index: torch.Tensor) -> "ImageData":
        """Rows ``index`` (int64 indices or a bool mask over the rows), provenance kept.

        The result's ``source_index`` still indexes the root set, so
        ``data.take(a).take(b).source_index == data.source_index[a][b]``.
        """
        if not isinstance(index, torch.Tensor) or index.dim() != 1 \
                or index.dtype not in (torch.int64, torch.bool):
            what = (f"{index.dtype} {tuple(index.shape)}" if isinstance(index, torch.Tensor)
                    else type(index).__name__)
            raise ValueError(f"take needs a 1-D int64 index or bool mask tensor, got {what}.")
        if index.dtype == torch.bool:
            if index.shape[0] != len(self):
                raise ValueError(f"bool mask has {index.shape[0]} entries for {len(self)} rows.")
            index = torch.nonzero(index).flatten()
        elif index.numel() and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise ValueError(f"take: index out of range for {len(self)} rows "
                             f"([{int(index.min())}, {int(index.max())}]).")
        index = index.cpu()
        rows = torch.arange(len(self)) if self.root_rows is None else self.root_rows
        return dataclasses.replace(
            self, images=self.images[index], labels=self.labels[index],
            weights=None if self.weights is None else self.weights[index],
            source_index=self.source_index[index],
            attrs={key: value[index] for key, value in self.attrs.items()},
            root_id=self.root_digest(), root_rows=rows[index], _digest=None,
        )

    def without(self, other: "ImageData") -> "ImageData":
        """The rows whose source images are not among ``other``'s (e.g. what a held-out
        validation split leaves for training); both must come from the same root."""
        if other.root_digest() != self.root_digest():
            raise ValueError("without: the two sets come from different root sets; "
                             "hold out rows of the same loaded data set.")
        return self.take(~torch.isin(self.source_index, other.source_index))

    def with_weights(self, weights: torch.Tensor | None) -> "ImageData":
        """The same rows with per-sample ``weights`` (None removes them)."""
        return dataclasses.replace(self, weights=weights, _digest=None)

    def with_attrs(self, **attrs: torch.Tensor) -> "ImageData":
        """The same rows with ``attrs`` added (or replaced) by name."""
        return dataclasses.replace(self, attrs={**self.attrs, **attrs}, _digest=None)

    def indices_by_class(self) -> list[torch.Tensor]:
        return [torch.nonzero(self.labels == c).flatten() for c in range(self.num_classes)]

    def subset_per_class(self, n: int | None, seed: int = 0) -> "ImageData":
        """``n`` random images of every class (all of a class with fewer); None keeps everything."""
        if n is None:
            return self
        if n < 1:
            raise ValueError(f"per-class subset size must be >= 1, got {n}.")
        gen = torch.Generator().manual_seed(seed)
        picks = [idx[torch.randperm(idx.numel(), generator=gen)[:n]] for idx in self.indices_by_class()]
        return self.take(torch.cat(picks))

    def subset(self, n: int | None, seed: int = 0) -> "ImageData":
        """``n`` random images (class proportions kept in expectation); None keeps everything."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise ValueError(f"subset size must be >= 1, got {n}.")
        gen = torch.Generator().manual_seed(seed)
        return self.take(torch.randperm(len(self), generator=gen)[:n])


__all__ = ["ImageData"]
