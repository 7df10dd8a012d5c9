"""The victim's regime (ours, issue 24): where plain DM is vulnerable, chosen on validation targets.

Zheng & Li report 100 % success at 128/255 against DM from noise at 20,000 iterations on real
batches of 256 (Table 1); a small victim (a few hundred steps on batches of 32) has synthetic
images that barely moved from their initialisation, and nothing flips. Before the defenses can
be judged, the regime where the *undefended* victim is vulnerable is searched for, on a pool of
validation targets (:func:`ddrepro.poisoning.targets.validation_targets`) that are never
evaluated:

* the points (:func:`regime_points`): every rate of ``PoisonConfig.search_rates`` (the paper's
  1 % and ``regime_rates``)
  x the victim's (DM steps, real batch) pairs (:func:`victim_points`, one factor at a time) x
  every eps of ``regime_eps``;
* a larger rate is a labelled deviation, capped so that RDM-DC keeps at least half of each real
  batch (:func:`check_rate_cap`: at 3 % with batches of 32 it would drop 29 of 32, and its clean
  cost would say nothing);
* the choice (:func:`choose_regime`, :func:`ddrepro.tuning.choose`): the cheapest point, in the
  order (rate, DM steps x batch, eps), where DM poisoning flips at least ``threshold`` of the
  validation targets; when none does, the point with the highest success (the first on a tie),
  flagged not vulnerable (:func:`is_vulnerable`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pandas as pd

from ..data import ImageData
from ..profiles import Profile
from ..robust import MeanEstimatorConfig
from ..tuning import Choice, choose
from .study import class_rate


@dataclass(frozen=True, order=True)
class RegimePoint:
    """One setting of the search: the poisoning ``rate``, the victim's ``dm_steps`` and
    ``batch_real`` (per class), and DM poisoning's ``eps`` (pixels)."""

    rate: float
    dm_steps: int
    batch_real: int
    eps: float

    @property
    def cost(self) -> int:
        """The victim's condensation cost in real images embedded per class: steps x batch."""
        return self.dm_steps * self.batch_real

    def __str__(self) -> str:
        return (f"{100 * self.rate:g} %, {self.dm_steps} DM steps, batch {self.batch_real}, "
                f"eps {round(255 * self.eps)}/255")


def victim_points(steps: Sequence[int], batches: Sequence[int]) -> list[tuple[int, int]]:
    """The victim's (DM steps, real batch) pairs, one factor at a time: every ``steps`` at the
    smallest batch and every ``batch`` at the fewest steps, sorted by cost (steps x batch).

    The full product's expensive corner (most steps at the largest batch) costs more than all the
    other points together on a CPU; the two arms show each factor with the other at its cheapest.
    """
    if not steps or not batches:
        raise ValueError("victim_points needs at least one DM step count and one batch size.")
    pairs = {(int(s), min(batches)) for s in steps} | {(min(steps), int(b)) for b in batches}
    return sorted(pairs, key=lambda p: (p[0] * p[1], p))


def regime_points(rates: Sequence[float], steps: Sequence[int], batches: Sequence[int],
                  eps: Sequence[float]) -> list[RegimePoint]:
    """Every point of the search, in the order of preference: rate, then cost, then eps."""
    points = [RegimePoint(float(r), s, b, float(e)) for r in rates for s, b in victim_points(steps, batches)
              for e in eps]
    return sorted(points, key=lambda p: (p.rate, p.cost, p.eps, p.dm_steps))


def rdm_kept(eps_p: float, batch: int) -> int:
    """Real images of a batch of ``batch`` RDM-DC keeps when told eps_p: ``batch - ceil(3 eps_p batch)``
    (:meth:`ddrepro.robust.MeanEstimatorConfig.drop_count`; 0 when it would drop them all)."""
    try:
        return batch - MeanEstimatorConfig("calibrated", rate=eps_p).drop_count(batch)
    except ValueError:  # k >= batch: nothing left
        return 0


def check_rate_cap(real: ImageData, rates: Iterable[float], batches: Iterable[int],
                   adv_labels: Iterable[int]) -> None:
    """Refuse (``ValueError``, before any compute) a rate at which RDM-DC, told the poisons' share
    of their class (:func:`ddrepro.poisoning.study.class_rate`), would keep fewer than half of a
    real batch of any size in ``batches``, for any adversarial class in ``adv_labels``."""
    for rate in rates:
        for label in set(adv_labels):
            eps_p = class_rate(real, rate, label)
            for batch in batches:
                kept = rdm_kept(eps_p, batch)
                if 2 * kept < batch:
                    raise ValueError(
                        f"poisoning rate {rate:g} makes {100 * eps_p:.0f} % of class {label}: RDM-DC would "
                        f"keep {kept} of each real batch of {batch} (k = ceil(3 * {eps_p:.3g} * {batch})), "
                        "fewer than half, so its clean cost would say nothing; lower poison.regime_rates.")


