"""Derived data sets: seeded, cached, row-by-row rebuilds of a parent ``ImageData``.

The trustworthiness chapters train on *modified* real data: canaries with
flipped labels inserted into a member set (Dong et al. 2022, privacy
chapter), clean-label poisons that are training images plus a small pixel
perturbation (poisoning chapter), ZCA-whitened inputs for KIP. Each is a
*builder* registered by name::

    @register_derived("mislabel", MislabelConfig)
    def build(parent, cfg, generator) -> BuiltRows: ...

and one entry point runs any of them::

    noisy = derive("mislabel", train, MislabelConfig(fraction=0.1), seed=3)

Contract. A derived set maps rows 1:1 to its parent (same order, same
count). It keeps the parent's ``source_index`` (so rows still point at the
original images they were made from), ``weights`` and ``attrs``, adds the
builder's attrs (replacing parent attrs of the same name), and is a new
*root* whose identity is its artifact key: later ``take``s hash only row
positions, never the pixels. The result lives on the CPU, like loaded data.

Caching. The rebuilt rows are an artifact keyed by the builder's name,
config, seed, the parent's digest, the identity of every input (tensor
digests, ``ImageData`` digests) and the builder's code; a rerun with the
same arguments loads them instead of calling the builder.

Validation. Configs check their fields at construction; a builder's optional
``check(parent, cfg, **inputs)`` checks what depends on the parent (row
counts, shapes) before the cache is consulted; input names are checked
against the builder's signature. All raise ``ValueError`` before any compute.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from ..artifacts import artifact_key, cached, tensor_digest
from ..config import _check
from ..pixels import from_pixels, quantise, to_pixels
from ..registry import Registry
from ..runtime import make_generator
from .dataset import ImageData

# Names that derive() itself takes, so a builder input cannot use them.
_RESERVED = ("name", "parent", "config", "seed", "cache")


@dataclass(frozen=True)
class BuiltRows:
    """What a builder returns: new images/labels for the parent's rows, in order, and new attrs.

    ``images`` ``(N, C, H, W)`` in the parent's normalised space, ``labels``
    ``(N,)`` int64, ``attrs`` name -> ``(N, ...)`` tensor; ``N = len(parent)``.
    Only what changed is stored: hand back the parent's own ``images`` or
    ``labels`` tensor when it is unchanged, and give ``rows`` (int64) when only
    those rows' images change; ``images`` then holds just their new images
    ``(len(rows), C, H, W)``. (A relabelled or 100-poison MNIST would otherwise
    store 188 MB of images it shares with its parent.)
    """

    images: Tensor
    labels: Tensor
    attrs: dict[str, Tensor] = field(default_factory=dict)
    rows: Tensor | None = None


Build = Callable[..., BuiltRows]


@dataclass(frozen=True)
class DerivedBuilder:
    """A registered builder: its config class, its function and its parent-dependent checks."""

    name: str
    config_cls: type
    build: Build
    check: Callable[..., None] | None = None

    def input_names(self) -> tuple[list[str], list[str]]:
        """(all input names, required ones): the build function's parameters after the first three."""
        params = list(inspect.signature(self.build).parameters.values())[3:]
        names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        required = [p.name for p in params if p.name in names and p.default is p.empty]
        return names, required


DERIVED: Registry[DerivedBuilder] = Registry("derived data set")


def register_derived(name: str, config_cls: type, *, check: Callable[..., None] | None = None,
                     replace: bool = False) -> Callable[[Build], Build]:
    """Decorator: ``@register_derived("name", Config)`` above ``def build(parent, cfg, generator, **inputs)``.

    ``check(parent, cfg, **inputs)`` (optional) raises ``ValueError`` for
    arguments that are wrong for this parent; ``replace=True`` registers a new
    version under an existing name (a re-run notebook cell).
    """
    def add(build: Build) -> Build:
        builder = DerivedBuilder(name, config_cls, build, check)
        clashes = sorted(set(builder.input_names()[0]) & set(_RESERVED))
        if clashes:
            raise ValueError(f"builder {name!r}: input(s) {', '.join(clashes)} clash with "
                             f"derive()'s own arguments ({', '.join(_RESERVED)}); rename them.")
        DERIVED.register(name, replace=replace)(builder)
        return build

    return add


def _input_identity(name: str, value: Any) -> Any:
    """What an input contributes to the cache key: a digest for data, the value for plain scalars."""
    if isinstance(value, Tensor):
        return {"tensor": tensor_digest(value)}
    if isinstance(value, ImageData):
        return {"data": value.digest()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"input {name!r} must be a tensor, an ImageData, a number, a string or None; "
                     f"got {type(value).__name__}.")


