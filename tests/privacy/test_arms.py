"""LiRA on every arm (ddrepro.privacy.arms) and the DP bound as a scorecard row (dp_bound)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ddrepro.privacy.dp_bound import bound_excess, tpr_bound
from ddrepro.scorecard import Scorecard, criteria_table

CRITERIA = Path(__file__).resolve().parents[2] / "book" / "02_privacy" / "criteria.csv"


def _same(a, b) -> bool:
    """Job arguments equal: tensors by value, data sets by digest, the rest by ==."""
    from ddrepro.artifacts import _canonical
    from ddrepro.data import ImageData

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, ImageData):
        return isinstance(b, ImageData) and a.digest() == b.digest()
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return _canonical(a) == _canonical(b)  # configs holding tensors: compared by the cache's view


# -- the arms ---------------------------------------------------------------------------------

def test_grid_holds_the_new_arms_on_dms_halves_and_keeps_the_old_jobs(book_data):
    from ddrepro import get_profile
    from ddrepro.grids import GRIDS
    from ddrepro.privacy.arms import ARMS, model_names
    from ddrepro.privacy.critique import critique_jobs

    prof = get_profile("smoke")
    jobs = GRIDS.get("critique")(prof, seed=0, device="cpu", quiet=True)
    old = critique_jobs(prof, seed=0, device="cpu", quiet=True)
    # the existing jobs come first, argument for argument what critique_jobs builds
    assert [j.name for j in jobs[: len(old)]] == [j.name for j in old]
    for job, before in zip(jobs, old):
        assert job.fn is before.fn and _same(job.kwargs, before.kwargs), job.name
    # then one job per arm and LiRA model, nothing else
    names = model_names(prof)
    assert len(names) == prof.privacy.shadows + prof.privacy.lira_targets
    new = {j.name: j for j in jobs[len(old):]}
    assert set(new) == {f"lira-{arm}/{n}" for arm in ARMS for n in names}
    dm = {j.name: j for j in old if j.name.startswith("lira/")}
    for n in names:
        base = dm[f"lira/{n}"].kwargs
        for arm in ARMS:
            kw = new[f"lira-{arm}/{n}"].kwargs
            assert torch.equal(kw["subset"], base["subset"]) and kw["seed"] == base["seed"]  # DM's half, seed
            assert kw["eval_cfg"] == base["eval_cfg"] and kw["net_cfg"] == base["net_cfg"]  # the victims' recipe
            assert set(kw["probes"]) == {"pool", "val"} and _same(kw["probes"]["pool"], base["probes"]["pool"])
        real, kip = new[f"lira-dm-real/{n}"].kwargs, new[f"lira-kip/{n}"].kwargs
        assert real["init"] == "real" and base["init"] == "noise"
        assert {k for k in real if not _same(real[k], base[k])} == {"init", "probes"}
        assert kip["method"] == "kip" and kip["init"] == "noise"
        assert {k for k in kip if not _same(kip[k], base[k])} == {"method", "config", "probes"}


@pytest.mark.usefixtures("private_cache")
def test_every_new_arm_gives_one_score_per_target_model(book_data):
    from ddrepro import get_profile
    from ddrepro.executor import get_executor
    from ddrepro.privacy.arms import ARMS, arm_jobs, arm_phi, arm_results, arm_val_acc
    from ddrepro.privacy.critique import critique_study, lira_masks
    from ddrepro.privacy.per_unit import per_target_auc, per_target_tpr

    prof = get_profile("smoke", {"privacy.lira_targets": 2})
    crit = critique_study(prof, 0)
    study = crit.study
    K, T = prof.privacy.shadows, prof.privacy.lira_targets
    jobs = arm_jobs(prof, crit, seed=0, device="cpu", quiet=True)
    done = dict(zip([j.name for j in jobs], get_executor("local").map(jobs, quiet=True)))
    halves = lira_masks(study)[:, study.probe_index]
    for arm in ARMS:
        results = arm_results(done, prof, arm)
        phi = arm_phi(results, study.pool.flip_ok)
        assert phi.shape[:2] == (K + T, len(study.probe_index)) and torch.isfinite(phi).all()
        aucs = per_target_auc(phi, halves, K, global_variance=True)
        tprs = per_target_tpr(phi, halves, K, 0.01, global_variance=True)
        assert aucs.shape == tprs.shape == (T,), arm
        assert ((aucs >= 0) & (aucs <= 1)).all() and ((tprs >= 0) & (tprs <= 1)).all()
        val = arm_val_acc(results, crit.val)
        assert val.shape == (K + T,) and ((val >= 0) & (val <= 1)).all()
        # the victims are not all the same network: the arms train on different halves / seeds
        assert len({tuple(r.probes["pool"]["phi"].flatten().tolist()) for r in results}) == K + T
    # real initialisation copies images of the model's own half, noise initialisation copies none
    syn = done["lira-dm-real/target0"][0]
    half = study.pool.source_index[lira_masks(study)[K]]
    assert syn.meta["init_indices"].numel() > 0 and torch.isin(syn.meta["init_indices"], half).all()
    assert done["lira-kip/target0"][0].meta.get("init_indices") is None


def test_arm_arguments_are_checked(book_data):
    from ddrepro import get_profile
    from ddrepro.privacy.arms import arm_kwargs, full_members
    from ddrepro.privacy.critique import critique_study

    prof = get_profile("smoke")
    crit = critique_study(prof, 0)
    with pytest.raises(ValueError, match="arm"):
        arm_kwargs(prof, crit, "dsa", device="cpu", quiet=True)
    kw = arm_kwargs(prof, crit, "full", device="cpu", quiet=True)
    with pytest.raises(ValueError, match="bool mask"):
        full_members(**kw, subset=torch.ones(3, dtype=torch.bool), seed=0)


def test_lira_uses_the_packages_one_mad_constant():
    from ddrepro.filtering import MAD_TO_SD
    from ddrepro.privacy import lira
    from scipy import stats

    assert lira.MAD_TO_STD is MAD_TO_SD
    assert MAD_TO_SD == pytest.approx(1 / stats.norm.ppf(0.75), rel=1e-4)


# -- the DP bound as a row ----------------------------------------------------------------------

def test_tpr_bound_known_values_and_saturation():
    assert tpr_bound(1.0, 0.01, 1e-5) == pytest.approx(math.e * 0.01 + 1e-5)
    assert tpr_bound(0.5, 0.0, 1e-5) == pytest.approx(1e-5)
    assert tpr_bound(16.0, 0.01, 1e-5) == 1.0
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match="epsilon"):
            tpr_bound(bad, 0.01, 1e-5)
    with pytest.raises(ValueError, match="fpr"):
        tpr_bound(1.0, 1.5, 1e-5)


def _judge(tprs, eps=1.0, fpr=0.01, delta=1e-5):
    criterion = criteria_table(CRITERIA)["crit_dp_bound"]
    excess, bound, can_fail = bound_excess(tprs, eps, fpr, delta)
    card = Scorecard("test", "smoke")
    row = card.judge("bound", "theorem", excess, criterion, key=f"crit_dp_bound@{eps:g}", checked=can_fail)
    return row.verdict, excess, bound


def test_the_bound_row_fails_on_a_violation_and_passes_on_a_compliant_run():
    # eps 1 at 1 % FPR: the bound is e * 1 % + delta = 2.72 %
    verdict, excess, bound = _judge([0.30, 0.35, 0.28, 0.33, 0.31])   # far above: a broken accountant
    assert bound == pytest.approx(100 * (math.e * 0.01 + 1e-5))
    assert excess.low > 0 and verdict == "not reproduced"
    verdict, excess, _ = _judge([0.010, 0.012, 0.008, 0.011, 0.009])  # near chance, well under
    assert excess.high < 0 and verdict == "reproduced"


def test_the_bound_row_reads_the_upper_end_and_a_too_small_run_is_inconclusive():
    # the mean TPR (1.5 %) is under the bound, but two targets leave the upper end above it
    verdict, excess, _ = _judge([0.0, 0.03])
    assert excess.point < 0 < excess.high and verdict == "inconclusive"
    verdict, excess, _ = _judge([0.01])          # one target: no interval at all
    assert excess.n == 1 and verdict == "inconclusive"


def test_a_bound_of_one_hundred_percent_cannot_fail_and_is_not_checked():
    excess, bound, can_fail = bound_excess([1.0, 1.0, 0.9], 16.0, 0.01, 1e-5)
    assert bound == 100.0 and not can_fail  # TPR <= 100 % always: a row that could not fail
    verdict, _, _ = _judge([1.0, 0.9, 0.95], eps=16.0)
    assert verdict == "not checked"
    with pytest.raises(ValueError, match="tprs"):
        bound_excess([1.2], 1.0, 0.01, 1e-5)
