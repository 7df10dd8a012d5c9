"""The poisoning chapter's grid cell (ddrepro/poisoning/study.py) and grid (ddrepro/grids.py)."""

from __future__ import annotations

import pytest
import torch

from ddrepro.poisoning.gradient_matching import GMPoisonConfig
from ddrepro.poisoning.poison import DMPoisonConfig, pick_target
from ddrepro.poisoning.study import (class_rate, clean_cell, defense_config, make_poisons,
                                     poison_cell)
from ddrepro.config import AugConfig, DMConfig, EvalConfig, NetConfig
from ddrepro.grids import GRIDS
from ddrepro.profiles import get_profile
from ddrepro.robust import MeanEstimatorConfig
from test_poison import pixel_data

TINY_NET = NetConfig(width=8, depth=2)


def test_defense_configs_change_only_the_mean_estimator():
    base = DMConfig(steps=7, batch_real=16)
    assert defense_config("dm", base, 0.1, 3) == ("dm", base)
    method, cfg = defense_config("rdm", base, 0.1, 3)
    assert method == "rdm" and cfg.steps == 7
    assert cfg.mean_estimator == MeanEstimatorConfig("calibrated", rate=0.1, power_iterations=3)
    assert defense_config("median", base, 0.1, 3)[1].mean_estimator.name == "median"
    with pytest.raises(ValueError, match="unknown defense"):
        defense_config("krum", base, 0.1, 3)


def test_class_rate_is_the_poisons_share_of_their_class():
    real = pixel_data(n_per_class=25, classes=4)  # 100 images, 1 poison at 1 %
    assert class_rate(real, 0.01, 2) == pytest.approx(1 / 25)
    assert class_rate(real, 0.1, 2) == pytest.approx(10 / 25)


def test_poison_cell_runs_end_to_end_and_is_deterministic():
    real, test = pixel_data(), pixel_data(seed=1, split="test")
    kw = dict(real=real, test=test, target=pick_target(test, 0), attack="dm_poison", defense="rdm",
              attack_cfg=DMPoisonConfig(eps=16 / 255, rate=0.05, steps=2, restarts=1, score_nets=1),
              dm_cfg=DMConfig(steps=2, batch_real=10), ipc=1, run=0, power_iterations=2,
              net_cfg=TINY_NET, aug_cfg=AugConfig(), eval_cfg=EvalConfig(epochs=2, n_models=2),
              seed=0, device="cpu", quiet=True)
    first, second = poison_cell(**kw), poison_cell(**kw)
    assert first["success"].shape == (2,) and first["eps_p"] == pytest.approx(4 / 20)
    assert torch.equal(first["predicted"], second["predicted"])
    assert torch.equal(first["success"], first["predicted"] == first["adv_label"])
    direct = poison_cell(**(kw | {"attack": "direct", "defense": "dm"}))
    assert direct["attack"] == "direct"
    with pytest.raises(ValueError, match="unknown attack"):
        poison_cell(**(kw | {"attack": "frogs"}))


def test_grid_has_one_job_per_target_attack_defense_run():
    prof = get_profile("smoke", {"poison.targets": 2, "poison.direct_targets": 1, "poison.runs": 2, "poison.use_regime": False,
                                 "poison.baseline_targets": 1, "poison.gm_targets": 1})
    jobs = GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)
    names = [job.name for job in jobs if not job.name.startswith("misspec/")]  # test_regime.py's
    # clean: 3 defenses x 2 runs; DM poisoning: DM and RDM-DC on both targets, the median on the
    # first; gradient matching on the first against DM and RDM-DC (Table 3); the direct attack
    # on the first, against all three
    assert len(names) == len(set(names)) == 3 * 2 + (2 * 2 + 1) * 2 + 1 * 2 * 2 + 1 * 3 * 2
    assert "t1/dm_poison/rdm/run1" in names and "t0/direct/dm/run0" in names
    assert "t0/dm_poison/median/run0" in names and "t1/dm_poison/median/run0" not in names
    assert "t1/direct/dm/run0" not in names and "clean/median/run1" in names
    assert "t0/direct/median/run0" in names
    assert "t0/grad_match/rdm/run1" in names and "t1/grad_match/dm/run0" not in names
    assert "t0/grad_match/median/run0" not in names
    gm = next(job for job in jobs if job.name == "t0/grad_match/dm/run0").kwargs["attack_cfg"]
    assert isinstance(gm, GMPoisonConfig) and gm.pretrained == prof.poison.pretrained
    assert (gm.eps, gm.steps, gm.restarts) == (prof.poison.eps[0], prof.poison.attack_steps, prof.poison.restarts)


def test_each_crafting_attack_takes_its_own_config():
    real, test = pixel_data(), pixel_data(seed=1, split="test")
    kw = dict(net_cfg=TINY_NET, aug_cfg=AugConfig(), seed=0, device="cpu", quiet=True)
    with pytest.raises(ValueError, match="needs a GMPoisonConfig"):
        make_poisons(real, test, pick_target(test, 0), "grad_match", DMPoisonConfig(), **kw)
    with pytest.raises(ValueError, match="needs a DMPoisonConfig"):
        make_poisons(real, test, pick_target(test, 0), "dm_poison", GMPoisonConfig(), **kw)