def _check_inputs(builder: DerivedBuilder, inputs: dict[str, Any]) -> None:
    names, required = builder.input_names()
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise ValueError(f"derived data set {builder.name!r} takes no input {', '.join(unknown)}; "
                         f"valid: {', '.join(names) or 'none'}.")
    missing = [n for n in required if n not in inputs]
    if missing:
        raise ValueError(f"derived data set {builder.name!r} needs the input(s) {', '.join(missing)}.")


def _check_built(name: str, built: BuiltRows, parent: ImageData) -> None:
    if not isinstance(built, BuiltRows):
        raise ValueError(f"builder {name!r} must return BuiltRows, got {type(built).__name__}.")
    n = len(parent) if built.rows is None else built.rows.numel()
    if built.images.ndim != 4 or built.images.shape[0] != n or built.labels.shape != (len(parent),):
        raise ValueError(f"builder {name!r} returned images {tuple(built.images.shape)} and labels "
                         f"{tuple(built.labels.shape)}; it must keep the parent's {len(parent)} "
                         f"rows ({n} images{'' if built.rows is None else ', one per entry of rows'}).")
    if built.rows is not None and (built.rows.dtype != torch.int64 or built.rows.ndim != 1
                                   or tuple(built.images.shape[1:]) != parent.shape):
        raise ValueError(f"builder {name!r}: rows must be 1-D int64 and the images of parent shape "
                         f"{parent.shape}.")


def _stored(built: BuiltRows, parent: ImageData) -> dict[str, Any]:
    """The artifact: plain tensors, with None for what is the parent's, unchanged."""
    def plain(new: Tensor, old: Tensor) -> Tensor | None:
        return None if new is old else new.detach().cpu()

    return {"images": plain(built.images, parent.images), "labels": plain(built.labels, parent.labels),
            "rows": None if built.rows is None else built.rows.cpu(),
            "attrs": {k: v.detach().cpu() for k, v in built.attrs.items()}}


def _rebuilt(stored: dict[str, Any], parent: ImageData) -> tuple[Tensor, Tensor]:
    """Images and labels of the derived set from the artifact and the parent."""
    images = parent.images.cpu()
    if stored["images"] is not None and stored["rows"] is None:
        images = stored["images"]
    elif stored["images"] is not None:
        images = images.clone()
        images[stored["rows"]] = stored["images"]
    labels = parent.labels.cpu() if stored["labels"] is None else stored["labels"]
    return images, labels


def derive(name: str, parent: ImageData, config: Any = None, *, seed: int = 0,
           cache: bool = True, **inputs: Any) -> ImageData:
    """The derived data set ``name`` of ``parent`` (see the module docstring for the contract).

    ``config`` defaults to the builder's config class with its defaults;
    ``seed`` seeds the builder's ``torch.Generator``; ``inputs`` are passed to
    the builder by name and enter the cache key by identity.
    """
    builder = DERIVED.get(name)
    if not isinstance(parent, ImageData):
        raise ValueError(f"derive needs an ImageData parent, got {type(parent).__name__}.")
    config = builder.config_cls() if config is None else config
    if not isinstance(config, builder.config_cls):
        raise ValueError(f"derived data set {name!r} takes a {builder.config_cls.__name__}, "
                         f"got {type(config).__name__}.")
    generator = make_generator(seed)  # also rejects a non-int seed
    _check_inputs(builder, inputs)
    if builder.check is not None:
        builder.check(parent, config, **inputs)
    parts = {"builder": name, "config": config, "seed": seed, "parent": parent.digest(),
             "inputs": {k: _input_identity(k, v) for k, v in inputs.items()}}
    code = (builder.build, __name__)  # the builder, and how derive() seeds and stores it

    def compute() -> dict[str, Any]:
        built = builder.build(parent, config, generator, **inputs)
        _check_built(name, built, parent)
        return _stored(built, parent)

    stored = cached("derived", parts, compute, code=code, enabled=cache)
    images, labels = _rebuilt(stored, parent)
    return ImageData(
        images, labels, f"{parent.name}+{name}", parent.split, parent.mean,
        parent.std, parent.classes, parent.flip_ok, weights=parent.weights,
        source_index=parent.source_index, attrs={**parent.attrs, **stored["attrs"]},
        content_id=artifact_key("derived", parts, code=code), root_id=None, root_rows=None,
    )


# -- mislabel: canaries with flipped labels (privacy chapter) -------------------

@dataclass(frozen=True)
class MislabelConfig:
    """Relabel ``count`` rows, or ``fraction`` of the rows (rounded to the nearest, halves up).

    Exactly one of the two is given; ``fraction`` in (0, 1), ``count`` in [1, N].
    """

    fraction: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        _check((self.fraction is None) != (self.count is None), self, "fraction/count",
               (self.fraction, self.count), "exactly one of the two given")
        if self.fraction is not None:
            _check(0.0 < self.fraction < 1.0, self, "fraction", self.fraction, "in (0, 1)")
        if self.count is not None:
            _check(not isinstance(self.count, bool) and isinstance(self.count, int)
                   and self.count >= 1, self, "count", self.count, "an integer >= 1")

    def rows(self, n: int) -> int:
        """How many of ``n`` rows are relabelled."""
        return self.count if self.count is not None else math.floor(self.fraction * n + 0.5)


