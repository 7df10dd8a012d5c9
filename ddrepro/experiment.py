"""What every chapter's experiments share: the data splits and the condense-then-evaluate cell.

- :func:`real_and_test`: the real training subset and the test subset of a data set, as the
  profile sizes them;
- :func:`real_val_and_test`: the same with a validation split held out from the training set,
  for anything a chapter tunes (never the test set);
- :func:`condense_and_evaluate`: Chapter 1's main loop body, the cell most grids are made of.
"""

from __future__ import annotations

from typing import Any

import torch

from . import data
from .condense import condense
from .condense.mtt import evaluation_recipe
from .config import AugConfig, EvalConfig, NetConfig
from .evaluate import EvalResult, evaluate
from .profiles import Profile
from .synthetic import SyntheticSet


def real_and_test(prof: Profile, name: str, seed: int) -> tuple[data.ImageData, data.ImageData]:
    """The real training subset and the test subset a chapter uses for data set ``name``."""
    real = data.load(name, "train").subset_per_class(prof.data.train_per_class, seed=seed)
    test = data.load(name, "test").subset(prof.data.test_size, seed=seed)
    return real, test


def real_val_and_test(prof: Profile, name: str, seed: int, val_per_class: int
                      ) -> tuple[data.ImageData, data.ImageData, data.ImageData]:
    """A training subset, a validation split held out from the training set, and the test subset.

    The validation images (``val_per_class`` per class, drawn with ``seed + 1``)
    are removed before the training subset is drawn, so the two never share an
    image; anything a chapter tunes is chosen on them, never on the test set.
    """
    full = data.load(name, "train")
    val = full.subset_per_class(val_per_class, seed=seed + 1)
    real = full.without(val).subset_per_class(prof.data.train_per_class, seed=seed)
    test = data.load(name, "test").subset(prof.data.test_size, seed=seed)
    return real, val, test


def condense_and_evaluate(*, method: str, real: data.ImageData, test: data.ImageData, ipc: int,
                          config: Any, seed: int, net_cfg: NetConfig, aug_cfg: AugConfig,
                          eval_cfg: EvalConfig, device: str | torch.device,
                          quiet: bool | None) -> tuple[SyntheticSet, EvalResult]:
    """Condense ``real`` with ``method``, then train ``eval_cfg.n_models`` nets on it (both cached).

    The two calls of Chapter 1's main loop, argument for argument. A set that
    learned its own step size (MTT) is evaluated at it, as its authors do
    (:func:`ddrepro.condense.mtt.evaluation_recipe`); every other set at ``eval_cfg``.
    """
    syn = condense(method, real, ipc, config=config, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                   device=device, quiet=quiet)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=evaluation_recipe(syn, eval_cfg),
                      aug_cfg=aug_cfg, seed=seed,
                      flip=real.flip_ok, device=device, quiet=quiet)
    return syn, result


__all__ = ["condense_and_evaluate", "real_and_test", "real_val_and_test"]
