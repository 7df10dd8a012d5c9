"""Chapter 3 beyond the paper: adaptive DM poisoning against RDM-DC (ddrepro/poisoning/poison.py's
"through" and "spread" losses) and untargeted poisoning (ddrepro/poisoning/untargeted.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ddrepro.poisoning.adaptive import (batches_poison_loss, spread_penalty, through_poison_loss,
                                       top_direction_scores)
from ddrepro.poisoning.poison import (DMPoisonConfig, _Problem, attack_loss, dm_poison,
                                      dm_poison_loss, pick_target)
from ddrepro.poisoning.study import untargeted_cell
from ddrepro.poisoning.untargeted import UntargetedPoisonConfig, untargeted_poison, untargeted_rows
from ddrepro.config import AugConfig, DMConfig, EvalConfig
from ddrepro.grids import GRIDS
from ddrepro.pixels import to_pixels
from ddrepro.profiles import get_profile
from ddrepro.robust import MeanEstimatorConfig, calibrated_mean
from ddrepro.runtime import make_generator
from test_poison import MEAN, STD, TINY_NET, pixel_data


def planted(restarts: int = 2, poisons: int = 4, clean: int = 36, d: int = 6, seed: int = 0):
    """Target, poison and clean features; the poisons sit 5 units out along the first axis."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(restarts, d, generator=gen)
    poison = torch.randn(restarts, poisons, d, generator=gen) * 0.3
    poison[..., 0] += 5.0
    context = torch.randn(restarts, clean, d, generator=gen)
    return target, poison, context


def test_through_loss_with_k0_and_no_context_is_eq5():
    target, poison, _ = planted()
    loss, kept = through_poison_loss(target, poison, poison[:, :0], 0, 5)
    assert torch.allclose(loss, dm_poison_loss(target, poison))
    assert torch.equal(kept, torch.ones(2))


def test_through_loss_matches_the_calibrated_mean_of_the_whole_batch():
    target, poison, context = planted()
    loss, _ = through_poison_loss(target, poison, context, 0, 5)   # k = 0: the plain batch mean
    batch = torch.cat([poison, context], 1)
    assert torch.allclose(loss, (target - batch.mean(1)).pow(2).sum(-1))
    loss, kept = through_poison_loss(target, poison, context, 6, 10)
    expected = torch.stack([(t - calibrated_mean(b, 6, 10)).pow(2).sum() for t, b in zip(target, batch)])
    assert torch.allclose(loss, expected)
    # the planted poisons are the farthest rows on the top direction: the calibration drops them all
    assert torch.equal(kept, torch.zeros(2))


def test_gradients_reach_only_the_poisons_the_calibration_keeps():
    target, poison, context = planted(poisons=6)
    poison[:, :3, 0] -= 5.0                  # three poisons back among the clean rows
    poison.requires_grad_(True)
    loss, kept = through_poison_loss(target, poison, context, 4, 10)
    loss.sum().backward()
    moved = poison.grad.abs().sum(-1) > 0    # (R, P)
    assert torch.equal(moved[:, 3:], torch.zeros(2, 3, dtype=torch.bool))   # dropped: no gradient
    assert bool(moved[:, :3].all())                                        # kept: pulled to the target
    assert torch.allclose(kept, torch.full((2,), 0.5))


def test_batches_loss_is_the_through_loss_when_one_batch_holds_the_class():
    target, poison, context = planted()                     # 4 poisons + 36 clean rows: eps_p 0.1
    n = poison.shape[1] + context.shape[1]
    k = MeanEstimatorConfig("calibrated", rate=0.1).drop_count(n)
    whole, kept_whole = through_poison_loss(target, poison, context, k, 10)
    for batch in (n, 2 * n):                                # a batch as large as the class, or larger
        loss, kept = batches_poison_loss(target, poison, context, batch, 0.1, 10, make_generator(0))
        assert torch.allclose(loss, whole, atol=1e-5) and torch.allclose(kept, kept_whole)


def test_batches_loss_averages_the_calibrated_means_of_a_random_split_into_victim_batches():
    target, poison, context = planted(poisons=4, clean=36)
    batch, eps_p = 8, 0.1                                   # 40 rows: 5 batches of 8, k = ceil(2.4) = 3
    k = MeanEstimatorConfig("calibrated", rate=eps_p).drop_count(batch)
    loss, kept = batches_poison_loss(target, poison, context, batch, eps_p, 10, make_generator(3))
    gen, rows = make_generator(3), torch.cat([poison, context], 1)
    for r in range(2):                                      # the same split, recomputed by hand
        order = torch.randperm(40, generator=gen)
        means = [calibrated_mean(rows[r, order[i: i + batch]], k, 10) for i in range(0, 40, batch)]
        expected = torch.stack([(target[r] - m).pow(2).sum() for m in means]).mean()
        assert torch.allclose(loss[r], expected)
    assert loss.shape == kept.shape == (2,) and bool(((kept >= 0) & (kept <= 1)).all())
    # every poison sits in one batch; a planted poison is its batch's farthest row, so every one is dropped
    assert torch.equal(kept, torch.zeros(2))
    with pytest.raises(ValueError, match="victim_batch"):
        DMPoisonConfig(loss="batches")                      # the victim's batch must be given
    with pytest.raises(ValueError, match="victim_batch"):
        DMPoisonConfig(loss="through", victim_batch=32)


