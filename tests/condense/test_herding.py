"""Herding: the greedy rule on known points, and the condenser."""

from functools import partial

import pytest
import torch

from ddrepro.condense import condense
from ddrepro.condense.herding import herding_order
from ddrepro.config import HerdingConfig, NetConfig
from helpers import toy_image_data

TINY_NET = NetConfig(width=8, depth=2)




toy_data = partial(toy_image_data, n_per_class=10, classes=4)


def brute_force_order(feats, k):
    """The herding rule evaluated literally: running mean closest to the class mean."""
    mean, chosen = feats.mean(0), []
    for t in range(1, k + 1):
        best, best_dist = None, float("inf")
        for i in range(feats.shape[0]):
            if i in chosen:
                continue
            dist = float(((feats[chosen + [i]].sum(0) / t - mean) ** 2).sum())
            if dist < best_dist:
                best, best_dist = i, dist
        chosen.append(best)
    return chosen


def test_known_points_first_pick_is_nearest_to_the_mean_then_balances_it():
    feats = torch.tensor([[2.9], [0.2], [-2.0], [-1.0], [-0.1]])  # mean 0
    # -0.1 is nearest the mean; 0.2 then pulls the running mean back towards 0 (0.05); then -1.
    assert herding_order(feats, 3).tolist() == [4, 1, 3] == brute_force_order(feats, 3)


def test_herding_matches_the_literal_rule_and_picks_distinct_samples():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(25, 6, generator=gen)
    order = herding_order(feats, 10)
    assert order.tolist() == brute_force_order(feats, 10)
    assert len(set(order.tolist())) == 10
    full = herding_order(feats, 25)
    assert sorted(full.tolist()) == list(range(25))  # k = n is a permutation
    # The running mean of the first t picks approaches the mean better than the t-th pick alone.
    running = feats[full[:10]].mean(0)
    assert (running - feats.mean(0)).norm() < (feats[full[9]] - feats.mean(0)).norm()


def test_herding_order_rejects_bad_k():
    with pytest.raises(ValueError, match="k=6"):
        herding_order(torch.zeros(5, 2), 6)
    with pytest.raises(ValueError, match="k=0"):
        herding_order(torch.zeros(5, 2), 0)


@pytest.mark.parametrize("ipc", [1, 3])
def test_condense_herding_random_net_selects_distinct_real_images(ipc):
    real = toy_data()
    kw = dict(config=HerdingConfig(embed_epochs=0), net_cfg=TINY_NET, cache=False, quiet=True)
    a = condense("herding", real, ipc, seed=0, **kw)
    b = condense("herding", real, ipc, seed=0, **kw)
    assert a.images.shape == (4 * ipc, 1, 8, 8)
    assert a.labels.tolist() == [c for c in range(4) for _ in range(ipc)]
    assert torch.equal(a.images, b.images)  # deterministic for a seed
    for image, label in zip(a.images, a.labels):
        matches = (real.images == image).flatten(1).all(1).nonzero().flatten()
        assert len(matches) == 1 and real.labels[matches[0]] == label
    assert all(torch.unique(block, dim=0).shape[0] == ipc for block in a.images.view(4, ipc, -1))


def test_condense_herding_first_pick_is_nearest_to_the_class_mean_in_the_embedding(monkeypatch):
    from ddrepro.condense import herding
    from ddrepro.nets import build_net

    real = toy_data()
    net = build_net(TINY_NET, 1, 4, 8, seed=7)
    monkeypatch.setattr(herding, "embedding_net", lambda ctx, cfg, seed: net)
    syn = condense("herding", real, 1, config=HerdingConfig(embed_epochs=0), net_cfg=TINY_NET,
                   seed=3, cache=False, quiet=True)
    with torch.no_grad():
        feats = net.eval().embed(real.images)
    for c in range(4):
        idx = torch.nonzero(real.labels == c).flatten()
        f = feats[idx]
        nearest = idx[((f - f.mean(0)) ** 2).sum(1).argmin()]
        assert torch.equal(syn.images[c], real.images[nearest])


def test_condense_herding_with_a_briefly_trained_embedding():
    real = toy_data()
    kw = dict(config=HerdingConfig(embed_epochs=1, batch_size=16), net_cfg=TINY_NET,
              cache=False, quiet=True)
    a = condense("herding", real, 2, seed=0, **kw)
    b = condense("herding", real, 2, seed=0, **kw)
    assert a.images.shape == (8, 1, 8, 8) and torch.equal(a.images, b.images)
