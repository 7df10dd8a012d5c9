"""The training engine: K models on K sets, coupled retraining, trajectories, saved models."""

import io

import pytest
import torch

import ddrepro.train as tr
from ddrepro.augment import DSA
from ddrepro.config import AugConfig, EvalConfig, NetConfig
from ddrepro.models import TrainedModels
from ddrepro.train import train_models

NET = NetConfig(width=8, depth=2)


def toy(n_per_class=3, classes=4, size=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, 1, size, size, generator=gen)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return patterns[labels] + 0.3 * torch.randn(len(labels), 1, size, size, generator=gen), labels


def kw(**changes):
    base = dict(net_cfg=NET, eval_cfg=EvalConfig(epochs=3, batch_size=4, n_models=1, augment="none"),
                num_classes=4, seed=7, device="cpu", quiet=True)
    return base | changes


def random_members(k, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    members = torch.rand(k, n, generator=gen) < 0.6
    members[:, 0] = True  # no empty row
    return members


@pytest.mark.parametrize("use_aug", [False, True])
def test_k_models_on_k_sets_equal_k_separate_runs(use_aug):
    images, labels = toy(n_per_class=4)                 # a pool of 16
    members = random_members(3, 16)                     # sets of unequal size
    weights = torch.rand(16, generator=torch.Generator().manual_seed(1)) + 0.5
    aug = DSA(AugConfig(), flip=False) if use_aug else None
    together = train_models(images, labels, members=members, sample_weights=weights, aug=aug,
                            engine="unrolled", **kw())
    assert together.n_models == 3
    for k in range(3):
        rows = members[k]
        alone = train_models(images[rows], labels[rows], sample_weights=weights[rows], aug=aug,
                             first_model=k, engine="unrolled", **kw())
        for name in together.params:
            assert torch.equal(together.params[name][k], alone.params[name][0]), (k, name)


def test_the_vmap_engine_agrees_on_unequal_sets():
    images, labels = toy(n_per_class=4)
    members = random_members(3, 16, seed=2)
    unrolled = train_models(images, labels, members=members, engine="unrolled", **kw())
    batched = train_models(images, labels, members=members, engine="vmap", **kw())
    for name in unrolled.params:
        assert torch.allclose(unrolled.params[name], batched.params[name], atol=1e-5)


def test_coupled_models_share_initialisation_and_order():
    images, labels = toy(n_per_class=4)
    everything = torch.ones(16, dtype=torch.bool)
    without_5 = everything.clone()
    without_5[5] = False
    members = torch.stack([everything, everything, without_5])
    models = train_models(images, labels, members=members, coupled=True, record_every=1, **kw())
    first = models.trajectory[0]
    for name in models.params:
        assert torch.equal(first[name][0], first[name][2])             # one initialisation
        assert torch.equal(models.params[name][0], models.params[name][1])   # same data, same run
    assert not torch.equal(models.params["classifier.weight"][0], models.params["classifier.weight"][2])
    # sharding a coupled ensemble: each model alone, over the same pool, trains identically
    alone = train_models(images, labels, members=without_5[None], coupled=True, **kw())
    for name in models.params:
        assert torch.equal(models.params[name][2], alone.params[name][0])


def test_coupled_orders_are_the_pool_shuffle_restricted_to_each_model():
    masks = random_members(3, 12, seed=3)
    gens = [torch.Generator().manual_seed(11) for _ in range(3)]
    rows = [torch.nonzero(m).flatten() for m in masks]
    orders = tr._epoch_orders(rows, masks, gens, 12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(11))
    for k in range(3):
        assert orders[k].tolist() == [i for i in perm.tolist() if masks[k, i]]


def test_models_on_smaller_sets_take_fewer_updates():
    images, labels = toy(n_per_class=4)
    members = torch.zeros(2, 16, dtype=torch.bool)
    members[0, :16] = True      # 16 rows: 4 batches per epoch
    members[1, :5] = True       # 5 rows: 2 batches per epoch
    models = train_models(images, labels, members=members, record_every=4, **kw())
    assert models.trajectory[-1]["updates"].tolist() == [12, 6]
    assert int(models.trajectory[-1]["step"]) == 12


def test_saved_models_reload_with_weights_only_and_give_checkpoints():
    images, labels = toy()
    models = train_models(images, labels, record_every=2, n_models=2, **kw())
    buffer = io.BytesIO()
    torch.save(models.to_dict(), buffer)
    buffer.seek(0)
    again = TrainedModels.from_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(again.predict(images), models.predict(images))
    net = again.module_at(1, k=1)
    for name, value in net.state_dict().items():
        assert torch.equal(value, models.trajectory[1][name][1])
    assert torch.equal(again.params_at(-1)["classifier.bias"], models.trajectory[-1]["classifier.bias"])
    one = models.select([1])
    assert one.n_models == 1 and torch.equal(one.predict(images)[0], models.predict(images)[1])
    with pytest.raises(ValueError, match="out of range"):
        models.module_at(99)


@pytest.mark.parametrize("change, match", [
    (dict(members=torch.ones(2, 5, dtype=torch.bool)), "members must be a bool"),
    (dict(members=torch.zeros(2, 12, dtype=torch.bool)), "empty"),
    (dict(sample_weights=torch.ones(3, 12)), "sample_weights"),
    (dict(model_keys=[(0, 0), (0, 1)], coupled=True), "one distinct"),
])
def test_bad_per_model_data_fails_before_compute(monkeypatch, change, match):
    import ddrepro.models

    monkeypatch.setattr(ddrepro.models, "build_net", lambda *a, **k: pytest.fail("built a net first"))
    images, labels = toy()
    with pytest.raises(ValueError, match=match):
        train_models(images, labels, **kw(**change))
