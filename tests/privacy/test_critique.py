"""Chapter 2's critique (ddrepro.privacy.critique): the baseline's subsets, canaries, statistics, grid."""

from __future__ import annotations

import math

import pytest
import torch

from ddrepro.privacy.critique import (auc_difference, ci_width_by_size, closest, concat,
                                      per_class_subsets, scores_to_separate)

from helpers import toy_image_data


pytestmark = pytest.mark.usefixtures("private_cache")


def test_per_class_subsets_take_n_of_each_class_from_each_half():
    labels = torch.arange(3).repeat(20)
    halves = torch.rand(5, 60, generator=torch.Generator().manual_seed(0)) < 0.5
    halves[:, :12] = True  # >= 4 of each class in every half
    chosen = per_class_subsets(halves, labels, 2, seed=1)
    assert not (chosen & ~halves).any()                      # only the model's own members
    for row in chosen:
        assert torch.bincount(labels[row], minlength=3).tolist() == [2, 2, 2]
    assert torch.equal(chosen, per_class_subsets(halves, labels, 2, seed=1))
    with pytest.raises(ValueError, match="fewer than per_class"):
        per_class_subsets(halves, labels, 30, seed=1)
    with pytest.raises(ValueError, match="per_class"):
        per_class_subsets(halves, labels, 0, seed=1)


def test_concat_is_a_new_root_whose_identity_sees_the_labels():
    a = toy_image_data(n_per_class=4, classes=2, shape=(1, 4, 4), seed=0)
    b = toy_image_data(n_per_class=2, classes=2, shape=(1, 4, 4), seed=1)
    both = concat(a, b, flag=torch.arange(12) >= 8)
    assert len(both) == 12 and torch.equal(both.images[8:], b.images)
    assert both.attrs["flag"].sum() == 4
    relabelled = concat(a, b.__class__(**{**b.__dict__, "labels": 1 - b.labels}))
    assert relabelled.digest() != concat(a, b).digest()
    with pytest.raises(ValueError, match="rows"):
        concat(a, b, flag=torch.zeros(3, dtype=torch.bool))


def test_closest_and_scores_needed_known_answers():
    assert closest({2: 0.4, 5: 0.61, 10: 0.7}, 0.65) == 5
    assert closest({2: 0.5, 4: 0.7}, 0.6) == 2   # a tie goes to the smaller set
    # widths 0.1 and 0.1 at n = 100: half-width of the difference 0.0707; to beat 0.05: 200
    assert scores_to_separate(0.1, 0.1, 100, 0.05) == pytest.approx(200.0)
    assert scores_to_separate(0.1, 0.1, 100, 0.0) == math.inf


def test_auc_difference_is_zero_for_equal_attacks_and_positive_for_a_better_one():
    gen = torch.Generator().manual_seed(0)
    member = torch.rand(600, generator=gen) < 0.5
    noise = torch.randn(600, generator=gen)
    good = noise + 2.0 * member
    d, low, high = auc_difference(noise, member, noise, member, n_bootstrap=200, seed=1)
    assert d == 0 and low <= 0 <= high
    d, low, high = auc_difference(good, member, noise, member, n_bootstrap=200, seed=1)
    assert d > 0.3 and low > 0


def test_ci_width_shrinks_like_one_over_root_n():
    gen = torch.Generator().manual_seed(0)
    member = torch.rand(4000, generator=gen) < 0.5
    scores = torch.randn(4000, generator=gen) + 0.5 * member
    rows = ci_width_by_size(scores, member, [250, 1000, 4000], repeats=4, n_bootstrap=200, seed=0)
    ratio = rows[0]["width"] / rows[1]["width"]
    assert 1.6 < ratio < 2.5                                  # 4x the scores: about half the width
    assert rows[2]["width"] < rows[1]["width"]


