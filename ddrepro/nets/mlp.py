"""A fully connected ReLU network, for cross-architecture checks (DC's "MLP": 2 hidden layers of 128)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..config import NetConfig
from .convnet import make_act
from .registry import NETS


@NETS.register("mlp")
class MLP(nn.Module):
    """Flatten -> [linear -> act] per entry of ``hidden`` -> linear head.

    From a ``NetConfig``: ``hidden = (width,) * (depth - 1)``, so ``depth``
    counts the linear layers (the default depth 3, width 128 is DC's MLP).
    ``norm`` does not apply to this network and is ignored.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 hidden: tuple[int, ...] = (128, 128), act: str = "relu") -> None:
        super().__init__()
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"MLP hidden widths must be integers >= 1, got {hidden!r}.")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), make_act(act)]
            width = h
        self.features = nn.Sequential(*layers)
        self.feature_dim = width
        self.classifier = nn.Linear(width, num_classes)

    @staticmethod
    def config_kwargs(cfg: NetConfig) -> dict[str, Any]:
        return {"hidden": (cfg.width,) * (cfg.depth - 1)}

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


__all__ = ["MLP"]
