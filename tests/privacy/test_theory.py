"""Chapter 2's measurements (ddrepro.privacy.theory, ddrepro.privacy.membership): known answers on toys."""

from __future__ import annotations

import pytest
import torch

from ddrepro.condense import condense
from ddrepro.config import NetConfig
from ddrepro.privacy.membership import PAPER_DM_LR, halves, paper_lr
from ddrepro.privacy.theory import decomposition, leave_one_out, span_of, theory_dm_config

from helpers import toy_image_data

D, K = 16, 4
LINEAR = NetConfig(name="linear", width=K)


pytestmark = pytest.mark.usefixtures("private_cache")


def toy():
    """3 classes x 6 images of 1x4x4: span(T_c) has dimension <= 6 < d = 16 (Assumption 4.1)."""
    return toy_image_data(n_per_class=6, classes=3, shape=(1, 4, 4), seed=1)


def linear_dm(real, ipc, init, steps=300, net=LINEAR, seed=0):
    cfg = theory_dm_config(ipc, D, net.width, steps, batch_real=6)
    return condense("dm", real, ipc, config=cfg, init=init, seed=seed, net_cfg=net,
                    snapshot_every=steps, device="cpu", quiet=True)


def test_span_rank_and_orthogonal_part():
    gen = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 10, generator=gen)
    points = torch.randn(20, 3, generator=gen) @ basis
    span = span_of(points)
    assert span.rank == 3 and span.dim == 10
    assert span.outside(points).norm() < 1e-6 * points.norm()  # float32 points
    other = torch.randn(5, 10, generator=gen)
    assert torch.allclose(span.outside(other) @ basis.double().T, torch.zeros(5, 3, dtype=torch.float64),
                          atol=1e-5)
    with pytest.raises(ValueError, match="rtol"):
        span_of(points, rtol=0.0)


@pytest.mark.parametrize("init", ["real", "noise"])
def test_linear_dm_matches_the_barycentres_prop_4_3(init):
    real = toy()
    syn = linear_dm(real, 3, init)
    table = decomposition(syn, real)
    assert (table["rank"] <= 6).all() and (table["d"] == D).all()
    assert table["bary_rel"].max() < 1e-4                               # Eq. 10
    assert table["sum_outside_rel"].max() < 1e-4                        # Eq. 11
    if init == "noise":
        assert table["outside_before"].min() > 0.5                       # not vacuous
    else:
        assert table["outside_before"].max() < 1e-5  # real images have no part outside span(T)


def test_one_synthetic_image_becomes_the_mean_of_T():
    real = toy()
    syn = linear_dm(real, 1, "noise")
    for c in range(3):
        mean = real.images[real.labels == c].mean(0)
        assert torch.allclose(syn.images[syn.labels == c][0], mean, atol=1e-4)


def test_real_init_moves_by_the_barycentre_gap_only_eq_12():
    table = decomposition(linear_dm(toy(), 3, "real"), toy())
    assert table["eq12_err"].max() < 1e-3
    assert (table["to_init"] > 0).all()


def test_noise_init_keeps_its_part_outside_span_eq_29():
    table = decomposition(linear_dm(toy(), 3, "noise"), toy())
    assert table["eq29_err"].max() < 1e-3
    # what is kept is the initial noise minus its mean: the norms stay of the same size
    ratio = table["outside_after"] / table["outside_before"]
    assert ratio.between(0.3, 1.7).all()


def test_a_relu_extractor_does_not_satisfy_eq_12_exactly():
    # the common-shift invariant is the linear extractor's; the test above could not fail
    # silently if the decomposition measured nothing.
    relu = NetConfig(name="relu2", width=K)
    table = decomposition(linear_dm(toy(), 3, "real", net=relu), toy())
    assert table["eq12_err"].max() > 1e-2


