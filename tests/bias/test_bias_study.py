"""Chapter 4's cells and grids: job names, shared arguments, the colour-op switch, the full-set
control's recipe and choice, per-seed redraws, group and worst-class accuracies, baselines."""

from __future__ import annotations

import pytest
import torch

from ddrepro import get_profile
from ddrepro.bias.grids import cmnist_cells, shortcut_cells
from ddrepro.bias.study import (condenser_eval_config, full_eval_config, group_accuracies,
                                group_balanced, group_weights, paper_decay_epochs, split_ids,
                                with_cells, without_colour)
from ddrepro.config import AugConfig
from ddrepro.data import ImageData
from ddrepro.evaluate import EvalResult
from ddrepro.grids import GRIDS
from ddrepro.tuning import choose


def test_without_colour_drops_only_the_colour_op():
    aug = without_colour(AugConfig())
    assert "color" not in aug.strategy.split("_")
    assert set(aug.strategy.split("_")) == set(AugConfig().strategy.split("_")) - {"color"}


def test_full_set_recipe_is_the_papers():
    """Sec. 4.2: 150 epochs, SGD lr 0.01 x0.1 at epochs 50 and 100, batch 256, wd 5e-4, momentum 0.9."""
    recipe = full_eval_config(get_profile("paper"))
    assert recipe.epochs == 150 and recipe.decay_epochs == (50, 100)
    assert (recipe.lr, recipe.batch_size, recipe.weight_decay, recipe.momentum) == (0.01, 256, 5e-4, 0.9)
    # the same proportions at any epoch count; decays outside [1, epochs) are dropped
    assert paper_decay_epochs(50) == (17, 33) and paper_decay_epochs(2) == (1,)
    assert paper_decay_epochs(1) == ()
    cpu = get_profile("cpu")
    assert full_eval_config(cpu, 25).decay_epochs == (8, 17)
    # the control is augmented as the synthetic sets are evaluated (DSA), one network per seed
    assert full_eval_config(cpu).augment == cpu.eval.augment == "dsa"
    assert full_eval_config(cpu).n_models == 1 and cpu.bias.full_seeds >= 3
    with pytest.raises(ValueError, match="full_augment"):
        get_profile("cpu", {"bias.full_augment": "dc"})


def test_dc_is_evaluated_under_its_own_protocol():
    prof = get_profile("paper")
    dc = condenser_eval_config(prof, "dc")
    assert dc.augment == "dc" and dc.epochs == prof.eval.epochs  # DC's MNIST protocol (dc_protocol)
    assert condenser_eval_config(prof, "dm") == condenser_eval_config(prof, "dsa") == prof.eval


def cells_result(acc: dict[int, list[float]]) -> EvalResult:
    groups = {str(k): torch.tensor(v) for k, v in acc.items()}
    return EvalResult.from_accs(torch.tensor([0.5, 0.5]), 1.0, {}, groups=groups)


