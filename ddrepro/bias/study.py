"""Chapter 4's cells (Lu et al. 2024): biased splits, distil-and-score, the full-set control.

Every function is an ordinary call of the cached engine (``condense``,
``evaluate``, ``train_full``), so the chapter's notebooks, the grids in
:mod:`ddrepro.grids` and ``ddrepro precompute`` share artifacts.

The test set. The authors' generator builds the test split at a biased ratio
of 0: every test image is bias-conflicting (its colour belongs to another
digit). We evaluate once on a split with ``test_aligned`` % aligned images
(default 50) and read the accuracy per group (``evaluate(..., group_by=
"aligned")``): the conflicting half is drawn exactly as the release draws its
test set, so its accuracy is the paper's metric, and the aligned half shows
what the shortcut buys. A colour-balanced ("unbiased") test set, where every
colour is equally likely, would score ``0.1 * aligned + 0.9 * conflicting``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..condense import condense
from ..config import AugConfig, EvalConfig, NetConfig, replace_checked
from .biased import load_biased
from ..data.dataset import ImageData
from .debias import DebiasConfig, debiased
from ..evaluate import EvalResult, evaluate, train_full
from ..profiles import Profile
from ..synthetic import SyntheticSet


def biased_split(prof: Profile, ratio: float, severity: int, seed: int) -> ImageData:
    """The training set of a cell: ``prof.data.train_per_class`` images per class, biased."""
    return load_biased(prof.bias.dataset, "train", ratio, severity, seed=seed,
                       per_class=prof.data.train_per_class)


def biased_test(prof: Profile, severity: int, seed: int) -> ImageData:
    """``prof.data.test_size`` test images, ``prof.bias.test_aligned`` % of them bias-aligned."""
    return load_biased(prof.bias.dataset, "test", prof.bias.test_aligned, severity, seed=seed,
                       size=prof.data.test_size)


def without_colour(aug: AugConfig) -> AugConfig:
    """``aug`` without DSA's colour op (which rescales brightness and saturation at random)."""
    ops = [op for op in aug.strategy.split("_") if op != "color"]
    return replace_checked(aug, strategy="_".join(ops))


def full_eval_config(prof: Profile) -> EvalConfig:
    """The full-set control's recipe (paper Sec. 4.2: SGD lr 0.01, batch 256, 150 epochs; no
    augmentation), with the bias section's epochs and number of models."""
    return replace_checked(prof.full, epochs=prof.bias.full_epochs, n_models=prof.bias.full_models,
                           augment="none")


def distil_and_score(*, method: str, real: ImageData, test: ImageData, ipc: int, config: Any,
                     seed: int, net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                     debias: DebiasConfig | None = None, device: str | torch.device = "auto",
                     quiet: bool | None = None) -> tuple[SyntheticSet, EvalResult, float]:
    """Condense ``real`` (reweighted by :func:`ddrepro.bias.debias.debiased` when ``debias``), then
    evaluate with accuracy per ``aligned`` group. Returns the set, the result and the seconds
    the reweighting took (0 without it); condensing time is ``syn.meta["seconds"]``."""
    start = time.perf_counter()
    if debias is not None:
        real = debiased(real, debias)
    weigh_s = time.perf_counter() - start if debias is not None else 0.0
    syn = condense(method, real, ipc, config=config, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                   device=device, quiet=quiet)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=real.flip_ok, group_by="aligned", device=device, quiet=quiet)
    return syn, result, weigh_s


def full_control(*, real: ImageData, test: ImageData, net_cfg: NetConfig, eval_cfg: EvalConfig,
                 aug_cfg: AugConfig, seed: int, device: str | torch.device = "auto",
                 quiet: bool | None = None) -> EvalResult:
    """The model trained on the whole biased training set, with accuracy per ``aligned`` group."""
    return train_full(real, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      group_by="aligned", device=device, quiet=quiet)


def group_accuracies(result: EvalResult) -> dict[str, float]:
    """Mean accuracy (%) on the conflicting and aligned test images, and on a colour-balanced
    test set (one image in ten aligned), from a result evaluated with ``group_by="aligned"``."""
    conflicting = 100 * float(result.groups["0"].mean())
    aligned = 100 * float(result.groups["1"].mean())
    return {"conflicting": conflicting, "aligned": aligned,
            "balanced": 0.1 * aligned + 0.9 * conflicting}


__all__ = ["biased_split", "biased_test", "distil_and_score", "full_control", "full_eval_config",
           "group_accuracies", "without_colour"]