def test_gradients_reach_delta_through_the_network():
    real, test = pixel_data(), pixel_data(seed=1, split="test")
    target = pick_target(test, seed=0)
    rows = torch.nonzero(real.labels == target.adv_label).flatten()
    clean, context = to_pixels(real.images[rows[:4]], MEAN, STD), to_pixels(real.images[rows[4:]], MEAN, STD)
    problem = _Problem(clean, to_pixels(test.images[target.index], MEAN, STD), MEAN, STD, TINY_NET,
                       real.num_classes, None, context=context, eps_p=0.2)
    gen = make_generator(0)
    for loss_name in ("through", "spread", "batches"):
        cfg = DMPoisonConfig(loss=loss_name, power_iterations=5, victim_batch=8 if loss_name == "batches" else 0)
        delta = torch.zeros(2, *clean.shape, requires_grad=True)
        losses, kept = attack_loss(problem, cfg, problem.fresh_net(gen, torch.device("cpu")), delta, gen)
        losses.sum().backward()
        assert losses.shape == kept.shape == (2,)
        assert float(delta.grad.abs().sum()) > 0, loss_name
    with pytest.raises(ValueError, match="context"):
        attack_loss(dataclasses.replace(problem, context=None), DMPoisonConfig(loss="through"),
                    problem.fresh_net(gen, torch.device("cpu")), delta, gen)


def test_the_spread_penalty_lowers_the_poisons_top_direction_scores():
    target, poison, context = planted()
    before = top_direction_scores(poison, context, 10).abs()
    feats = poison.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([feats], lr=0.2)
    for _ in range(50):
        optimizer.zero_grad()
        spread_penalty(feats, context, 10).sum().backward()
        optimizer.step()
    after = top_direction_scores(feats.detach(), context, 10).abs()
    assert float(after.max()) < 0.5 * float(before.min()), (after, before)
    # and the calibration now keeps the poisons it dropped before
    _, kept_before = through_poison_loss(target, poison, context, 6, 10)
    _, kept_after = through_poison_loss(target, feats.detach(), context, 6, 10)
    assert bool((kept_after > kept_before).all())


def test_adaptive_dm_poison_runs_caches_apart_and_stays_in_budget(private_cache):
    real, test = pixel_data(), pixel_data(seed=1, split="test")
    target = pick_target(test, seed=0)
    kw = dict(net_cfg=TINY_NET, aug_cfg=AugConfig(), seed=0, device="cpu", quiet=True)
    with pytest.raises(ValueError, match="nothing would be left"):   # 8 poisons of 20: eps_p = 0.4
        dm_poison(real, test, target, DMPoisonConfig(rate=0.1, loss="through"), **kw)
    base = DMPoisonConfig(eps=16 / 255, rate=0.05, steps=3, restarts=2, score_nets=2, power_iterations=3)
    results = {loss: dm_poison(real, test, target, dataclasses.replace(base, loss=loss), **kw)
               for loss in ("mean", "through", "spread")}
    for loss, result in results.items():
        new = to_pixels(result.data.images[result.rows], MEAN, STD)
        old = to_pixels(real.images[result.rows], MEAN, STD)
        assert (new - old).abs().max() <= base.eps + 1e-5
        assert result.kept.shape == ((0,) if loss == "mean" else (3,))
    # the loss is part of the cache key: three different crafted sets
    assert not torch.equal(results["mean"].data.images, results["through"].data.images)
    assert not torch.equal(results["through"].data.images, results["spread"].data.images)


def test_untargeted_rows_spread_the_rate_over_every_class():
    real = pixel_data(n_per_class=20, classes=4)
    rows = untargeted_rows(real, 0.1, seed=0)
    assert torch.bincount(real.labels[rows], minlength=4).tolist() == [2, 2, 2, 2]
    assert torch.equal(rows, rows.sort().values) and torch.equal(rows, untargeted_rows(real, 0.1, seed=0))
    assert torch.bincount(real.labels[untargeted_rows(real, 0.01, seed=0)]).tolist() == [1, 1, 1, 1]


