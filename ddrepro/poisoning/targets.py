"""Chapter 3's targets: a validation pool the regime is chosen on, and the evaluated targets.

Zheng & Li draw a random test image and a random wrong label per target (Fig. 2;
:func:`ddrepro.poisoning.poison.pick_target`). Two rules of ours sit on top:

* **one target per (true, adversarial) class pair at most**: a pair drawn twice (T-shirt ->
  shirt, say) counts one kind of attack twice, so a draw whose pair (or image) is taken is
  skipped and the next seed tried (:func:`draw_targets`);
* **a validation pool disjoint from the evaluated targets**: whatever is chosen (the victim's
  regime, a rate) is chosen on ``val_targets`` targets drawn from seeds ``val_seed``,
  ``val_seed + 1``, ...; the evaluated targets are drawn from seeds 0, 1, ... with the pool's
  images *and* class pairs excluded. The pool is drawn first, so it does not depend on how many
  targets are evaluated, and :meth:`ddrepro.tuning.Choice.check_disjoint` refuses an evaluation
  that reuses one of its ids (:func:`target_ids`).
"""

from __future__ import annotations

from typing import Iterable

from ..data import ImageData
from .poison import Target, pick_target


def draw_targets(test: ImageData, count: int, seed: int, exclude: Iterable[Target] = ()) -> list[Target]:
    """``count`` targets of ``test`` with distinct (label, adv_label) pairs and images, drawn by
    :func:`~ddrepro.poisoning.poison.pick_target` at seeds ``seed``, ``seed + 1``, ...; a draw
    whose pair or image is already taken, here or in ``exclude``, is skipped.

    ``ValueError`` (before drawing) when fewer unused pairs exist than ``count``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"draw_targets: count = {count!r} must be an integer >= 0.")
    exclude = list(exclude)
    pairs = {(t.label, t.adv_label) for t in exclude}
    images = {t.index for t in exclude}
    classes = test.num_classes
    free = classes * (classes - 1) - len(pairs)
    if count > free:
        raise ValueError(f"draw_targets: {count} targets need {count} distinct (true, adversarial) class "
                         f"pairs, but only {free} of the {classes * (classes - 1)} are left; draw fewer.")
    chosen: list[Target] = []
    draw = seed
    while len(chosen) < count:
        # every pair has a positive chance per draw, so this ends; the bound only guards a bug
        if draw - seed > 10_000 * max(count, 1):
            raise RuntimeError(f"draw_targets: no new class pair after {draw - seed} draws.")
        target = pick_target(test, draw)
        draw += 1
        if (target.label, target.adv_label) in pairs or target.index in images:
            continue
        pairs.add((target.label, target.adv_label))
        images.add(target.index)
        chosen.append(target)
    return chosen


def validation_targets(test: ImageData, count: int, val_seed: int) -> list[Target]:
    """The validation pool: ``count`` targets from seeds ``val_seed``, ``val_seed + 1``, ... (ours)."""
    return draw_targets(test, count, val_seed)


def evaluated_targets(test: ImageData, count: int, validation: Iterable[Target]) -> list[Target]:
    """The evaluated targets: ``count`` targets from seeds 0, 1, ... (the paper's Fig. 2 draws),
    sharing neither an image nor a class pair with ``validation``."""
    return draw_targets(test, count, 0, exclude=validation)


def target_ids(targets: Iterable[Target]) -> list[str]:
    """``"target:<test index>"`` per target: the ids a :class:`ddrepro.tuning.Choice` records."""
    return [f"target:{t.index}" for t in targets]


__all__ = ["draw_targets", "evaluated_targets", "target_ids", "validation_targets"]
