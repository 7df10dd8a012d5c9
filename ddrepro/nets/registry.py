"""The network registry and the two ways to build a network: by name or from a ``NetConfig``.

Every builder takes ``(in_channels, num_classes, image_size, **kw)``. Weights
use PyTorch's default initialisation (the privacy paper's random extractors
draw N(0, 1), ``extractors.py``); the random draws come from the caller:
with ``seed=s`` the module is built inside ``torch.random.fork_rng`` after
``torch.manual_seed(s)``, so the same seed gives the same initial weights and
the global random state is left as it was. ``generator=g`` draws that seed
from ``g`` instead. With neither, the global RNG is used (avoid in ddrepro code).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator

import torch
from torch import nn

from ..config import NetConfig
from ..registry import Registry

NETS: Registry[type[nn.Module]] = Registry("network")

_POSITIONAL = ("in_channels", "num_classes", "image_size")


@contextlib.contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Run the body with the CPU RNG seeded to ``seed`` and restore the global state after.

    Modules are built on the CPU (then moved), so the same seed gives the same
    weights on every device.
    """
    if seed is None:
        yield
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or None, got {seed!r}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _check_shape_args(in_channels: Any, num_classes: Any, image_size: Any) -> None:
    for name, value in zip(_POSITIONAL, (in_channels, num_classes, image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")


def _check_kwargs(name: str, builder: type[nn.Module], kw: dict[str, Any]) -> None:
    params = inspect.signature(builder).parameters
    valid = [p for p in params if p not in _POSITIONAL]
    unknown = sorted(set(kw) - set(valid))
    if unknown:
        raise ValueError(
            f"network {name!r} takes no argument {', '.join(unknown)}; valid: {', '.join(valid)}."
        )


def get_net(name: str, in_channels: int, num_classes: int, image_size: int, *,
            seed: int | None = None, generator: torch.Generator | None = None,
            **kw: Any) -> nn.Module:
    """Build network ``name`` for ``(in_channels, image_size, image_size)`` inputs.

    ``seed`` (or a seed drawn from ``generator``) fixes the initial weights;
    unknown names or keyword arguments raise ``ValueError`` listing the valid ones.
    """
    builder = NETS.get(name)
    _check_shape_args(in_channels, num_classes, image_size)
    _check_kwargs(name, builder, kw)
    if seed is not None and generator is not None:
        raise ValueError("pass either seed= or generator= to get_net, not both.")
    if generator is not None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with seeded_init(seed):
        return builder(in_channels, num_classes, image_size, **kw)


def config_kwargs(cfg: NetConfig) -> dict[str, Any]:
    """The builder arguments a ``NetConfig`` stands for (each network reads what it has)."""
    builder = NETS.get(cfg.name)
    to_kwargs = getattr(builder, "config_kwargs", None)
    if to_kwargs is None:
        return {"width": cfg.width, "depth": cfg.depth, "norm": cfg.norm}
    return to_kwargs(cfg)


def build_net(cfg: NetConfig, in_channels: int, num_classes: int, image_size: int, *,
              seed: int | None = None, generator: torch.Generator | None = None) -> nn.Module:
    """``get_net`` with the name, width, depth and norm of ``cfg``."""
    return get_net(cfg.name, in_channels, num_classes, image_size, seed=seed,
                   generator=generator, **config_kwargs(cfg))


__all__ = ["NETS", "get_net", "build_net", "config_kwargs", "seeded_init"]
