"""The ``across`` grid shares the chapters' jobs argument for argument, so they are cache hits."""

from __future__ import annotations

from typing import Any

import torch

import ddrepro
import ddrepro.across  # noqa: F401  (registers the grid before the entry point is installed)
from ddrepro.data import ImageData
from ddrepro.grids import GRIDS


def same(a: Any, b: Any) -> bool:
    """Equal as artifact keys see them: tensors by value, data sets by digest."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, ImageData) or isinstance(b, ImageData):
        return isinstance(a, ImageData) and isinstance(b, ImageData) and a.digest() == b.digest()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def jobs(name: str, prof) -> dict:
    return {j.name: j for j in GRIDS.get(name)(prof, seed=0, device="cpu", quiet=True)}


def test_the_dm_arms_are_the_chapters_own_jobs(book_data, one_thread):
    prof = ddrepro.get_profile("smoke")
    ours, claims, debiased = jobs("across", prof), jobs("claims", prof), jobs("debiased", prof)
    k, t = prof.privacy.shadows, prof.privacy.lira_targets
    chapter2 = [f"lira/shadow{i}" for i in range(k)] + [f"lira/target{i}" for i in range(t)]
    for i, name in enumerate(chapter2):
        assert ours[f"lira/dm/m{i}"].fn is claims[name].fn
        assert same(dict(ours[f"lira/dm/m{i}"].kwargs), dict(claims[name].kwargs)), name
        rdm = ours[f"lira/rdm/m{i}"].kwargs
        assert rdm["method"] == "rdm" and rdm["config"].mean_estimator.name == "calibrated"
        assert same(rdm["subset"], claims[name].kwargs["subset"])  # the same halves
    for ratio in set(prof.across.bias_ratios) & set(prof.bias.debias_ratios):
        for k in range(prof.bias.repeats):
            mine, theirs = ours[f"bias/dm/r{ratio:g}/k{k}"], debiased[f"dm/r{ratio:g}/k{k}"]
            assert mine.fn is theirs.fn and same(dict(mine.kwargs), dict(theirs.kwargs))
