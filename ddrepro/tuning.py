"""Step sizes the papers do not give, chosen per data set on a validation split (ours).

The book's rule: a hyperparameter a paper does not give is tuned on a
validation split held out from the training set
(:func:`ddrepro.experiment.real_val_and_test`), never on the test set, and labelled
ours. Two halves:

- :class:`StepSizeChoice`, a profile section: the image step sizes a page
  sweeps (``values``, at ``ipc`` images per class) and, per data set, the
  value that sweep chose (``chosen``), which the book's tables run with
  (:meth:`StepSizeChoice.apply`);
- :func:`validation_sweep` (one :func:`ddrepro.experiment.condense_and_evaluate`
  call per value, the same cached calls as the tables, scored on the
  validation images; it takes no test set) and :func:`best_value` (the
  argmax).

The sweep runs on a page (MTT's image step: ``book/05_effect_alignment/
ead_ablations.md``), which checks ``chosen`` against its argmax
(:meth:`StepSizeChoice.stale`), so a stale profile shows on the page's
scorecard rather than silently feeding a table. The section lives on the
profile, not on the method's config: the config a run gets is the resolved
one (``lr_img`` set), so its cache key names the value it ran with and
nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .config import _check, replace_checked


def _step_sizes(values: Sequence[float]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
               for v in values)


@dataclass(frozen=True)
class StepSizeChoice:
    """An image step size per data set, chosen on its validation split (ours).

    ``values``: the step sizes the page sweeps, each one distillation at
    ``ipc`` images per class scored on the validation images; ``chosen``:
    ``(data set, step size)`` pairs, the argmax of that sweep per data set,
    copied into the profile (a data set not listed runs with the method
    config's own ``lr_img``).
    """

    values: tuple[float, ...] = (100.0, 1000.0, 10_000.0)
    chosen: tuple[tuple[str, float], ...] = ()
    ipc: int = 1

    def __post_init__(self) -> None:
        _check(len(self.values) > 0 and _step_sizes(self.values)
               and len(set(self.values)) == len(self.values), self, "values", self.values,
               "a non-empty tuple of distinct finite step sizes > 0")
        _check(isinstance(self.ipc, int) and not isinstance(self.ipc, bool) and self.ipc >= 1,
               self, "ipc", self.ipc, "an integer >= 1")
        pairs = [tuple(p) if isinstance(p, (list, tuple)) else (p,) for p in self.chosen]
        _check(all(len(p) == 2 and isinstance(p[0], str) and _step_sizes(p[1:]) for p in pairs)
               and len({p[0] for p in pairs}) == len(pairs), self, "chosen", self.chosen,
               "(data set, step size > 0) pairs, one per data set")
        # overrides arrive as lists (``-p mtt_lr_img.chosen '[["mnist", 10]]'``): keep it hashable
        object.__setattr__(self, "chosen", tuple((name, float(v)) for name, v in pairs))

    def value(self, dataset: str, default: float) -> float:
        """The step size chosen for ``dataset``, or ``default`` where none was chosen."""
        return dict(self.chosen).get(dataset, default)

    def apply(self, config: Any, dataset: str) -> Any:
        """``config`` with ``lr_img`` set to ``dataset``'s chosen value (unchanged if none)."""
        _check(dataclasses.is_dataclass(config) and hasattr(config, "lr_img"), self, "apply",
               type(config).__name__, "given a method config with an lr_img field")
        return replace_checked(config, lr_img=self.value(dataset, config.lr_img))

    def stale(self, best: Mapping[str, float], default: float) -> dict[str, tuple[float, float]]:
        """The data sets whose step as run (:meth:`value`, ``default`` where none was chosen) is not
        ``best``'s: ``{name: (as run, best)}``; empty when the profile runs every argmax."""
        return {name: (self.value(name, default), value) for name, value in best.items()
                if self.value(name, default) != value}


def best_value(scores: Mapping[float, float]) -> float:
    """The value with the highest validation score; on a tie, the first in ``scores``' order."""
    if not scores:
        raise ValueError("best_value needs at least one (value, score) pair.")
    if not all(math.isfinite(s) for s in scores.values()):
        raise ValueError(f"best_value: every score must be finite, got {dict(scores)!r}.")
    return max(scores, key=lambda v: (scores[v], -list(scores).index(v)))


@dataclass(frozen=True)
class Choice:
    """A value chosen by its score, with what it was chosen on (any choice a page makes: a rate,
    an epoch count, a regime, a step size).

    ``rows`` identifies what the scores were computed on (image ids such as ``"mnist:123"``,
    target ids such as ``"target:7"``); :meth:`check_disjoint` refuses an evaluation that
    reuses any of them, so a choice can never be scored on what it is then judged by, and
    :meth:`text` is the sentence a page shows.
    """

    name: str
    value: Any
    scores: tuple[tuple[Any, float], ...]
    chosen_on: str
    rows: frozenset = frozenset()

    def check_disjoint(self, evaluated: Any, what: str = "the evaluated rows") -> None:
        """Raise unless none of ``evaluated`` (ids as in ``rows``) was used to make the choice."""
        shared = self.rows & {str(r) for r in evaluated}
        if shared:
            raise ValueError(f"{self.name} was chosen on {len(shared)} of {what} (e.g. "
                             f"{sorted(shared)[:3]}); choose on a split or pool disjoint from them.")

    def text(self) -> str:
        tried = ", ".join(f"{v}: {score:.3g}" for v, score in self.scores)
        return f"{self.name} = {self.value}, the best on {self.chosen_on} ({tried})"


def choose(name: str, scores: Mapping[Any, float], *, chosen_on: str, rows: Sequence = ()) -> Choice:
    """The argmax of ``scores`` (:func:`best_value`), recorded with what it was chosen on."""
    if not str(chosen_on).strip():
        raise ValueError(f"choose({name!r}): say what the value was chosen on (e.g. 'the validation split').")
    return Choice(name, best_value(scores), tuple((v, float(s)) for v, s in scores.items()), str(chosen_on),
                  frozenset(str(r) for r in rows))


def row_ids(data: Any) -> list[str]:
    """``"<data set>:<source index>"`` for every image of ``data`` (an ``ImageData``): ids for :class:`Choice`."""
    return [f"{data.name}:{int(i)}" for i in data.source_index.tolist()]


def validation_sweep(method: str, real: Any, val: Any, ipc: int, config: Any,
                     values: Sequence[float], *, seed: int, net_cfg: Any, aug_cfg: Any,
                     eval_cfg: Any, device: Any, quiet: bool | None) -> dict[float, Any]:
    """Distil ``real`` with ``config``'s ``lr_img`` set to each of ``values``; score each on ``val``.

    ``val`` must be a validation split held out from ``real``'s root
    (:func:`ddrepro.experiment.real_val_and_test`): an image in both raises. No
    test set is taken. Returns ``{value: EvalResult}`` in ``values``' order;
    each call is :func:`ddrepro.experiment.condense_and_evaluate`, so cached.
    """
    from .experiment import condense_and_evaluate

    if not (len(values) > 0 and _step_sizes(values)):
        raise ValueError(f"validation_sweep: values = {values!r} must be a non-empty sequence of "
                         "finite step sizes > 0.")
    if not (dataclasses.is_dataclass(config) and hasattr(config, "lr_img")):
        raise ValueError(f"validation_sweep: {type(config).__name__} has no lr_img field to sweep.")
    if val.name != real.name:
        raise ValueError(f"validation_sweep: validation images of {val.name!r} for training images "
                         f"of {real.name!r}; hold the split out of the same data set.")
    shared = set(real.source_index.tolist()) & set(val.source_index.tolist())
    if shared:
        raise ValueError(f"validation_sweep: {len(shared)} validation images are also training "
                         "images; hold the split out first (experiment.real_val_and_test).")
    configs = {float(v): replace_checked(config, lr_img=float(v)) for v in values}  # all checked first
    return {v: condense_and_evaluate(method=method, real=real, test=val, ipc=ipc, config=cfg,
                                     seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                                     eval_cfg=eval_cfg, device=device, quiet=quiet)[1]
            for v, cfg in configs.items()}


__all__ = ["Choice", "StepSizeChoice", "best_value", "choose", "row_ids", "validation_sweep"]
