"""ConvNet-D: the architecture of DC (Zhao et al., ICLR 2021), DSA and DM.

``depth`` blocks of [3x3 conv (bias, padding 1) -> norm -> activation -> 2x2
pool], then a linear head on the flattened features. Defaults: depth 3,
width 128, instance norm, ReLU, average pooling. For 28x28 inputs the first
convolution pads 3 instead of 1, so the maps are 32 -> 16 -> 8 -> 4 and the
head sees 128 * 4 * 4 = 2048 features (the DC setting for MNIST); the model
then has 317,706 parameters (1x28x28, 10 classes), and 320,010 for 3x32x32.

Instance norm is ``nn.GroupNorm(C, C, affine=True)`` (one group per channel,
per-sample statistics, a learned scale and shift): it holds no running
statistics, so it works under ``torch.func.vmap`` for batched training.
``norm="batchnorm"`` keeps running statistics, which are updated in place and
so cannot be trained under vmap; ``ddrepro.evaluate`` trains such networks
one at a time. ``norm="none"`` drops normalisation.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..config import NetConfig
from .registry import NETS

NORMS = ("instancenorm", "batchnorm", "none")
ACTS = ("relu", "sigmoid", "leakyrelu")
POOLS = ("avgpool", "maxpool", "none")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(allowed)}.")


def make_norm(norm: str, channels: int) -> nn.Module:
    """Instance norm as GroupNorm(C, C), BatchNorm2d, or the identity."""
    _choice("norm", norm, NORMS)
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def make_act(act: str) -> nn.Module:
    _choice("act", act, ACTS)
    if act == "relu":
        return nn.ReLU(inplace=True)
    if act == "sigmoid":
        return nn.Sigmoid()
    return nn.LeakyReLU(negative_slope=0.01, inplace=True)


def first_padding(image_size: int) -> int:
    """3 for 28x28 inputs (maps become 32x32, as in DC for MNIST), else 1."""
    return 3 if image_size == 28 else 1


def feature_size(image_size: int, depth: int, pool: str) -> int:
    """Side of the last feature map: conv keeps the size (after the first pad), each pool halves it."""
    side = image_size + 2 * (first_padding(image_size) - 1)
    for _ in range(depth):
        if pool != "none":
            side //= 2
    return side


@NETS.register("convnet")
class ConvNet(nn.Module):
    """ConvNet-``depth`` with ``width`` channels; ``forward(x) = classifier(embed(x))``."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 128,
                 depth: int = 3, norm: str = "instancenorm", act: str = "relu",
                 pool: str = "avgpool") -> None:
        super().__init__()
        _choice("norm", norm, NORMS)
        _choice("act", act, ACTS)
        _choice("pool", pool, POOLS)
        for name, value in (("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ConvNet {name} must be an integer >= 1, got {value!r}.")
        side = feature_size(image_size, depth, pool)
        if side < 1:
            raise ValueError(
                f"ConvNet depth={depth} pools a {image_size}x{image_size} image to nothing; "
                f"use depth <= {self._max_depth(image_size)} or pool='none'."
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for d in range(depth):
            pad = first_padding(image_size) if d == 0 else 1
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=pad),
                       make_norm(norm, width), make_act(act)]
            if pool == "avgpool":
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
            elif pool == "maxpool":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * side * side
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    @staticmethod
    def _max_depth(image_size: int) -> int:
        side, depth = image_size + 2 * (first_padding(image_size) - 1), 0
        while side // 2 >= 1:
            side //= 2
            depth += 1
        return depth

    @staticmethod
    def config_kwargs(cfg: NetConfig) -> dict[str, Any]:
        return {"width": cfg.width, "depth": cfg.depth, "norm": cfg.norm}

    def embed(self, x: Tensor) -> Tensor:
        """Flattened features before the head, ``(n, feature_dim)`` (DM's embedding)."""
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


__all__ = ["ConvNet", "make_norm", "make_act", "NORMS", "ACTS", "POOLS", "feature_size"]
