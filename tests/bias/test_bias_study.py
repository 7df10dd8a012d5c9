"""Chapter 4's cells and grids: job names, shared arguments, the colour-op switch, group accuracies."""

from __future__ import annotations

import pytest
import torch

from ddrepro import get_profile
from ddrepro.bias.study import full_eval_config, group_accuracies, without_colour
from ddrepro.config import AugConfig
from ddrepro.evaluate import EvalResult
from ddrepro.grids import GRIDS
from ddrepro.bias.grids import cmnist_cells, shortcut_cells


def test_without_colour_drops_only_the_colour_op():
    aug = without_colour(AugConfig())
    assert "color" not in aug.strategy.split("_")
    assert set(aug.strategy.split("_")) == set(AugConfig().strategy.split("_")) - {"color"}


def test_group_accuracies_reads_conflicting_and_aligned():
    result = EvalResult.from_accs(torch.tensor([0.5, 0.7]), 1.0, {},
                                  groups={"0": torch.tensor([0.2, 0.4]), "1": torch.tensor([1.0, 0.8])})
    acc = group_accuracies(result)
    assert acc["conflicting"] == pytest.approx(30.0) and acc["aligned"] == pytest.approx(90.0)
    assert acc["balanced"] == pytest.approx(0.1 * 90 + 0.9 * 30)


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
    assert full_eval_config(prof).augment == "none" and prof.bias.ipc == 10
    assert prof.bias.repeats >= 3 and set(prof.bias.debias_ratios) == {80.0, 95.0}


def test_grids_share_cells(book_data):
    prof = get_profile("smoke")
    cmnist = {job.name: job for job in GRIDS.get("cmnist")(prof, seed=0, device="cpu", quiet=True)}
    debiased = {job.name: job for job in GRIDS.get("debiased")(prof, seed=0, device="cpu", quiet=True)}
    assert "full/r95/s4" in cmnist and "full/r95" in debiased
    # the plain DM job of the debiasing study is Table 1's DM cell, argument for argument
    a, b = cmnist["dm/r95/s4"].kwargs, debiased["dm/r95/k0"].kwargs
    assert a["real"].digest() == b["real"].digest() and a["test"].digest() == b["test"].digest()
    assert b["debias"] is None and debiased["dm-debiased/r95/k0"].kwargs["debias"] is not None
    assert {k: v for k, v in a.items() if k not in ("real", "test")} == \
        {k: v for k, v in b.items() if k not in ("real", "test", "debias")}


def test_debiased_grid_reweights_each_listed_method(book_data):
    prof = get_profile("smoke", {"bias.debias_methods": ["dm", "dsa"]})
    jobs = {job.name: job for job in GRIDS.get("debiased")(prof, seed=0, device="cpu", quiet=True)}
    for method in ("dm", "dsa"):
        plain, reweighted = jobs[f"{method}/r95/k0"].kwargs, jobs[f"{method}-debiased/r95/k0"].kwargs
        assert plain["method"] == reweighted["method"] == method
        assert plain["debias"] is None and reweighted["debias"] is not None
        assert plain["config"] == prof.condenser_config(method)
    with pytest.raises(ValueError, match="debias_methods"):
        get_profile("smoke", {"bias.debias_methods": ["kip"]})