def test_leave_one_out_changes_only_its_class_by_the_mean_shift_eq_35():
    real = toy()
    steps = 300
    cfg = theory_dm_config(2, D, K, steps, batch_real=6)
    loo = leave_one_out("dm", real, 2, cls=1, seed=0, config=cfg, init="noise", net_cfg=LINEAR,
                        device="cpu", quiet=True)
    assert loo.members == 6 and loo.change.shape == (2,)
    assert loo.others == 0.0  # coupled runs: every other class is bit-for-bit the same
    assert torch.allclose(loo.change, torch.full((2,), loo.linear, dtype=torch.float64), rtol=1e-3)
    assert loo.linear <= loo.bound
    # real init: the removed image is never one that initialised S
    loo = leave_one_out("dm", real, 2, cls=1, seed=0, config=cfg, init="real", net_cfg=LINEAR,
                        device="cpu", quiet=True)
    syn = condense("dm", real.with_weights(torch.ones(len(real))), 2, config=cfg, init="real",
                   seed=0, net_cfg=LINEAR, device="cpu", quiet=True)
    assert loo.removed not in syn.meta["init_indices"].tolist()
    with pytest.raises(ValueError, match="cls"):
        leave_one_out("dm", real, 2, cls=7, config=cfg, net_cfg=LINEAR)


def test_paper_learning_rates_and_halves():
    assert paper_lr(PAPER_DM_LR, 0.01) == 50.0 and paper_lr(PAPER_DM_LR, 0.05) == 100.0
    with pytest.raises(ValueError, match="r_ipc"):
        paper_lr(PAPER_DM_LR, 0.0)
    pool = toy()
    members, others = halves(pool, seed=3)
    assert len(members) == len(others) == 9
    assert not set(members.source_index.tolist()) & set(others.source_index.tolist())
    assert torch.bincount(members.labels).tolist() == [3, 3, 3]


def test_claims_grid_fills_what_the_notebooks_lira_calls_read(tmp_path, book_data):
    """The grid's LiRA jobs (membership.shadow) and the notebook's condense_many + evaluate_many
    compute the same artifacts: after the jobs, the notebook's calls write nothing new."""
    from ddrepro import get_profile
    from ddrepro.privacy import membership
    from ddrepro.condense import condense_many
    from ddrepro.evaluate import evaluate_many
    from ddrepro.executor import LocalExecutor
    from ddrepro.grids import GRIDS

    prof = get_profile("smoke")
    jobs = [j for j in GRIDS.get("claims")(prof, seed=0, device="auto", quiet=True)
            if j.name.startswith("lira/")]
    assert [j.name for j in jobs] == ["lira/shadow0", "lira/shadow1", "lira/target0"]
    LocalExecutor().map(jobs, quiet=True)
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.pt")}
    assert written

    study = membership.membership_study(prof, 0)
    shared = membership.lira_kwargs(prof, study, device="cpu", quiet=True)
    shadow_seeds, target_seeds = membership.lira_seeds(prof, 0)
    masks = torch.cat([study.shadow_masks, study.target_masks])
    sets = condense_many("dm", study.pool, shared["ipc"], subsets=list(masks),
                         seeds=shadow_seeds + target_seeds, quiet=True, config=shared["config"],
                         init="noise", net_cfg=prof.net, aug_cfg=prof.aug, device="cpu")
    evaluate_many(sets, study.test, seeds=shadow_seeds + target_seeds, net_cfg=prof.net,
                  eval_cfg=shared["eval_cfg"], aug_cfg=prof.aug, flip=study.pool.flip_ok,
                  probes=shared["probes"], probe_flip=study.pool.flip_ok, device="cpu", quiet=True)
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.pt")} == written
    # each pool image is IN for exactly half of the shadows; targets are independent halves
    assert (study.shadow_masks.sum(0) == prof.privacy.shadows // 2).all()
    assert (torch.bincount(study.pool.labels[study.target_masks[0]]) == study.members_per_class).all()


def test_probe_rows_query_every_initialisation_image_and_2n_others():
    from ddrepro.privacy.membership import probe_rows
    from ddrepro.synthetic import SyntheticSet

    members, _ = halves(toy(), seed=0)
    init = members.source_index[[0, 4]]
    syn = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), (0.0,), (1.0,),
                       meta={"init_indices": init})
    rows = probe_rows(members, syn, n=2, seed=0)
    assert rows.tolist() == sorted(set(rows.tolist())) and len(rows) >= 2 + 4
    assert {0, 4} <= set(rows.tolist())
    # besides 2n random others, as many other members of each initialisation image's class
    others = rows[~torch.isin(rows, torch.tensor([0, 4]))]
    for c in members.labels[[0, 4]].tolist():
        assert (members.labels[others] == c).sum() >= (members.labels[[0, 4]] == c).sum()
    assert torch.equal(rows, probe_rows(members, syn, n=2, seed=0))
    noise = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), (0.0,), (1.0,), meta={})
    assert len(probe_rows(members, noise, n=3, seed=1)) == 6