def _check_mislabel(parent: ImageData, cfg: MislabelConfig) -> None:
    n, k = len(parent), cfg.rows(len(parent))
    if not 1 <= k <= n:
        raise ValueError(f"MislabelConfig selects {k} of {n} rows; it must be in [1, {n}] "
                         "(a larger fraction, or a smaller count).")
    if parent.num_classes < 2:
        raise ValueError("mislabelling needs at least 2 classes to draw a different one from.")


@register_derived("mislabel", MislabelConfig, check=_check_mislabel)
def mislabel(parent: ImageData, cfg: MislabelConfig, generator: torch.Generator) -> BuiltRows:
    """A seeded choice of rows gets a uniformly drawn *different* class.

    Adding an offset drawn from {1, ..., C-1} modulo C gives each wrong class
    probability 1/(C-1) and never the original. Attrs: ``mislabelled`` (bool)
    and ``original_label`` (int64, the parent's label of every row).
    """
    n, num_classes = len(parent), parent.num_classes
    rows = torch.randperm(n, generator=generator)[:cfg.rows(n)]
    offsets = torch.randint(1, num_classes, (rows.numel(),), generator=generator)
    labels = parent.labels.cpu().clone()
    labels[rows] = (labels[rows] + offsets) % num_classes
    flagged = torch.zeros(n, dtype=torch.bool)
    flagged[rows] = True
    return BuiltRows(parent.images, labels,
                     {"mislabelled": flagged, "original_label": parent.labels.cpu().clone()})


# -- perturb: clean-label poisons (poisoning chapter) ---------------------------

@dataclass(frozen=True)
class PerturbConfig:
    """An L-infinity budget ``eps`` in *pixel* units (8/255 in the poisoning papers), in (0, 1].

    ``quantise``: round the perturbed pixels to 1/255, as storing an 8-bit image does.
    """

    eps: float
    quantise: bool = True

    def __post_init__(self) -> None:
        _check(0.0 < self.eps <= 1.0, self, "eps", self.eps, "in (0, 1] (pixel units, e.g. 8/255)")


def _check_perturb(parent: ImageData, cfg: PerturbConfig, index: Tensor, delta: Tensor) -> None:
    n = len(parent)
    if not isinstance(index, Tensor) or index.dtype != torch.int64 or index.ndim != 1:
        what = f"{index.dtype} {tuple(index.shape)}" if isinstance(index, Tensor) else type(index).__name__
        raise ValueError(f"perturb: index must be a 1-D int64 tensor of rows, got {what}.")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"perturb: index out of range for {n} rows "
                         f"([{int(index.min())}, {int(index.max())}]); give rows in [0, {n - 1}].")
    if torch.unique(index).numel() != index.numel():
        raise ValueError("perturb: index has duplicate rows; give each row once.")
    expected = (index.numel(), *parent.shape)
    if not isinstance(delta, Tensor) or tuple(delta.shape) != expected or not delta.is_floating_point():
        what = f"{delta.dtype} {tuple(delta.shape)}" if isinstance(delta, Tensor) else type(delta).__name__
        raise ValueError(f"perturb: delta must be a float tensor of shape {expected} "
                         f"(one pixel-space perturbation per index row), got {what}.")


@register_derived("perturb", PerturbConfig, check=_check_perturb)
def perturb(parent: ImageData, cfg: PerturbConfig, generator: torch.Generator, *,
            index: Tensor, delta: Tensor) -> BuiltRows:
    """Rows ``index`` become ``clip(p + clip(delta, -eps, eps), 0, 1)`` in pixel space ``p``.

    Quantised to 1/255 when ``cfg.quantise``; every other row is untouched
    (bit-identical). For clean pixels on the 1/255 grid (8-bit data) the
    result stays within ``eps`` of them, up to float rounding; for clean
    pixels off the grid quantisation can add up to 0.5/255. Attr: ``poisoned``.
    Deterministic: ``generator`` is not used.
    """
    index = index.cpu()
    clean = to_pixels(parent.images.detach().cpu()[index], parent.mean, parent.std)
    step = delta.detach().to(clean).clamp(-cfg.eps, cfg.eps)
    pixels = (clean + step).clamp(0.0, 1.0)
    if cfg.quantise:
        pixels = quantise(pixels)
    poisoned = torch.zeros(len(parent), dtype=torch.bool)
    poisoned[index] = True
    return BuiltRows(from_pixels(pixels, parent.mean, parent.std), parent.labels,
                     {"poisoned": poisoned}, rows=index)


__all__ = [
    "BuiltRows", "DERIVED", "DerivedBuilder", "MislabelConfig", "PerturbConfig", "derive",
    "register_derived",
]
