"""The random feature extractors of "Privacy for Free" (Dong et al. 2022), Prop. 4.3 and App. D.

The paper analyses DM with two extractors simple enough to solve:

* ``"linear"``: ``psi(x) = theta x`` with ``theta`` in R^{k x d}, no bias
  (Proposition 4.3; App. A). Then DM's loss for one draw is
  ``|| theta (mean(T) - mean(S)) ||^2`` (Eq. 19), so DM only moves S's
  barycenter towards T's, and only inside the row space of ``theta``.
* ``"relu2"``: the "2-layer network" ``psi(x) = ReLU(theta x)`` (Remark 4.5;
  App. D, Eq. 41), whose minimiser matches *pseudo*-barycenters.

Both draw ``theta_ij ~ N(0, 1)`` i.i.d. (Assumption 4.2, used in App. A-B:
``E[theta^T theta] = k I``). That is *not* PyTorch's default initialisation
(uniform with variance 1/(3d)), so ``theta`` is drawn explicitly with
``torch.randn``, from the global RNG that :func:`ddrepro.nets.get_net` seeds
(``seed=``), like every other network here.

Inputs are flattened, so ``d = C * H * W``; ``k`` is ``width`` (the paper's
Fig. 6 uses k = 2048 on CIFAR-10; Prop. 4.3 assumes k < d, which is not
enforced). A linear ``classifier`` on the k features (PyTorch's default
initialisation) lets ``build_net`` and the evaluation code use these nets
like any other; DM only ever calls :meth:`embed`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..config import NetConfig
from .registry import NETS


@NETS.register("linear")
class LinearExtractor(nn.Module):
    """``embed(x) = x.flatten(1) @ theta.T``: the linear extractor of Prop. 4.3, ``theta ~ N(0, 1)``."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 2048) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"{type(self).__name__} width (k) must be an integer >= 1, got {width!r}.")
        d = in_channels * image_size * image_size
        # Assumption 4.2: standard normal entries (see the module docstring).
        self.theta = nn.Parameter(torch.randn(width, d))
        self.feature_dim = width
        self.classifier = nn.Linear(width, num_classes)

    @staticmethod
    def config_kwargs(cfg: NetConfig) -> dict[str, Any]:
        """``NetConfig.width`` is k; ``depth`` and ``norm`` do not apply and are ignored."""
        return {"width": cfg.width}

    def embed(self, x: Tensor) -> Tensor:
        """``(n, C, H, W) -> (n, k)``: ``theta x`` for every flattened image (Eq. 19)."""
        return x.flatten(1) @ self.theta.T

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


@NETS.register("relu2")
class ReLUExtractor(LinearExtractor):
    """``embed(x) = ReLU(theta x)``: the paper's "2-layer network" (Remark 4.5, App. D, Eq. 41)."""

    def embed(self, x: Tensor) -> Tensor:
        return torch.relu(super().embed(x))


__all__ = ["LinearExtractor", "ReLUExtractor"]
