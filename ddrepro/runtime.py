"""Small runtime helpers shared by every stage: device choice, seeded generators, progress."""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

import torch
from tqdm import tqdm  # plain bars: no ipywidgets needed in papermill kernels

T = TypeVar("T")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else the CPU; anything else is checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available here; use 'cpu' or 'auto'.")
    return dev


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """An explicit random stream; no code in ddrepro draws from the global RNG."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def is_quiet(quiet: bool | None = None) -> bool:
    """``quiet`` wins when given; otherwise ``DDREPRO_QUIET=1`` silences progress bars."""
    if quiet is not None:
        return bool(quiet)
    return os.environ.get("DDREPRO_QUIET", "") not in ("", "0", "false", "False")


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None,
             quiet: bool | None = None, **kwargs) -> Iterable[T]:
    """tqdm over ``iterable`` unless quiet."""
    return tqdm(iterable, desc=desc, total=total, disable=is_quiet(quiet), leave=False,
                dynamic_ncols=True, **kwargs)


__all__ = ["resolve_device", "make_generator", "is_quiet", "progress"]
