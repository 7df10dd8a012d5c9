"""The ``ead`` grid: the page's cells are its jobs, Chapter 1's calls where they are shared, MTT
at EAD's gradient evaluations, and the time-and-memory runs at equal batch sizes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from helpers import toy_image_data

import ddrepro
import ddrepro.basics  # noqa: F401  (registers Chapter 1's grid before the entry point is installed)
import ddrepro.effects  # noqa: F401  (registers the grid)
from ddrepro.condense import condense
from ddrepro.condense.ead import EADConfig
from ddrepro.condense.mtt import MTTConfig
from ddrepro.config import AugConfig, EvalConfig, NetConfig
from ddrepro.effects.cells import (COSTED, batch_sizes, cost_cell, distil_cell, equal_batches,
                                   gradient_evaluations, matched_mtt)
from ddrepro.effects.config import EffectsConfig
from ddrepro.effects.grids import METHODS, cell_name, seeds_of
from ddrepro.grids import GRIDS

PAGE = Path(__file__).resolve().parents[2] / "book" / "05_effect_alignment" / "ead.md"
TINY = NetConfig(width=4, depth=1)


def jobs(name: str, prof) -> dict:
    return {j.name: j for j in GRIDS.get(name)(prof, seed=0, device="cpu", quiet=True)}


def same(a, b) -> bool:
    """Equal as artifact keys see them: tensors by value, data sets by digest."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if hasattr(a, "digest") or hasattr(b, "digest"):
        return hasattr(a, "digest") and hasattr(b, "digest") and a.digest() == b.digest()
    return a == b


def test_the_grid_holds_every_cell_the_page_reads(book_data):
    prof = ddrepro.get_profile("smoke")
    grid = jobs("ead", prof)
    seeds = seeds_of(prof, 0)
    assert len(seeds) == prof.effects.seeds
    for name in prof.data.datasets:
        for s in seeds:
            assert {f"{name}/s{s}/expert-ead", f"{name}/s{s}/expert-mtt"} <= grid.keys()
            for ipc in prof.ipcs:
                read = METHODS + ("soft-start", "mtt-matched") + tuple(f"cost-{m}" for m in COSTED)
                for what in read:
                    assert cell_name(name, s, ipc, what) in grid
    # experts come first, so that the condensers find them trained
    names = list(grid)
    n_experts = len(prof.data.datasets) * len(seeds) * 2
    assert all(n.rsplit("/", 1)[-1].startswith("expert-") for n in names[:n_experts])
    assert not any(n.rsplit("/", 1)[-1].startswith("expert-") for n in names[n_experts:])


def test_the_page_runs_the_grid_and_calls_no_cached_function_itself():
    text = PAGE.read_text()
    cells = "\n".join(re.findall(r"```\{code-cell\}\n(.*?)```", text, flags=re.S))
    assert 'grids.GRIDS.get("ead")(prof, seed=seed, device=device, quiet=quiet)' in cells
    for call in ("condense_and_evaluate(", "condense(", "evaluate(", "expert_trajectory(",
                 "train_buffer("):
        assert not re.search(rf"(?<!\w){re.escape(call)}", cells), call


def test_the_shared_cells_are_chapter_one_calls_but_for_the_evaluation_networks(book_data):
    prof = ddrepro.get_profile("cpu", {"effects.eval_models": 5})
    ours, chapter1 = jobs("ead", prof), jobs("does_it_work", prof)
    for name in prof.data.datasets:
        for ipc in prof.ipcs:
            for method in ("random", "herding", "dc", "dsa", "dm"):
                mine, theirs = ours[cell_name(name, 0, ipc, method)], chapter1[f"{name}/{method}/ipc{ipc}"]
                kwargs = dict(mine.kwargs)
                assert kwargs.pop("record_every") is None
                assert kwargs.pop("eval_cfg") == dataclasses.replace(theirs.kwargs["eval_cfg"], n_models=5)
                expected = {k: v for k, v in theirs.kwargs.items() if k != "eval_cfg"}
                assert kwargs.keys() == expected.keys()
                assert all(same(kwargs[k], expected[k]) for k in kwargs), (name, method, ipc)


