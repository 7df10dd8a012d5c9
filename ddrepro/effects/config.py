"""Chapter 5's study settings (profile section ``effects``), validated at construction.

EAD's own settings are the condenser's, :class:`ddrepro.condense.ead.EADConfig`
(the engine section ``ead``); this section holds what the chapter's studies add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import _check, _positive


@dataclass(frozen=True)
class EffectsConfig:
    """Chapter 5's studies around EAD (ours: the paper gives none of these).

    The estimator study (estimator.md): ``pairs`` random (G, A) pairs retrained
    at each of the full-batch ``horizons`` (steps T, ``study_lr``), shown in
    detail at ``scatter_horizon``; the ablations (ead_ablations.md, scored on
    ``val_per_class`` validation images per class held out from the training
    set): ``t_ms`` and ``alphas`` (EAD's ``t_m`` and Eq. 7's alpha). ``seeds``: the
    distillation seeds (``seed``, ``seed + 1``, ...) of every cell of ead.md and
    ead_ablations.md, the independent unit of their scorecard rows (a seed's evaluation
    networks share its synthetic set); 5, as the DC/DSA/DM tables' experiments.
    ``long_factor``: the one EAD run of ead_ablations.md at that many times the
    profile's steps, with its loss trace (do the images stop, or keep moving?).
    ``eval_models``: the evaluation networks of every row of ead.md (None: the profile's
    ``eval.n_models``, Chapter 1's); ``cost_steps``: the steps of each EAD, MTT and DM run
    timed and measured for peak memory at equal batch sizes on ead.md.
    """

    pairs: int = 200
    horizons: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200)
    scatter_horizon: int = 20
    study_lr: float = 0.05
    t_ms: tuple[int, ...] = (1, 2, 5, 10, 20)
    alphas: tuple[float, ...] = (0.0, 0.5, 1.0)
    val_per_class: int = 500
    seeds: int = 5
    long_factor: int = 10
    eval_models: int | None = None
    cost_steps: int = 10

    def __post_init__(self) -> None:
        _positive(self, "pairs", "study_lr", "val_per_class", "seeds", "long_factor", "cost_steps")
        _check(self.eval_models is None or (isinstance(self.eval_models, int) and self.eval_models >= 1),
               self, "eval_models", self.eval_models, "an int >= 1, or None (the profile's eval.n_models)")
        _check(len(self.horizons) > 0 and all(h >= 1 for h in self.horizons)
               and list(self.horizons) == sorted(set(self.horizons)), self, "horizons",
               self.horizons, "a non-empty increasing tuple of step counts >= 1")
        _check(self.scatter_horizon in self.horizons, self, "scatter_horizon", self.scatter_horizon,
               f"one of horizons {self.horizons}")
        _check(len(self.t_ms) > 0 and all(t >= 1 for t in self.t_ms), self, "t_ms", self.t_ms,
               "a non-empty tuple of ints >= 1")
        _check(len(self.alphas) > 0 and all(math.isfinite(a) for a in self.alphas), self,
               "alphas", self.alphas, "a non-empty tuple of finite numbers")


__all__ = ["EffectsConfig"]