def toy_test(counts: dict[int, int]) -> ImageData:
    """A test set whose (class, aligned) cells hold ``counts[cell]`` images each (3 classes)."""
    labels, aligned = [], []
    for cell, n in counts.items():
        labels += [cell // 2] * n
        aligned += [bool(cell % 2)] * n
    n = len(labels)
    data = ImageData(torch.zeros(n, 1, 2, 2), torch.tensor(labels), "toy", "test", (0.0,), (1.0,),
                     ("a", "b", "c"), flip_ok=False, attrs={"aligned": torch.tensor(aligned)})
    return with_cells(data)


def test_group_accuracies_read_cells_with_counts_and_worst_class():
    # cells 2c (conflicting) and 2c + 1 (aligned) of classes 0, 1, 2; two networks
    test = toy_test({0: 10, 1: 5, 2: 30, 3: 5, 4: 10, 5: 10})
    result = cells_result({0: [0.2, 0.4], 1: [1.0, 1.0], 2: [0.8, 0.6], 3: [0.6, 0.8],
                           4: [0.5, 0.5], 5: [1.0, 0.8]})
    acc = group_accuracies(result, test)
    # conflicting: per network (10*.2 + 30*.8 + 10*.5) / 50 = 0.62 and (4 + 18 + 5) / 50 = 0.54
    assert acc["conflicting"] == pytest.approx(58.0)
    # aligned: (5*1 + 5*.6 + 10*1) / 20 = 0.9 and (5 + 4 + 8) / 20 = 0.85
    assert acc["aligned"] == pytest.approx(87.5)
    # worst class on conflicting images: per network min(.2, .8, .5) = .2 and min(.4, .6, .5) = .4
    assert acc["worst class"] == pytest.approx(30.0)
    assert acc["balanced"] == pytest.approx(0.1 * 87.5 + 0.9 * 58.0)
    with pytest.raises(ValueError, match="aligned and conflicting"):
        group_accuracies(cells_result({0: [0.1, 0.1]}), toy_test({0: 3}))


def toy_biased(bias: list[int], labels: list[int]) -> ImageData:
    n = len(labels)
    lab, b = torch.tensor(labels), torch.tensor(bias)
    return ImageData(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(),
                     lab, "toy", "train", (0.0,), (1.0,), ("a", "b"), flip_ok=False,
                     attrs={"bias": b, "aligned": b == lab})


def test_group_weights_give_every_group_the_same_weight():
    # class 0: 8 aligned, 2 conflicting (colour 1); class 1: 6 aligned, 4 conflicting (colour 0)
    data = toy_biased([0] * 8 + [1] * 2 + [1] * 6 + [0] * 4, [0] * 10 + [1] * 10)
    w = group_weights(data)
    for c in (0, 1):
        rows = data.labels == c
        assert w[rows].mean() == pytest.approx(1.0)
        totals = [float(w[rows & (data.attrs["bias"] == b)].sum()) for b in (0, 1)]
        assert totals[0] == pytest.approx(totals[1])
    balanced = group_balanced(data, seed=0)
    assert len(balanced) == len(data) and balanced.weights is None
    # 2 conflicting rows of class 0 are drawn about half the time (10 draws: at least once)
    assert int((balanced.labels == 0).sum()) == 10 and bool((balanced.attrs["bias"][balanced.labels == 0] == 1).any())


def test_choice_ids_tell_splits_apart():
    train, test = toy_biased([0, 1], [0, 1]), toy_biased([0, 1], [0, 1])
    test = ImageData(test.images, test.labels, "toy", "test", (0.0,), (1.0,), ("a", "b"), flip_ok=False)
    choice = choose("epochs", {1: 0.5, 2: 0.7}, chosen_on="validation", rows=split_ids(train))
    choice.check_disjoint(split_ids(test))  # same source indices, other split: no overlap
    with pytest.raises(ValueError, match="chosen on"):
        choice.check_disjoint(split_ids(train))


def test_cpu_cells_cover_the_issue():
    prof = get_profile("cpu")
    names = [cell[0] for cell in cmnist_cells(prof)]
    assert len(names) == len(set(names))
    assert {f"dm/r{r:g}/s4" for r in (0, 10, 50, 80, 95, 100)} | {"dsa/r80/s4", "dsa/r95/s4"} == set(names)
    more = [cell[0] for cell in shortcut_cells(prof)]
    assert len(more) == len(set(more))
    assert {"dsa-nocolour/r95/s4", "dm-nocolour/r95/s4", "dm/r0/s3", "dm/r100/s3"} <= set(more)
    # a cell in both grids has the same arguments in both
    shared = {c[0]: c for c in cmnist_cells(prof)}
    assert all(shared[c[0]] == c for c in shortcut_cells(prof) if c[0] in shared)
    assert prof.bias.ipc == 10 and prof.bias.full_epoch_candidates
    assert prof.bias.repeats >= 3 and set(prof.bias.debias_ratios) == {80.0, 95.0}


def test_grids_share_cells_and_redraw_per_seed(book_data):
    prof = get_profile("smoke")
    cmnist = {job.name: job for job in GRIDS.get("cmnist")(prof, seed=0, device="cpu", quiet=True)}
    debiased = {job.name: job for job in GRIDS.get("debiased")(prof, seed=0, device="cpu", quiet=True)}
    # Table 1's DM cell runs every seed of the debiasing study's plain DM, argument for argument
    assert prof.bias.repeats >= 2
    for k in range(prof.bias.repeats):
        a, b = cmnist[f"dm/r95/s4/k{k}"].kwargs, debiased[f"dm/r95/k{k}"].kwargs
        assert a["real"].digest() == b["real"].digest() and a["test"].digest() == b["test"].digest()
        assert {k: v for k, v in a.items() if k not in ("real", "test")} == \
            {k: v for k, v in b.items() if k not in ("real", "test")}
    assert "debias" not in b and debiased["dm-debiased/r95/k0"].kwargs["debias"] is not None
    # Table 1's seeds redraw the training set and keep the test split
    t0, t1 = cmnist["dsa/r95/s4/k0"].kwargs, cmnist["dsa/r95/s4/k1"].kwargs
    assert t0["real"].digest() != t1["real"].digest() and t0["test"].digest() == t1["test"].digest()
    assert (t0["seed"], t1["seed"]) == (0, 1)
    # every seed redraws the biased training set: other images, other conflicting ones
    r0, r1 = debiased["dm/r95/k0"].kwargs["real"], debiased["dm/r95/k1"].kwargs["real"]
    assert r0.digest() != r1.digest() and not torch.equal(r0.source_index, r1.source_index)
    assert debiased["dm/r95/k1"].kwargs["seed"] == 1
    # the full-set control: one job per seed, shared by the grids, on its own redrawn set, chosen
    # on a validation split of training images outside its training subset
    for k in range(prof.bias.full_seeds):
        full = debiased[f"full/r95/s4/k{k}"].kwargs
        assert cmnist[f"full/r95/s4/k{k}"].kwargs["real"].digest() == full["real"].digest()
        assert full["real"].digest() == debiased[f"dm/r95/k{k}"].kwargs["real"].digest()
        assert not bool(torch.isin(full["val"].source_index, full["real"].source_index).any())
        assert full["val"].split == "train" and full["test"].split == "test"
        assert debiased[f"full-balanced/r95/s4/k{k}"].kwargs["balanced"] is True
    # the baselines on the same seed's set: the random subset DM starts from, DM with true weights
    assert debiased["random/r95/k0"].kwargs["method"] == "random"
    assert debiased["dm-oracle/r95/k0"].kwargs["oracle"] is True
    assert debiased["dm-resampled/r95/k0"].kwargs["debias"].sampling == "resample"
    assert "weighted-subset/r95/k0" in debiased


def test_debiased_grid_reweights_each_listed_method(book_data):
    prof = get_profile("smoke", {"bias.debias_methods": ["dm", "dsa"]})
    jobs = {job.name: job for job in GRIDS.get("debiased")(prof, seed=0, device="cpu", quiet=True)}
    for method in ("dm", "dsa"):
        plain, reweighted = jobs[f"{method}/r95/k0"].kwargs, jobs[f"{method}-debiased/r95/k0"].kwargs
        assert plain["method"] == reweighted["method"] == method
        assert "debias" not in plain and reweighted["debias"] is not None
        assert plain["config"] == prof.condenser_config(method)
    with pytest.raises(ValueError, match="debias_methods"):
        get_profile("smoke", {"bias.debias_methods": ["kip"]})
    with pytest.raises(ValueError, match="debias_samplings"):
        get_profile("smoke", {"bias.debias_samplings": ["bootstrap"]})


def test_colour_op_two_by_two_separates_distillation_from_evaluation(book_data):
    prof = get_profile("smoke")
    jobs = {job.name: job.kwargs for job in GRIDS.get("shortcut")(prof, seed=0, device="cpu", quiet=True)}
    plain, full = without_colour(prof.aug), prof.aug
    cells = {"dm/r95/s4": (full, full), "dm-nocolour/r95/s4": (plain, plain),
             "dm-distil-nocolour/r95/s4": (plain, full), "dm-eval-nocolour/r95/s4": (full, plain)}
    for k in range(prof.bias.repeats):
        for name, (distil, evaluate) in cells.items():
            kwargs = jobs[f"{name}/k{k}"]
            assert kwargs["aug_cfg"] == distil and kwargs["seed"] == k
            assert (kwargs.get("eval_aug_cfg") or kwargs["aug_cfg"]) == evaluate
        # the four cells of a seed distil the same biased set, redrawn per seed
        assert len({jobs[f"{name}/k{k}"]["real"].digest() for name in cells}) == 1
    assert jobs["dm/r95/s4/k0"]["real"].digest() != jobs["dm/r95/s4/k1"]["real"].digest()
    assert "dsa-eval-nocolour/r95/s4/k0" in jobs and "dsa-distil-nocolour/r95/s4/k0" in jobs
