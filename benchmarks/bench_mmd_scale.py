"""How large MMD's image gradient is next to DM's: the measurement behind ``MMDConfig.lr_img``.

DM and MMD share one loop and one step size (SGD lr 1.0 on the images), so
their image gradients should have the same scale. For each network width the
script draws fresh ConvNet-3s (instance norm, as the papers), embeds one real
batch per class and one synthetic set (real images not in the batch, or
N(0, 1) noise), and prints ``||grad_S L_DM|| / ||grad_S L_MMD||``, the median
over networks, for

* ``plain``: the sum over bandwidths of the squared MMD (``mmd2_per_class``
  with unit coefficients), the loss before this measurement;
* ``scaled``: :func:`ddrepro.condense.mmd.mmd_feature_loss`, each kernel's
  MMD^2 times its squared bandwidth, averaged over bandwidths.

A ratio near 1 means MMD moves its images as fast as DM at the same lr.

    python benchmarks/bench_mmd_scale.py            # MNIST, widths 32 and 128, batch_real 256
    python benchmarks/bench_mmd_scale.py --quick    # tiny sizes on random data: the script runs
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ddrepro.condense.dm import dm_feature_loss, embed_by_class
from ddrepro.condense.mmd import median_heuristic, mmd2_per_class, mmd_feature_loss
from ddrepro.config import MMDConfig, NetConfig
from ddrepro.nets import build_net

# -- configuration -----------------------------------------------------------
WIDTHS = (32, 128)
BATCH_REAL = 256        # real images per class (the paper's; the cpu profile uses 32)
IPCS = (1, 10)
NETS = 5                # fresh networks per setting (the ratio's median is printed)
# ---------------------------------------------------------------------------


def real_pool(quick: bool, per_class: int) -> tuple[torch.Tensor, int]:
    """``(C, per_class, 1, H, W)`` real images by class (MNIST; random data when ``quick``)."""
    if quick:
        return torch.randn(10, per_class, 1, 12, 12, generator=torch.Generator().manual_seed(0)), 10
    from ddrepro.data import load

    mnist = load("mnist", "train").subset_per_class(per_class, seed=0)
    return torch.stack([mnist.images[idx] for idx in mnist.indices_by_class()]), mnist.num_classes


def grad_norm(loss_fn, net, real_feats, syn) -> float:
    syn = syn.clone().requires_grad_(True)
    grad, = torch.autograd.grad(loss_fn(real_feats, embed_by_class(net.embed, syn)), syn)
    return float(grad.norm())


def plain_mmd(real_feats, syn_feats):
    widths = median_heuristic(real_feats)[:, None] * torch.tensor(MMDConfig().bandwidths)
    return mmd2_per_class(real_feats, syn_feats, widths).sum()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batch, nets, ipcs = (8, 2, (1,)) if args.quick else (BATCH_REAL, NETS, IPCS)
    widths = (8,) if args.quick else WIDTHS
    pool, classes = real_pool(args.quick, batch + max(ipcs))
    real = pool[:, :batch]
    print(f"real batch {batch}/class, {classes} classes, image {tuple(pool.shape[2:])}, "
          f"bandwidths {MMDConfig().bandwidths} x median distance, median over {nets} nets")
    print(f"{'width':>5} {'ipc':>4} {'init':>5} {'DM/MMD plain':>13} {'DM/MMD scaled':>14}")
    noise = torch.randn(classes, max(ipcs), *pool.shape[2:], generator=torch.Generator().manual_seed(1))
    settings = [(ipc, init) for ipc in ipcs for init in ("real", "noise")]
    for width in widths:
        ratios = {setting: ([], []) for setting in settings}
        for seed in range(nets):
            net = build_net(NetConfig(width=width, depth=3), pool.shape[2], classes,
                            pool.shape[-1], seed=seed).requires_grad_(False)
            with torch.no_grad():
                real_feats = embed_by_class(net.embed, real)
            for ipc, init in settings:
                syn = pool[:, batch:batch + ipc] if init == "real" else noise[:, :ipc]
                dm = grad_norm(dm_feature_loss, net, real_feats, syn)
                ratios[ipc, init][0].append(dm / grad_norm(plain_mmd, net, real_feats, syn))
                ratios[ipc, init][1].append(dm / grad_norm(mmd_feature_loss, net, real_feats, syn))
        for (ipc, init), (plain, scaled) in ratios.items():
            print(f"{width:>5} {ipc:>4} {init:>5} {statistics.median(plain):>12.1f}x "
                  f"{statistics.median(scaled):>13.2f}x")


if __name__ == "__main__":
    main()