def test_untargeted_poisoning_pulls_each_class_within_budget(private_cache):
    real = pixel_data(n_per_class=20, classes=4)
    cfg = UntargetedPoisonConfig(eps=32 / 255, rate=0.2, steps=30, restarts=1, score_nets=1, anchors=8)
    result = untargeted_poison(real, cfg, net_cfg=TINY_NET, seed=0, device="cpu", quiet=True)
    changed = (result.data.images != real.images).flatten(1).any(1)
    assert bool((changed <= result.data.attrs["poisoned"]).all())
    assert torch.equal(torch.nonzero(result.data.attrs["poisoned"]).flatten(), result.rows)
    new, old = (to_pixels(d.images[result.rows], MEAN, STD) for d in (result.data, real))
    assert (new - old).abs().max() <= cfg.eps + 1e-5
    assert torch.allclose(new * 255, (new * 255).round(), atol=1e-3)
    # every class's matching loss (its poisons' mean vs the next class's anchors) fell
    assert result.curves.shape == (4, 30)
    assert bool((result.curves[:, -5:].mean(1) < result.curves[:, :5].mean(1)).all())
    again = untargeted_poison(real, cfg, net_cfg=TINY_NET, seed=0, device="cpu", quiet=True)
    assert torch.equal(again.data.images, result.data.images)


def test_untargeted_cell_reports_the_victims_accuracy(private_cache):
    real, test = pixel_data(n_per_class=20, classes=4), pixel_data(seed=1, split="test")
    cfg = UntargetedPoisonConfig(eps=16 / 255, rate=0.1, steps=2, restarts=1, score_nets=1, anchors=4)
    out = untargeted_cell(real=real, test=test, targets=[pick_target(test, seed=0)], defense="rdm",
                          attack_cfg=cfg, dm_cfg=DMConfig(steps=2, batch_real=8), ipc=1, run=0,
                          power_iterations=2, net_cfg=TINY_NET, aug_cfg=AugConfig(),
                          eval_cfg=EvalConfig(epochs=1, n_models=1), seed=0, device="cpu", quiet=True)
    assert out["attack"] == "untargeted" and out["rate"] == 0.1 and out["poisons"] == 8
    assert out["accs"].shape == (1,)


def test_bad_input_is_a_clear_error_before_compute():
    with pytest.raises(ValueError, match="loss"):
        DMPoisonConfig(loss="median")
    with pytest.raises(ValueError, match="spread_weight"):
        DMPoisonConfig(loss="spread", spread_weight=-1.0)
    with pytest.raises(ValueError, match="power_iterations"):
        DMPoisonConfig(power_iterations=0)
    with pytest.raises(ValueError, match="loss"):
        UntargetedPoisonConfig(loss="through")
    with pytest.raises(ValueError, match="anchors"):
        UntargetedPoisonConfig(anchors=0)
    with pytest.raises(ValueError, match="rate"):
        untargeted_rows(pixel_data(), 0.5, seed=0)
    for key, value in (("adaptive_targets", 0), ("adaptive_losses", ["mean"]), ("adaptive_losses", []),
                       ("untargeted_rates", [0.6]), ("spread_weight", -1.0), ("untargeted_anchors", 0)):
        with pytest.raises(ValueError, match=key):
            get_profile("smoke", {f"poison.{key}": value})
    with pytest.raises(ValueError, match="rdm"):
        GRIDS.get("beyond")(get_profile("smoke", {"poison.defenses": ["dm"]}), seed=0, device="cpu", quiet=True)


def test_beyond_grid_shares_the_table_cells_and_names_its_own():
    prof = get_profile("smoke", {"poison.targets": 2, "poison.adaptive_targets": 2, "poison.dm_poison_targets": 2,
                                 "poison.use_regime": False})  # beyond runs at the profile's regime
    beyond = {job.name: job for job in GRIDS.get("beyond")(prof, seed=0, device="cpu", quiet=True)}
    table = {job.name: job for job in GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)}

    def same(a, b):  # same arguments, hence the same cache keys (data compared by digest)
        assert a.keys() == b.keys() and a["real"].digest() == b["real"].digest()
        assert all(a[k] == b[k] for k in a if k not in ("real", "test"))

    for t in range(2):
        for defense in ("dm", "rdm"):
            same(beyond[f"t{t}/mean/{defense}/run0"].kwargs, table[f"t{t}/dm_poison/{defense}/run0"].kwargs)
        for loss in ("through", "spread"):
            cfg = beyond[f"t{t}/{loss}/rdm/run0"].kwargs["attack_cfg"]
            assert cfg.loss == loss and cfg.rate == (prof.poison.table_rate or prof.poison.rate)
            assert f"t{t}/{loss}/dm/run0" not in beyond
    for defense in ("dm", "rdm"):
        same(beyond[f"clean/{defense}/run0"].kwargs, table[f"clean/{defense}/run0"].kwargs)
    for rate in prof.poison.untargeted_rates:
        assert beyond[f"clean/rdm/eps{rate:g}/run0"].kwargs["eps_p"] == rate
        for defense in ("dm", "rdm"):
            assert beyond[f"untargeted/r{rate:g}/{defense}/run0"].kwargs["attack_cfg"].rate == rate
