"""What every learned condenser owes the interface: shapes, class-major labels, determinism, change.

One parametrised test instead of one copy per method; method-specific behaviour
is tested beside each method.
"""

import dataclasses

import pytest
import torch

from ddrepro.condense import condense
from ddrepro.config import DMConfig, GMConfig, MMDConfig, NetConfig
from helpers import toy_image_data

TINY_NET = NetConfig(width=8, depth=2)
TINY_GM = dict(steps=2, outer_loops=2, inner_loops=2, batch_real=5, batch_train=4)
CONFIGS = {
    "dm": DMConfig(steps=3, batch_real=6),
    "mmd": MMDConfig(steps=3, batch_real=6),
    "dc": GMConfig(**TINY_GM, dsa=False),
    "dsa": GMConfig(**TINY_GM, dsa=True),
}


@pytest.mark.parametrize("ipc", [1, 3])
@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_condense_shapes_labels_determinism_and_change(method, ipc):
    real = toy_image_data(n_per_class=10, classes=4)
    cfg = CONFIGS[method]

    def run(seed):
        # init="real" for every method (DC defaults to noise): the random set below is then
        # exactly the starting point
        return condense(method, real, ipc, config=cfg, init="real", seed=seed, net_cfg=TINY_NET,
                        device="cpu", quiet=True, cache=False)

    a, b, other = run(0), run(0), run(1)
    assert a.images.shape == (4 * ipc, 1, 8, 8)
    assert a.labels.tolist() == [c for c in range(4) for _ in range(ipc)]
    assert torch.isfinite(a.images).all()
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, other.images)
    start = condense("random", real, ipc, seed=0, cache=False)  # the same initial images
    assert not torch.allclose(a.images, start.images)  # the images were actually optimised
    assert a.meta["config"] == dataclasses.asdict(cfg) and a.meta["method"] == method
