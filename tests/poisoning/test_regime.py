"""Chapter 3's targets and regime search (issue 24): ddrepro/poisoning/targets.py, regime.py and
the grids that read them."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from ddrepro.grids import GRIDS
from ddrepro.poisoning import grids as poisoning_grids
from ddrepro.poisoning.poison import Target
from ddrepro.poisoning.regime import (RegimePoint, apply_regime, check_rate_cap, choose_regime, is_vulnerable,
                                      rdm_kept, regime_points, regime_scores, victim_points)
from ddrepro.poisoning.targets import draw_targets, evaluated_targets, target_ids, validation_targets
from ddrepro.profiles import get_profile
from ddrepro.tuning import choose
from test_poison import pixel_data


def pairs(targets):
    return [(t.label, t.adv_label) for t in targets]


@pytest.mark.parametrize("val_seed", [0, 1, 7, 1000, 12345])
def test_validation_and_evaluated_targets_are_disjoint_and_one_per_class_pair(val_seed):
    test = pixel_data(n_per_class=30, classes=10, seed=3, split="test")
    pool = validation_targets(test, 5, val_seed)
    for count in (1, 8, 20):
        evaluated = evaluated_targets(test, count, pool)
        assert len(evaluated) == count and len(pool) == 5
        assert not {t.index for t in pool} & {t.index for t in evaluated}
        assert not set(pairs(pool)) & set(pairs(evaluated))
        assert len(set(pairs(evaluated))) == count and len(set(pairs(pool))) == 5
        # the ids a Choice records: choosing on the pool refuses evaluating on it, never on the others
        choice = choose("regime", {"a": 1.0}, chosen_on="the validation targets", rows=target_ids(pool))
        choice.check_disjoint(target_ids(evaluated))
        with pytest.raises(ValueError, match="chosen on 1 of"):
            choice.check_disjoint(target_ids(evaluated + pool[:1]))
    # the pool does not depend on how many targets are evaluated, and is fixed by its seed
    assert validation_targets(test, 5, val_seed) == pool


def test_draws_skip_a_taken_class_pair_and_refuse_more_pairs_than_exist():
    test = pixel_data(n_per_class=30, classes=3, seed=3, split="test")   # 3 x 2 = 6 class pairs
    six = draw_targets(test, 6, 0)
    assert sorted(pairs(six)) == sorted((a, b) for a in range(3) for b in range(3) if a != b)
    with pytest.raises(ValueError, match="distinct"):
        draw_targets(test, 7, 0)
    with pytest.raises(ValueError, match="distinct"):
        draw_targets(test, 2, 0, exclude=six[:5])
    assert pairs(draw_targets(test, 1, 0, exclude=six[:5])) == pairs(six[5:])


def test_the_cpu_profile_no_longer_draws_a_class_pair_twice():
    prof = get_profile("smoke", {"poison.targets": 8, "poison.val_targets": 4})
    from ddrepro import experiment
    _, test = experiment.real_and_test(prof, prof.poison.dataset, 0)
    evaluated, pool = poisoning_grids.poison_targets(prof, test), poisoning_grids.regime_targets(prof, test)
    assert len(set(pairs(evaluated + pool))) == 12


def test_victim_points_vary_one_factor_at_a_time_and_points_come_cheapest_first():
    assert victim_points((100, 300), (32, 128)) == [(100, 32), (300, 32), (100, 128)]
    assert victim_points((20_000,), (32, 256)) == [(20_000, 32), (20_000, 256)]
    points = regime_points((0.015, 0.01), (300, 100), (32,), (0.5, 0.25))
    assert points[0] == RegimePoint(0.01, 100, 32, 0.25) and points[-1] == RegimePoint(0.015, 300, 32, 0.5)
    assert [p.rate for p in points] == sorted(p.rate for p in points)


def test_rdm_keeps_half_of_each_batch_or_the_rate_is_refused():
    real = pixel_data(n_per_class=500, classes=10)                 # 5,000 images, as the cpu profile
    assert rdm_kept(0.15, 32) == 32 - 15 and rdm_kept(0.3, 32) == 32 - 29 and rdm_kept(0.4, 32) == 0
    check_rate_cap(real, (0.01, 0.015), (32, 128), (1, 4))       # 1.5 %: 17 of 32 kept
    with pytest.raises(ValueError, match="fewer than half"):
        check_rate_cap(real, (0.01, 0.02), (32,), (1,))          # 2 %: 20 % of the class, 12 of 32 kept
    with pytest.raises(ValueError, match="fewer than half"):
        check_rate_cap(real, (0.03,), (256,), (1,))              # the old table's 3 %: 29 of 32 dropped
    # the regime grid refuses such a rate before any job is built
    with pytest.raises(ValueError, match="fewer than half"):
        GRIDS.get("poison_regime")(get_profile("smoke", {"poison.regime_rates": [0.01, 0.02]}),
                                   seed=0, device="cpu", quiet=True)
    # the search always tries the profile's own rate, the paper's 1 %, first
    assert get_profile("smoke", {"poison.regime_rates": [0.015]}).poison.search_rates == (0.01, 0.015)
    with pytest.raises(ValueError, match="regime_rates"):
        get_profile("smoke", {"poison.regime_rates": [0.015, 0.015]})


def frame_of(success: dict, targets=(7, 9)) -> pd.DataFrame:
    rows = []
    for p, per_target in success.items():
        for target, s in zip(targets, per_target):
            rows.append(dict(rate=p.rate, dm_steps=p.dm_steps, batch_real=p.batch_real, eps=p.eps,
                             attack="dm_poison", target=target, success=s, adv_prob=0.5))
        rows.append(dict(rate=p.rate, dm_steps=p.dm_steps, batch_real=p.batch_real, eps=math.nan,
                         attack="direct", target=targets[0], success=1.0, adv_prob=0.9))
    return pd.DataFrame(rows)


def test_the_cheapest_vulnerable_point_is_chosen_on_the_validation_targets():
    points = regime_points((0.01, 0.015), (100, 300), (32,), (0.25, 0.5))
    ids = ["target:7", "target:9"]
    success = {p: (0.0, 0.0) for p in points}
    success[RegimePoint(0.01, 300, 32, 0.5)] = (1.0, 0.0)     # half the targets: vulnerable at 0.5
    success[RegimePoint(0.015, 100, 32, 0.25)] = (1.0, 1.0)   # more, but at a larger rate
    choice = choose_regime(frame_of(success), points, 0.5, ids)
    assert choice.value == RegimePoint(0.01, 300, 32, 0.5) and is_vulnerable(choice)
    assert choice.rows == frozenset(ids)
    # a stricter threshold: only the larger rate qualifies, a labelled deviation
    choice = choose_regime(frame_of(success), points, 1.0, ids)
    assert choice.value == RegimePoint(0.015, 100, 32, 0.25) and is_vulnerable(choice)
    # nothing vulnerable: the most successful point, flagged
    weak = {p: (0.0, 0.0) for p in points} | {RegimePoint(0.015, 300, 32, 0.5): (0.0, 0.5)}
    choice = choose_regime(frame_of(weak), points, 0.75, ids)
    assert choice.value == RegimePoint(0.015, 300, 32, 0.5) and not is_vulnerable(choice)
    # a frame that holds an evaluated (non-validation) target is refused
    with pytest.raises(ValueError, match="validation"):
        choose_regime(frame_of(success, targets=(7, 11)), points, 0.5, ids)
    scores = regime_scores({points[0]: 0.5, points[1]: 1.0}, 0.5)
    assert scores[points[0]] > scores[points[1]] > 1.0


def test_the_regime_grid_attacks_validation_targets_only():
    prof = get_profile("smoke", {"poison.targets": 3, "poison.val_targets": 2})
    jobs = GRIDS.get("poison_regime")(prof, seed=0, device="cpu", quiet=True)
    from ddrepro import experiment
    _, test = experiment.real_and_test(prof, prof.poison.dataset, 0)
    pool = set(poisoning_grids.regime_targets(prof, test))
    evaluated = set(poisoning_grids.poison_targets(prof, test))
    attacked = {job.kwargs["target"] for job in jobs if "target" in job.kwargs}
    probed = {t for job in jobs if "targets" in job.kwargs for t in job.kwargs["targets"]}
    assert attacked == pool and probed == pool and not (attacked | probed) & evaluated
    # per victim point: the clean victim + rates x targets x (every eps + direct)
    study = prof.poison
    per_point = 1 + len(study.search_rates) * 2 * (len(study.regime_eps) + 1)
    assert len(jobs) == len(victim_points(study.regime_steps, study.regime_batch)) * per_point
    assert {job.kwargs["defense"] for job in jobs} == {"dm"}
    # the sweep page's grid carries the regime's jobs, so `ddrepro precompute poison_sweep` fills them
    sweep = [job.name for job in GRIDS.get("poison_sweep")(prof, seed=0, device="cpu", quiet=True)]
    assert [name for name in sweep if name.startswith("regime/")] == [job.name for job in jobs]


def test_the_evaluated_grid_runs_at_the_chosen_regime_and_refuses_one_chosen_on_its_targets(monkeypatch):
    prof = get_profile("smoke", {"poison.targets": 2})
    point = RegimePoint(0.015, 2, 8, 128 / 255)
    fake = choose("regime", {point: 2.0}, chosen_on="the validation targets", rows=["target:-1"])
    monkeypatch.setattr(poisoning_grids, "regime_choice", lambda *a, **k: (fake, None, None))
    jobs = {job.name: job for job in GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)}
    cell = jobs["t0/dm_poison/dm/run0"].kwargs
    assert (cell["attack_cfg"].rate, cell["attack_cfg"].eps) == (0.015, 128 / 255)
    assert (cell["dm_cfg"].steps, cell["dm_cfg"].batch_real) == (2, 8)
    # a choice made on an evaluated target is refused before any job
    from ddrepro import experiment
    _, test = experiment.real_and_test(prof, prof.poison.dataset, 0)
    leaked = dataclasses.replace(fake, rows=frozenset(target_ids(poisoning_grids.poison_targets(prof, test)[:1])))
    monkeypatch.setattr(poisoning_grids, "regime_choice", lambda *a, **k: (leaked, None, None))
    with pytest.raises(ValueError, match="evaluated targets"):
        GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)
    # without use_regime the profile's own victim runs
    plain = {job.name: job for job in GRIDS.get("attack_and_defense")(
        get_profile("smoke", {"poison.targets": 2, "poison.use_regime": False}), seed=0, device="cpu", quiet=True)}
    assert plain["t0/dm_poison/dm/run0"].kwargs["dm_cfg"].steps == prof.poison.dm_steps


def test_applying_a_regime_is_idempotent_and_leaves_the_regime_grid_unchanged():
    prof = get_profile("smoke")
    point = RegimePoint(0.015, 2, 8, 128 / 255)
    once = apply_regime(prof, point)
    assert apply_regime(once, point) == once
    assert once.poison.table_rate == 0.015 and once.poison.eps[0] == 128 / 255
    assert apply_regime(prof, dataclasses.replace(point, rate=prof.poison.rate)).poison.table_rate is None
    names = lambda p: [(j.name, j.kwargs.get("attack_cfg")) for j in
                       GRIDS.get("poison_regime")(p, seed=0, device="cpu", quiet=True)]
    assert names(once) == names(prof)


def test_the_misspecified_defender_is_told_a_scaled_rate_and_skips_an_empty_batch():
    study = get_profile("smoke").poison
    settings = dict((round(s, 6), label) for label, s in poisoning_grids.misspec_settings(study))
    assert set(settings) == {round(x, 6) for x in (1 / 3, 0.5, 2 / 3, 1.0, 4 / 3, 2.0, 4.0)}
    prof = get_profile("smoke", {"poison.use_regime": False})
    jobs = {job.name: job.kwargs for job in poisoning_grids.misspecified(prof, seed=0, device="cpu", quiet=True)}
    # smoke: 1 % = 10 % of the class; told 4 x that, RDM-DC would drop ceil(1.2 x 8) of a batch of 8
    assert "misspec/t0/x4/run0" not in jobs and "misspec/t0/x2/run0" in jobs
    assert jobs["misspec/t0/x0.5/run0"]["assumed_scale"] == 0.5
    assert jobs["misspec/clean/x2/run0"]["eps_p"] == pytest.approx(2 * jobs["misspec/clean/x1/run0"]["eps_p"])


def test_the_power_method_starts_from_a_seeded_random_vector():
    # Alg. 5 starts from v ~ N(0, I); ours is drawn from a fixed seed so the estimator is a function of its batch
    import torch
    from ddrepro.robust import power_method, start_vector

    centred = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))
    start = start_vector(6)
    assert torch.equal(start, start_vector(6)) and start.std() > 0.1           # seeded, not a constant vector
    assert torch.allclose(power_method(centred, 1), power_method(centred, 1, start))
    v = power_method(centred, 200)
    top = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, -1]
    assert abs(float(v @ top)) == pytest.approx(1.0, abs=1e-4)


def test_beyond_runs_at_the_tables_regime_and_shares_its_cells(monkeypatch):
    prof = get_profile("smoke", {"poison.targets": 2, "poison.adaptive_targets": 2, "poison.dm_poison_targets": 2})
    point = RegimePoint(0.015, 2, 8, 128 / 255)
    fake = choose("regime", {point: 2.0}, chosen_on="the validation targets", rows=["target:-1"])
    monkeypatch.setattr(poisoning_grids, "regime_choice", lambda *a, **k: (fake, None, None))
    beyond = {job.name: job.kwargs for job in GRIDS.get("beyond")(prof, seed=0, device="cpu", quiet=True)}
    table = {job.name: job.kwargs for job in GRIDS.get("attack_and_defense")(prof, seed=0, device="cpu", quiet=True)}
    for t in range(2):
        a, b = beyond[f"t{t}/mean/rdm/run0"], table[f"t{t}/dm_poison/rdm/run0"]
        assert a["attack_cfg"] == b["attack_cfg"] and a["dm_cfg"] == b["dm_cfg"] and a["target"] == b["target"]
        assert a["attack_cfg"].rate == 0.015 and a["dm_cfg"].steps == 2
