"""Table 1's comparison members and its placebo (ddrepro.privacy.table1, via membership): known answers on toys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ddrepro.condense import condense
from ddrepro.privacy import membership, table1
from ddrepro.privacy.membership import halves, init_attack, placebo_indices, probe_rows
from ddrepro.synthetic import SyntheticSet

from helpers import toy_image_data

pytestmark = pytest.mark.usefixtures("private_cache")


def sorted_pool(classes=4, per_class=20):
    """A pool sorted by class, as the study's pool is (``subset_per_class``)."""
    data = toy_image_data(n_per_class=per_class, classes=classes, shape=(1, 4, 4), seed=2)
    return data.take(torch.argsort(data.labels, stable=True))


def fake_result(members, rows):
    """A victim whose loss on a probed row is that row's root index, so every loss names its image."""
    return SimpleNamespace(probes={"members": {"loss": members.source_index[rows].float()[None]},
                                   "nonmembers": {"loss": torch.zeros(1, 4)}})


def test_comparison_members_match_the_initialisation_images_classes(monkeypatch):
    """The old code compared with the first probed members of a class-sorted pool (mostly class
    0); the comparison members must have the initialisation images' class mix, drawn at random."""
    members, _ = halves(sorted_pool(), seed=0)
    init = placebo_indices(members, 2, seed=3)  # 2 per class, as a real initialisation draws them
    syn = SyntheticSet(torch.zeros(8, 1, 4, 4), torch.arange(4).repeat_interleave(2), (0.0,), (1.0,),
                       meta={"init_indices": init})
    rows = probe_rows(members, syn, n=10, seed=0)
    seen = []
    monkeypatch.setattr(table1, "loss_threshold_attack",
                        lambda a, b, **kw: seen.append((a, b)))
    label_of = dict(zip(members.source_index.tolist(), members.labels.tolist()))
    drawn = []
    for seed in range(4):
        init_attack(syn, fake_result(members, rows), rows, members, seed=seed)
        init_l, other_l = seen[-1]
        assert sorted(init_l.long().tolist()) == sorted(init.tolist())
        assert not set(other_l.long().tolist()) & set(init.tolist())
        assert torch.bincount(torch.tensor([label_of[int(i)] for i in other_l]), minlength=4).tolist() \
            == [2, 2, 2, 2]
        drawn.append(sorted(other_l.long().tolist()))
    assert len({tuple(d) for d in drawn}) > 1  # drawn at random: the seed changes the members
    init_attack(syn, fake_result(members, rows), rows, members, seed=0)
    assert sorted(seen[-1][1].long().tolist()) == drawn[0]  # ... and is explicit


def test_class_matched_raises_when_a_class_has_too_few_others():
    labels = torch.tensor([0, 0, 1, 1, 1])
    picked = membership.class_matched(labels, torch.tensor([0, 2]), torch.tensor([1, 3, 4]), seed=0)
    assert sorted(labels[picked].tolist()) == [0, 1]
    with pytest.raises(ValueError, match="class 0"):
        membership.class_matched(labels, torch.tensor([0, 1]), torch.tensor([2, 3, 4]), seed=0)
    lenient = membership.class_matched(labels, torch.tensor([0, 1]), torch.tensor([2, 3, 4]), seed=0,
                                       strict=False)
    assert lenient.numel() == 0


def test_placebo_indices_are_the_images_a_real_initialisation_copies():
    members, _ = halves(sorted_pool(classes=3, per_class=8), seed=1)
    for seed in (0, 7):
        syn = condense("random", members, 2, init="real", seed=seed, device="cpu", quiet=True)
        assert torch.equal(placebo_indices(members, 2, seed), syn.meta["init_indices"])


def test_placebo_is_probed_and_attacked_on_a_noise_set():
    """A noise-initialised set probed on another set's initialisation images (``also``): the
    placebo's comparison members are class-matched as well."""
    members, _ = halves(sorted_pool(), seed=0)
    placebo = placebo_indices(members, 2, seed=5)
    noise = SyntheticSet(torch.zeros(8, 1, 4, 4), torch.arange(4).repeat_interleave(2), (0.0,), (1.0,),
                         meta={})
    rows = probe_rows(members, noise, n=2, seed=0, also=placebo)
    assert set(placebo.tolist()) <= set(members.source_index[rows].tolist())
    result = fake_result(members, rows)
    # the placebo images at loss 0 and every other member at 1: perfectly separable
    is_placebo = torch.isin(members.source_index[rows], placebo)
    result.probes["members"]["loss"] = (~is_placebo).float()[None]
    assert init_attack(noise, result, rows, members, seed=0, init_indices=placebo).advantage == 1.0
    with pytest.raises(ValueError, match="initialisation image"):
        init_attack(noise, result, rows, members, seed=0)


def test_control_trains_with_the_victims_recipe():
    """The real-data controls go through the victims' recipe; only the number of models differs."""
    import dataclasses

    import ddrepro

    prof = ddrepro.get_profile("smoke", {})
    ctrl, victim = membership.control_eval(prof), membership.victim_eval(prof)
    assert ctrl.n_models == prof.privacy.shadows + prof.privacy.lira_targets
    assert dataclasses.replace(ctrl, n_models=victim.n_models) == victim
    assert membership.control_eval(prof, n_models=7).n_models == 7


def test_nearest_distance_is_per_class_and_zero_for_a_copy():
    from ddrepro.privacy.direct import nearest_distance

    syn = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    syn_labels = torch.tensor([0, 1])
    cand = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    d = nearest_distance(cand, torch.tensor([0, 0, 1]), syn, syn_labels)
    assert torch.allclose(d, torch.tensor([0.0, 1.0, 9.0], dtype=torch.float64))  # class 1: to (10, 0)
    with pytest.raises(ValueError, match="no synthetic image"):
        nearest_distance(cand, torch.tensor([0, 2, 1]), syn, syn_labels)


def test_direct_auc_finds_copied_members_and_not_fresh_draws():
    """A set that copied its members puts them at distance 0 (AUC 1); a set of fresh draws from
    the same distribution cannot tell members from non-members (AUC near 1/2)."""
    from ddrepro.config import NetConfig
    from ddrepro.privacy.direct import direct_auc, random_features

    data = toy_image_data(n_per_class=200, classes=2, shape=(1, 8, 8), seed=4)
    members, nonmembers = halves(data, seed=0)
    copied = SyntheticSet(members.images[:40], members.labels[:40], (0.0,), (1.0,))
    embed = random_features(NetConfig(width=8, depth=2), (1, 8, 8), 2, seed=0)
    assert direct_auc(copied, members.take(torch.arange(40)), nonmembers) == 1.0
    assert direct_auc(copied, members.take(torch.arange(40)), nonmembers, embed) == 1.0
    fresh = toy_image_data(n_per_class=20, classes=2, shape=(1, 8, 8), seed=9)
    fresh_set = SyntheticSet(fresh.images, fresh.labels, (0.0,), (1.0,))
    assert abs(direct_auc(fresh_set, members, nonmembers) - 0.5) < 0.1
    # the feature space is fixed by its seed
    x = data.images[:5]
    assert torch.equal(embed(x), random_features(NetConfig(width=8, depth=2), (1, 8, 8), 2, seed=0)(x))