def test_the_table_can_poison_at_its_own_rate_and_craft_for_fewer_targets():
    prof = get_profile("smoke", {"poison.targets": 2, "poison.direct_targets": 2, "poison.baseline_targets": 0, "poison.use_regime": False,
                                 "poison.dm_poison_targets": 1, "poison.table_rate": 0.03})
    jobs = {job.name: job for job in GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)}
    assert "t0/dm_poison/dm/run0" in jobs and "t1/dm_poison/dm/run0" not in jobs
    assert "t1/direct/rdm/run0" in jobs
    assert {job.kwargs["attack_cfg"].rate for name, job in jobs.items() if "clean" not in name} == {0.03}
    # the clean reference's defenders assume the table's rate too
    real = jobs["clean/rdm/run0"].kwargs["real"]
    adv = jobs["t0/direct/rdm/run0"].kwargs["target"].adv_label
    assert jobs["clean/rdm/run0"].kwargs["eps_p"] == pytest.approx(class_rate(real, 0.03, adv))
    # the sweep keeps the chapter's rate
    sweep = GRIDS.get("poison_sweep")(prof, seed=0, device="cpu", quiet=True)
    assert {job.kwargs["attack_cfg"].rate for job in sweep
            if "attack_cfg" in job.kwargs and not job.name.startswith("regime/")} == {prof.poison.rate}
    with pytest.raises(ValueError, match="table_rate"):
        get_profile("smoke", {"poison.table_rate": 0.6})
    with pytest.raises(ValueError, match="dm_poison_targets"):
        get_profile("smoke", {"poison.dm_poison_targets": 5})


def test_clean_cell_asks_about_every_target_without_poisons():
    real, test = pixel_data(), pixel_data(seed=1, split="test")
    targets = [pick_target(test, s) for s in range(3)]
    out = clean_cell(real=real, test=test, targets=targets, defense="median", eps_p=0.1,
                     dm_cfg=DMConfig(steps=2, batch_real=10), ipc=1, run=0, power_iterations=2,
                     net_cfg=TINY_NET, aug_cfg=AugConfig(), eval_cfg=EvalConfig(epochs=2, n_models=2),
                     device="cpu", quiet=True)
    assert out["predicted"].shape == out["success"].shape == out["adv_prob"].shape == (2, 3)
    assert bool(((out["adv_prob"] >= 0) & (out["adv_prob"] <= 1)).all())


def test_sweep_points_vary_one_factor_at_a_time():
    from ddrepro.poisoning.study import sweep_points

    points = sweep_points((16 / 255, 64 / 255, 128 / 255), (30, 100), 64 / 255, 100)
    assert points == [(16 / 255, 100), (64 / 255, 30), (64 / 255, 100), (128 / 255, 100)]
    assert sweep_points((0.5,), (7,), 0.5, 7) == [(0.5, 7)]       # the base point only once
    with pytest.raises(ValueError, match="eps"):
        sweep_points((0.0,), (10,), 0.25, 10)
    with pytest.raises(ValueError, match="attack steps"):
        sweep_points((0.25,), (0,), 0.25, 10)


def test_sweep_grid_shares_its_base_cells_with_the_table():
    prof = get_profile("smoke", {"poison.targets": 2, "poison.direct_targets": 2, "poison.sweep_targets": 2, "poison.use_regime": False,
                                 "poison.sweep_eps": [16 / 255, 0.25], "poison.sweep_steps": [1, 2]})
    sweep = {job.name: job for job in GRIDS.get("poison_sweep")(prof, seed=0, device="cpu", quiet=True)
             if not job.name.startswith("regime/")}  # the regime search's jobs: test_regime.py
    table = {job.name: job for job in GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)}
    eps0, steps0 = prof.poison.eps[0], prof.poison.attack_steps
    # the clean reference + per target: the distinct (eps, T) points and the direct attack
    points = {(round(255 * e), s) for e, s in [(16 / 255, steps0), (0.25, steps0), (eps0, 1), (eps0, 2),
                                               (eps0, steps0)]}
    assert len(sweep) == 1 + 2 * (len(points) + 2)

    def same(a, b):  # same arguments, hence the same cache keys (data compared by digest)
        assert a.keys() == b.keys() and a["real"].digest() == b["real"].digest()
        assert all(a[k] == b[k] for k in a if k not in ("real", "test"))

    for t in range(2):
        same(sweep[f"t{t}/eps{round(255 * eps0)}/T{steps0}"].kwargs, table[f"t{t}/dm_poison/dm/run0"].kwargs)
        for defense in ("dm", "rdm"):
            same(sweep[f"t{t}/direct/{defense}"].kwargs, table[f"t{t}/direct/{defense}/run0"].kwargs)
    same(sweep["clean/dm/run0"].kwargs, table["clean/dm/run0"].kwargs)
    with pytest.raises(ValueError, match="sweep_targets"):
        get_profile("smoke", {"poison.sweep_targets": 2})


def test_a_targets_defenses_share_one_poison_key():
    # make_poisons takes no defense: equal (target, attack_cfg, seed, data) across defenses = one cache entry
    prof = get_profile("smoke", {"poison.targets": 2, "poison.baseline_targets": 2, "poison.use_regime": False})
    jobs = {job.name: job.kwargs for job in GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)}
    for t in range(2):
        keys = {(kw["target"], kw["attack_cfg"], kw["seed"], kw["real"].digest())
                for name, kw in jobs.items() if name.startswith(f"t{t}/dm_poison/")}
        assert len(keys) == 1
    assert jobs["t0/dm_poison/dm/run0"]["seed"] != jobs["t1/dm_poison/dm/run0"]["seed"]


def test_victim_initialisation_is_a_validated_profile_choice_the_grid_passes_on():
    with pytest.raises(ValueError, match="init"):
        get_profile("smoke", {"poison.init": "zeros"})
    for init in ("noise", "real"):
        prof = get_profile("smoke", {"poison.init": init, "poison.use_regime": False})
        jobs = GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)
        assert {job.kwargs["init"] for job in jobs} == {init}