def regime_frame(jobs: Sequence[Any], cells: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (point, attack, validation target) from the regime grid's jobs and results:
    the point's fields, ``attack`` ("dm_poison", "direct", or "none" for the clean victim),
    ``target`` (test index), ``success`` (share of the victims that predicted ``y_adv``) and
    ``adv_prob`` (their mean probability of ``y_adv``). The direct and clean rows have no eps
    (NaN) and the clean rows no rate (NaN): they hold for every eps (and rate)."""
    rows = []
    for job, cell in zip(jobs, cells):
        kw = job.kwargs
        victim = dict(dm_steps=kw["dm_cfg"].steps, batch_real=kw["dm_cfg"].batch_real)
        if cell["attack"] == "none":
            for j, index in enumerate(cell["targets"]):
                rows.append(victim | dict(rate=math.nan, eps=math.nan, attack="none", target=index,
                                          success=float(cell["success"][:, j].float().mean()),
                                          adv_prob=float(cell["adv_prob"][:, j].mean())))
            continue
        cfg = kw["attack_cfg"]
        rows.append(victim | dict(rate=float(cfg.rate), eps=float(cfg.eps) if cell["attack"] == "dm_poison" else math.nan,
                                  attack=cell["attack"], target=cell["target"],
                                  success=float(cell["success"].float().mean()),
                                  adv_prob=float(cell["adv_prob"].mean())))
    return pd.DataFrame(rows)


def success_by_point(frame: pd.DataFrame, points: Sequence[RegimePoint]) -> dict[RegimePoint, float]:
    """DM poisoning's success rate over the validation targets at every point (mean of the targets'
    success shares)."""
    poison = frame[frame.attack == "dm_poison"]
    out = {}
    for p in points:
        here = poison[(poison.rate == p.rate) & (poison.dm_steps == p.dm_steps)
                      & (poison.batch_real == p.batch_real) & (poison.eps == p.eps)]
        if here.empty:
            raise ValueError(f"regime point {p} has no DM poisoning result; run its grid (poison_regime).")
        out[p] = float(here.success.mean())
    return out


def regime_scores(success: dict[RegimePoint, float], threshold: float) -> dict[RegimePoint, float]:
    """The score :func:`ddrepro.tuning.choose` maximises: a vulnerable point (success >= ``threshold``)
    scores in (1, 2], higher the earlier it comes in ``success``' order (the order of preference);
    any other point scores half its success, in [0, 0.5], so it is chosen only when none is vulnerable."""
    n = len(success)
    return {p: (1.0 + (n - i) / n if s >= threshold else 0.5 * s) for i, (p, s) in enumerate(success.items())}


def choose_regime(frame: pd.DataFrame, points: Sequence[RegimePoint], threshold: float,
                  validation_ids: Sequence[str]) -> Choice:
    """The chosen :class:`RegimePoint` (:func:`regime_scores`' argmax), recorded with the validation
    targets' ids it was chosen on (``Choice.check_disjoint`` refuses evaluating on any of them)."""
    ordered = sorted(points, key=lambda p: (p.rate, p.cost, p.eps, p.dm_steps))
    evaluated = {f"target:{int(t)}" for t in frame.target.unique()}
    if not evaluated <= set(validation_ids):
        raise ValueError(f"choose_regime: the frame holds targets outside the validation pool "
                         f"({sorted(evaluated - set(validation_ids))[:3]}); choose on validation targets only.")
    scores = regime_scores(success_by_point(frame, ordered), threshold)
    return choose("regime", scores, chosen_on=f"{len(validation_ids)} validation targets",
                  rows=validation_ids)


def is_vulnerable(choice: Choice) -> bool:
    """Whether the chosen point met the threshold (its score is above 1: :func:`regime_scores`)."""
    return dict(choice.scores)[choice.value] > 1.0


def apply_regime(prof: Profile, point: RegimePoint) -> Profile:
    """``prof`` with the poison section's victim and attack at ``point``: ``dm_steps``,
    ``batch_real``, ``eps`` (the point's first, the others after) and ``table_rate`` (None at
    the paper's rate). Idempotent; the regime grid itself reads none of these fields."""
    study = prof.poison
    new = dataclasses.replace(study, dm_steps=point.dm_steps, batch_real=point.batch_real,
                              eps=(point.eps, *[e for e in study.eps if e != point.eps]),
                              table_rate=None if point.rate == study.rate else point.rate)
    return dataclasses.replace(prof, sections=tuple((name, new if name == "poison" else value)
                                                    for name, value in prof.sections))


__all__ = ["RegimePoint", "apply_regime", "check_rate_cap", "choose_regime", "is_vulnerable", "rdm_kept",
           "regime_frame", "regime_points", "regime_scores", "success_by_point", "victim_points"]