def test_the_cpu_profile_runs_three_seeds_and_five_evaluation_networks():
    effects = ddrepro.get_profile("cpu").effects
    assert effects.seeds >= 3 and effects.eval_models >= 5
    with pytest.raises(ValueError, match="eval_models"):
        EffectsConfig(eval_models=0)


def test_gradient_evaluations_count_alg1_and_the_unroll():
    ead = EADConfig(t_m=3, batch_real=32, batch_syn=20)
    assert gradient_evaluations("ead", ead, n_syn=100, num_classes=10) == 3 * (2 * 32 + 2 * 20)
    assert gradient_evaluations("ead", ead, n_syn=10, num_classes=10) == 3 * (2 * 32 + 2 * 10)
    mtt = MTTConfig(syn_steps=10, batch_syn=20)
    assert gradient_evaluations("mtt", mtt, n_syn=100, num_classes=10) == 2 * 10 * 20
    assert gradient_evaluations("mtt", dataclasses.replace(mtt, batch_syn=None), 30, 10) == 2 * 10 * 30
    with pytest.raises(ValueError, match="no gradient count"):
        gradient_evaluations("dc", ead, 10, 10)


@pytest.mark.parametrize("ipc", [1, 10, 50])
def test_matched_mtt_spends_eads_gradient_evaluations_to_within_half_an_iteration(ipc):
    ead, mtt = EADConfig(t_m=3, steps=80, batch_real=32, batch_syn=20), MTTConfig(syn_steps=10, batch_syn=20)
    matched = matched_mtt(ead, mtt, ipc, 10)
    per = gradient_evaluations("mtt", mtt, ipc * 10, 10)
    assert abs(matched.steps * per - 80 * gradient_evaluations("ead", ead, ipc * 10, 10)) <= per / 2
    assert dataclasses.replace(matched, steps=mtt.steps) == mtt  # nothing else changes


def test_equal_batches_give_the_three_methods_eads_batch_sizes():
    prof = ddrepro.get_profile("cpu")
    for ipc in (1, 10):
        sizes = {m: batch_sizes(m, equal_batches(prof, m, prof.condenser_config(m), ipc, 10), ipc * 10, 10)
                 for m in COSTED}
        assert sizes["ead"]["synthetic"] == sizes["mtt"]["synthetic"] == min(prof.ead.batch_syn, ipc * 10)
        assert sizes["dm"]["real"] <= sizes["ead"]["real"] == prof.ead.batch_real
        assert all(equal_batches(prof, m, prof.condenser_config(m), ipc, 10).steps
                   == prof.effects.cost_steps for m in COSTED)


def test_a_traced_cell_keeps_the_loss_trace_and_the_untraced_images(private_cache):
    real, test = toy_image_data(6, 3, seed=0), toy_image_data(4, 3, seed=1)
    cfg = EADConfig(expert_epochs=1, checkpoint_every=1, t_m=1, steps=3, batch_real=6, batch_syn=3,
                    expert_batch=6)
    common = dict(ipc=1, config=cfg, seed=0, net_cfg=TINY, aug_cfg=AugConfig(), device="cpu", quiet=True)
    syn, result = distil_cell(method="ead", real=real, test=test, record_every=1,
                              eval_cfg=EvalConfig(epochs=1, n_models=2, batch_size=8), **common)
    assert syn.history["step"].tolist() == [0, 1, 2, 3] and syn.history["loss"].shape == (4,)
    assert torch.isfinite(syn.history["loss"][1:]).all() and result.accs.shape == (2,)
    plain = condense("ead", real, **common)
    assert torch.equal(plain.images, syn.images)  # records change the artifact, not the images


def test_a_cost_cell_measures_a_fresh_run_once(private_cache):
    real = toy_image_data(6, 3, seed=0)
    kwargs = dict(method="dm", real=real, ipc=1, config=ddrepro.get_profile("smoke").dm, seed=0,
                  net_cfg=TINY, aug_cfg=AugConfig(), device="cpu", quiet=True)
    first = cost_cell(**kwargs)
    assert first["steps"] == 2 and first["seconds"] > 0 and first["peak_mib"] >= 0
    assert "resident set" in first["memory"] and first["device"] == "cpu"
    assert cost_cell(**kwargs) == first  # read from the cache: no second run