def test_canary_study_and_grid_at_smoke(book_data):
    from ddrepro import get_profile
    from ddrepro.privacy.critique import critique_study
    from ddrepro.data import load
    from ddrepro.grids import GRIDS

    prof = get_profile("smoke")
    crit = critique_study(prof, 0)
    cfg = prof.critique
    pool, study = crit.canary_pool, crit.study
    canaries = pool.take(crit.canary_rows)
    assert len(canaries) == cfg.canaries
    # held out: canaries and validation images are never in the study's pool
    used = set(study.pool.source_index.tolist())
    assert not used & set(canaries.source_index.tolist())
    assert not used & set(crit.val.source_index.tolist())
    assert not set(crit.val.source_index.tolist()) & set(canaries.source_index.tolist())
    # exactly the mislabelled canaries carry a label other than their own
    truth = load(prof.privacy.dataset, "train").labels[canaries.source_index]
    wrong = canaries.attrs["mislabelled"]
    assert int(wrong.sum()) == round(cfg.canary_mislabelled * cfg.canaries)
    assert (canaries.labels[wrong] != truth[wrong]).all() and (canaries.labels[~wrong] == truth[~wrong]).all()
    models = cfg.canary_shadows + cfg.canary_targets
    assert (crit.canary_masks.sum(0) == models // 2).all()   # LiRA's balanced halves
    # the critique grid's DM LiRA jobs are the claims grid's, argument for argument
    jobs = GRIDS.get("critique")(prof, seed=0, device="auto", quiet=True)
    claims = {j.name: j for j in GRIDS.get("claims")(prof, seed=0, device="auto", quiet=True)}
    lira = [j for j in jobs if j.name.startswith("lira/")]
    assert len(lira) == prof.privacy.shadows + prof.privacy.lira_targets
    for job in lira:
        other = claims[job.name]
        assert job.fn is other.fn and set(job.kwargs) == set(other.kwargs)
        assert all(torch.equal(v, other.kwargs[k]) if isinstance(v, torch.Tensor) else v == other.kwargs[k]
                   for k, v in job.kwargs.items() if k not in ("pool", "test", "probes"))
    names = {j.name for j in jobs}
    assert {f"baseline/{n}" for n in cfg.baseline_per_class} <= names and "canary/on-T" in names
    assert {"dp/none"} | {f"dp/eps{e:g}" for e in cfg.dp_epsilons} <= names
    # LiRA's options: DM's syntheses as the claims grid draws them (a cache hit), probed on every
    # shifted crop; LiRA on DP-SGD: every model at every epsilon
    shifted = [j for j in jobs if j.name.startswith("lira-shift/")]
    assert len(shifted) == len(lira) and "control-shift" in names
    for job in shifted:
        other = claims[job.name.replace("lira-shift/", "lira/")]
        assert job.fn is other.fn
        assert all(torch.equal(v, other.kwargs[k]) if isinstance(v, torch.Tensor) else v == other.kwargs[k]
                   for k, v in job.kwargs.items() if k not in ("pool", "test", "probes"))
        assert len(job.kwargs["probes"]) == (2 * cfg.query_shift // cfg.query_stride + 1) ** 2
    assert {f"dp-lira/eps{e:g}/model{k}" for e in cfg.dp_epsilons
            for k in range(cfg.dp_lira_models)} <= names


def test_real_subset_lira_models_know_their_own_rows_better():
    from ddrepro.config import AugConfig, EvalConfig, NetConfig
    from ddrepro.privacy.critique import real_subset_lira

    pool = toy_image_data(n_per_class=8, classes=2, shape=(1, 6, 6), seed=3)
    pool = pool.__class__(**{**pool.__dict__, "labels": pool.labels[torch.randperm(16, generator=torch.Generator().manual_seed(0))]})
    member = torch.zeros(2, 16, dtype=torch.bool)
    member[0, :8], member[1, 8:] = True, True              # disjoint halves, labels random: memorise
    out = real_subset_lira(pool=pool, member=member, probes=pool, val=pool,
                           net_cfg=NetConfig(width=8, depth=1), aug_cfg=AugConfig(),
                           eval_cfg=EvalConfig(epochs=150, batch_size=8, n_models=2, augment="none"),
                           seed=0, probe_flip=False, device="cpu", quiet=True)
    phi = out["phi"]
    assert phi.shape == (2, 16) and out["val_acc"].shape == (2,)
    assert phi[0, :8].mean() > phi[0, 8:].mean() and phi[1, 8:].mean() > phi[1, :8].mean()
    with pytest.raises(ValueError, match="bool mask"):
        real_subset_lira(pool=pool, member=member[:1], probes=pool, val=pool,
                         net_cfg=NetConfig(width=8, depth=1), aug_cfg=AugConfig(),
                         eval_cfg=EvalConfig(epochs=1, n_models=1, augment="none"), seed=0,
                         probe_flip=False)


@pytest.mark.parametrize("key,value", [("critique.dp_epsilons", [0.0]), ("critique.dp_epsilons", [-1.0]),
                                       ("critique.dp_delta", 0.0), ("critique.dp_delta", 1.5),
                                       ("critique.canary_shadows", 1), ("critique.baseline_per_class", [5, 2]),
                                       ("critique.canary_mislabelled", 1.5),
                                       ("critique.query_stride", 3), ("critique.dp_lira_models", 2)])
def test_bad_critique_settings_fail_at_construction(key, value):
    from ddrepro import get_profile

    with pytest.raises(ValueError, match=key.split(".")[1]):
        get_profile("cpu", {key: value})