def test_probe_losses_single_out_the_initialisation_images_and_a_placebo():
    from types import SimpleNamespace

    from ddrepro.privacy.membership import init_attack, probe_losses, probe_rows
    from ddrepro.synthetic import SyntheticSet

    members, _ = halves(toy(), seed=0)
    init = members.source_index[[0, 4]]
    syn = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), (0.0,), (1.0,),
                       meta={"init_indices": init})
    placebo = members.source_index[[1, 2]]  # classes 2 and 0: each has other members to match
    rows = probe_rows(members, syn, n=2, seed=0, also=placebo)
    assert {0, 1, 2, 4} <= set(rows.tolist()) and rows.tolist() == sorted(set(rows.tolist()))
    # the victim's loss on each probed row: its root index, so every group can be recognised
    loss = members.source_index[rows].float()
    result = SimpleNamespace(probes={"members": {"loss": loss[None]},
                                     "nonmembers": {"loss": torch.full((1, 4), -1.0)}})
    init_l, other_l, non_l = probe_losses(syn, result, rows, members)
    assert sorted(init_l.tolist()) == sorted(init.float().tolist())
    assert len(init_l) + len(other_l) == len(rows) and (non_l == -1).all()
    p_l, rest, _ = probe_losses(syn, result, rows, members, init_indices=placebo)
    assert sorted(p_l.tolist()) == sorted(placebo.float().tolist())
    # placebo images with the lowest losses are perfectly separable from the other members
    result.probes["members"]["loss"] = torch.where(torch.isin(members.source_index[rows], placebo),
                                                   0.0, 1.0)[None]
    attack = init_attack(syn, result, rows, members, seed=0, init_indices=placebo)
    assert attack.advantage == 1.0
    with pytest.raises(ValueError, match="probed rows"):
        probe_losses(syn, result, rows[:-1], members)
    with pytest.raises(ValueError, match="initialisation image"):
        init_attack(syn, result, rows, members, seed=0, init_indices=placebo[:1])


def test_zca_views_whiten_all_three_sets_with_the_members_fit(tmp_path, monkeypatch):
    """KIP with ZCA: one whitening, fitted on the members only; rows and root indices kept."""
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    from ddrepro.data.zca import fit_zca
    from ddrepro.privacy.membership import zca_views

    pool = toy_image_data(n_per_class=12, classes=2, seed=3)
    members, nonmembers = halves(pool, seed=0)
    z_members, z_non, z_test = zca_views(members, nonmembers, pool)
    whitening = fit_zca(members.images)
    for raw, view in ((members, z_members), (nonmembers, z_non), (pool, z_test)):
        assert torch.equal(view.labels, raw.labels) and torch.equal(view.source_index, raw.source_index)
        assert torch.allclose(view.images, whitening.apply(raw.images), atol=1e-5)
