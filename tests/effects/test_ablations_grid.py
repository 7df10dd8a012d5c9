"""The ``ead_ablations`` grid: a staged grid whose second stage starts from the step size its
first stage's sweep chooses; the page runs it and only joins results."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import ddrepro
import ddrepro.effects  # noqa: F401  (registers the grids)
from ddrepro.effects.ablations import (LR_GRID, ablation_plan, ablation_variants, chosen_lr, tune_name,
                                       tuning_config, variant_cell)
from ddrepro.effects.grids import LONG, ablation_splits, mtt_name, seeds_of, start_name
from ddrepro.grids import GRIDS
from ddrepro.staged import is_staged

PAGE = Path(__file__).resolve().parents[2] / "book" / "05_effect_alignment" / "ead_ablations.md"


def build(prof, done=None) -> dict:
    return {j.name: j for j in GRIDS.get("ead_ablations")(prof, seed=0, device="cpu", quiet=True, done=done)}


def swept(scores: dict[float, float]) -> dict:
    """A fake ``done`` holding the sweep's results only: ``(set, result)`` with ``result.mean``."""
    return {tune_name(lr): (None, SimpleNamespace(mean=scores[lr])) for lr in LR_GRID}


def page_code() -> str:
    return "\n".join(re.findall(r"```\{code-cell\}\n(.*?)```", PAGE.read_text(), flags=re.S))


def test_the_page_runs_the_grid_and_calls_no_cached_function_itself():
    cells = page_code()
    call = 'run_grid("ead_ablations", prof, seed=seed, device=device, quiet=quiet, executor=executor)'
    assert call in cells
    assert re.search(r'^executor = "local"', cells, flags=re.M)
    for call in ("condense_and_evaluate(", "condense(", "evaluate(", "expert_trajectory(", "train_buffer(",
                 "variant_cell(", "distil_cell(", "soft_start_cell(", "get_executor("):
        assert not re.search(rf"(?<!\w){re.escape(call)}", cells), call
    # the page reads results only through the grid's names (row(variant, s, job) reads done[job])
    reads = set(re.findall(r"done\[((?:[^\[\]]|\[[^\[\]]*\])+)\]", cells))
    assert reads == {"job", "LONG", 'start_name(seeds[0], "hard")', "start_name(s, labels)",
                     "mtt_name(name, value)"}, reads
    assert "row(f\"lr_img={lr}\", seeds[0], tune_name(lr))" in cells
    assert "for variant, s, job, _, _ in plan" in cells


def test_every_name_the_page_reads_is_a_job_of_the_grid(book_data):
    prof = ddrepro.get_profile("smoke")
    first = build(prof)
    grid = build(prof, swept(dict(zip(LR_GRID, (0.1, 0.2, 0.5, 0.3, 0.1)))))
    assert first.keys() < grid.keys() and list(grid)[:len(first)] == list(first)  # stage 1, then 2
    seeds = seeds_of(prof, 0)
    read = {tune_name(lr) for lr in LR_GRID} | {LONG}
    read |= {start_name(s, labels) for s in seeds for labels in ("hard", "soft")}
    read |= {mtt_name(name, value) for name in prof.data.datasets for value in prof.mtt_lr_img.values}
    real = ablation_splits(prof, 0)[seeds[0]][0]
    read |= {job for _, _, job, _, _ in ablation_plan(prof, seeds, 0.003, len(real), real.num_classes)}
    assert read == grid.keys()  # nothing missing, nothing run that the page does not read
    # stage 1 holds no variant and no long run: they need the choice
    assert LONG not in first and not any(n.startswith("s0/t_m") for n in first)


@pytest.mark.parametrize("scores,best", [((0.1, 0.2, 0.5, 0.3, 0.1), 0.003),
                                         ((0.9, 0.2, 0.5, 0.3, 0.1), 0.0003),
                                         ((0.1, 0.2, 0.2, 0.4, 0.4), 0.01)])  # a tie: the first
def test_stage_two_runs_at_the_step_size_chosen_on_the_sweep(book_data, scores, best):
    prof = ddrepro.get_profile("smoke", {"effects.t_ms": [1], "effects.alphas": [0.0, 1.0]})
    done = swept(dict(zip(LR_GRID, scores)))
    assert chosen_lr(done) == best
    grid = build(prof, done)
    long = grid[LONG].kwargs["config"]
    assert (long.lr_img, long.lr_label, long.steps) == (best, best, prof.effects.long_factor * prof.ead.steps)
    stage_two = [j for j in grid.values() if j.fn is variant_cell and not j.name.startswith("tune/")]
    assert stage_two and all(j.kwargs["config"].lr_img == best == j.kwargs["config"].lr_label
                             for j in stage_two)
    # the reference at the chosen step on the first seed is the sweep's own cell, not run twice
    seeds = seeds_of(prof, 0)
    real = ablation_splits(prof, 0)[seeds[0]][0]
    plan = {(v, s): job for v, s, job, _, _ in ablation_plan(prof, seeds, best, len(real), real.num_classes)}
    assert plan["alpha=0", seeds[0]] == tune_name(best) and plan["alpha=0", seeds[1]] == f"s{seeds[1]}/t_m=1"
    runs = [(j.kwargs["seed"], j.kwargs["config"], j.kwargs.get("init"), j.kwargs.get("record_every"))
            for j in grid.values() if j.fn is variant_cell]
    assert len(runs) == len(set((s, c, i or "real", r) for s, c, i, r in runs))


def test_the_sweep_cells_are_the_pages_former_calls(book_data):
    prof = ddrepro.get_profile("smoke")
    grid = build(prof)
    seeds = seeds_of(prof, 0)
    real, val = ablation_splits(prof, 0)[seeds[0]]
    for lr in LR_GRID:
        kwargs = grid[tune_name(lr)].kwargs
        assert kwargs["config"] == dataclasses.replace(prof.ead, lr_img=lr, lr_label=lr)
        assert kwargs["config"] == tuning_config(prof.ead, lr)
        assert (kwargs["seed"], kwargs["init"], kwargs["ipc"]) == (seeds[0], "real", 1)
        assert (kwargs["eval_cfg"], kwargs["net_cfg"], kwargs["aug_cfg"]) == (prof.eval, prof.net, prof.aug)
        assert kwargs["real"].digest() == real.digest() and kwargs["held_out"].digest() == val.digest()
    assert is_staged(GRIDS.get("ead_ablations"))


def test_variants_change_one_field_each_and_are_named_once():
    prof = ddrepro.get_profile("cpu")
    tuned = tuning_config(prof.ead, 0.01)
    variants = ablation_variants(prof, tuned, 1000, 10)
    names = [v for v, _, _ in variants]
    assert len(names) == len(set(names))
    assert {"hard labels (fixed)", "noise init", "alpha=0", "alpha=99", "alpha=2.2"} <= set(names)
    for name, config, init in variants:
        changed = {f.name for f in dataclasses.fields(config)
                   if getattr(config, f.name) != getattr(tuned, f.name)}
        assert len(changed) + (init != "real") <= 1, (name, changed)


def test_t_ms_beyond_the_experts_checkpoints_stop_the_grid_before_any_run(book_data):
    prof = ddrepro.get_profile("smoke", {"effects.t_ms": [1, 10_000]})
    with pytest.raises(ValueError, match=r"effects.t_ms \[10000\] exceed the expert's"):
        build(prof)
