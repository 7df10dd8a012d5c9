"""ResNet-18 (He et al. 2016) for small images, for cross-architecture checks.

The CIFAR variant DC evaluates on: a 3x3 stride-1 stem without max pooling,
BasicBlocks [2, 2, 2, 2] of widths 64/128/256/512, global average pooling and
a linear head. ``norm="instancenorm"`` (GroupNorm(C, C), vmap-friendly, the
default) or ``"batchnorm"`` (running statistics: trained one model at a time).
The architecture is fixed: from a ``NetConfig`` only ``norm`` is read.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..config import NetConfig
from .convnet import _choice, make_norm
from .registry import NETS

RESNET_NORMS = ("instancenorm", "batchnorm")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 conv when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.norm2 = make_norm(norm, planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), make_norm(norm, planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@NETS.register("resnet18")
class ResNet18(nn.Module):
    """ResNet-18 without the ImageNet stem; ``forward(x) = classifier(embed(x))``."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 norm: str = "instancenorm") -> None:
        super().__init__()
        _choice("norm", norm, RESNET_NORMS)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
            make_norm(norm, 64), nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(in_planes, planes, stride, norm), BasicBlock(planes, planes, 1, norm)]
            in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.feature_dim = 512
        self.classifier = nn.Linear(512, num_classes)

    @staticmethod
    def config_kwargs(cfg: NetConfig) -> dict[str, Any]:
        return {"norm": cfg.norm}

    def embed(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


__all__ = ["ResNet18", "BasicBlock"]
