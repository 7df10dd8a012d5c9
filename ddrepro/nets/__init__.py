"""Networks for condensing and evaluation, looked up by name in :data:`NETS`.

``get_net("convnet", 1, 10, 28, seed=0)`` builds ConvNet-3 (DC/DSA/DM's
architecture) for MNIST; ``build_net(NetConfig(), 1, 10, 28)`` does the same
from a config. Weight initialisation is PyTorch's default, except for the
privacy paper's random extractors ``"linear"``/``"relu2"`` (standard normal,
``extractors.py``); the randomness comes from the caller (see
:func:`ddrepro.nets.registry.get_net`).
"""

from torch import nn

from .registry import NETS, build_net, get_net, seeded_init
from .convnet import ConvNet, make_norm, make_act
from .mlp import MLP
from .resnet import BasicBlock, ResNet18
from .extractors import LinearExtractor, ReLUExtractor


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` has a batch-norm layer (running statistics, batch-dependent outputs)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


__all__ = [
    "NETS", "get_net", "build_net", "seeded_init", "ConvNet", "MLP", "ResNet18",
    "BasicBlock", "make_norm", "make_act", "has_batchnorm", "LinearExtractor", "ReLUExtractor",
]
