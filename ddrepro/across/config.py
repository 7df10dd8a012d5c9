"""The cross-chapter page's settings (profile section ``across``), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import _check, _positive

# The ratios criteria.csv has rows for (``rdm_drops_r80``, ``rdm_acc_r95``, ...).
JUDGED_RATIOS = (80.0, 95.0)


@dataclass(frozen=True)
class AcrossConfig:
    """``book/06_across``: RDM-DC, debiased DM and EAD seen through the other chapters' lenses.

    RDM-DC (Zheng & Li 2023, Alg. 3-5) assumes a poisoning rate ``eps_p`` (default the paper's
    0.1: 1 % of the set, all in one class of ten) and runs ``power_iterations`` of Alg. 5; it
    drops ``k = ceil(3 eps_p N)`` of every real batch of ``N``. With no poisons present, what it
    drops is the question. Question 1 reuses Chapter 2's LiRA models (``privacy`` section:
    shadows and targets, every model the target in turn). Question 2 runs on CMNIST-DD at
    ``bias_ratios`` (percent bias-aligned; each must have a row in criteria.csv:
    :data:`JUDGED_RATIOS`) over Chapter 4's ``bias.repeats`` seeds; which real images the
    calibrated mean drops is measured on ``drop_draws`` random networks per seed, as DM draws
    them. Question 3 attacks DM and debiased DM (Chapter 4's weights) on a CMNIST-DD pool of
    ``lira_per_class`` images per class at ``lira_ratio`` % aligned, ``lira_models`` models
    (complementary pairs of halves, every model the target in turn, attacked by the other pairs), ``lira_ipc``
    images per class, DM run ``lira_steps`` steps (None: the profile's ``dm.steps``). All ours.
    """

    eps_p: float = 0.1
    power_iterations: int = 10
    bias_ratios: tuple[float, ...] = JUDGED_RATIOS
    drop_draws: int = 50
    lira_ratio: float = 80.0
    lira_per_class: int = 500
    lira_models: int = 16
    lira_ipc: int = 10
    lira_steps: int | None = None

    def __post_init__(self) -> None:
        _check(0.0 < self.eps_p < 0.5, self, "eps_p", self.eps_p,
               "in (0, 0.5): the poisoning rate RDM-DC assumes (0.1 in the paper)")
        _positive(self, "power_iterations", "drop_draws", "lira_ipc")
        _check(len(self.bias_ratios) > 0 and set(self.bias_ratios) <= set(JUDGED_RATIOS), self,
               "bias_ratios", self.bias_ratios,
               f"a non-empty subset of {JUDGED_RATIOS} (criteria.csv has rows for these)")
        _check(0.0 < self.lira_ratio < 100.0, self, "lira_ratio", self.lira_ratio,
               "in (0, 100): the pool needs aligned and conflicting images")
        _check(self.lira_per_class >= 4, self, "lira_per_class", self.lira_per_class,
               ">= 4 (members and non-members of both kinds)")
        _check(self.lira_models >= 4 and self.lira_models % 2 == 0, self, "lira_models",
               self.lira_models, "even and >= 4 (complementary pairs; every model the target in "
               "turn, attacked by the other pairs)")
        _check(self.lira_steps is None or self.lira_steps >= 1, self, "lira_steps", self.lira_steps,
               ">= 1 or None")


__all__ = ["AcrossConfig", "JUDGED_RATIOS"]
