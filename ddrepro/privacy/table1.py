"""Table 1 (Dong et al. 2022, Sec. 5.1): do the images that initialised S leak more than other members?

The loss attack of :mod:`ddrepro.privacy.mia` between the initialisation
images of one preparation and as many other probed members *of the same
classes*, drawn at random: a comparison group from other classes would mix
membership with class difficulty. The placebo singles out the images a real
initialisation would have copied, on the noise-initialised set of the same
preparation, where nothing was copied. The preparations and their probes are
:func:`ddrepro.privacy.membership.prepare`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..condense.base import initial_synthetic
from ..data import ImageData
from ..evaluate import EvalResult
from ..runtime import make_generator
from ..synthetic import SyntheticSet
from .mia import ThresholdAttack, loss_threshold_attack


def class_matched(labels: Tensor, singled: Tensor, pool: Tensor, seed: int, *,
                  strict: bool = True) -> Tensor:
    """Entries of ``pool`` drawn at random, as many of each class as ``singled`` holds (all of a
    class's entries when ``pool`` has fewer and not ``strict``; strict raises).

    ``labels`` gives the class of every index that ``singled`` and ``pool`` name. Table 1
    compares the initialisation images with as many other members (Sec. 5.1); drawing them
    per class keeps class difficulty out of what the attack separates.
    """
    gen = torch.Generator().manual_seed(seed)
    picks = [pool[:0]]
    classes, counts = torch.unique(labels[singled], return_counts=True)
    for c, k in zip(classes.tolist(), counts.tolist()):
        same = pool[labels[pool] == c]
        if same.numel() < k and strict:
            raise ValueError(f"class {c}: {k} singled-out images but only {same.numel()} others to "
                             "compare them with; probe more members (raise n).")
        picks.append(same[torch.randperm(same.numel(), generator=gen)[:k]])
    return torch.cat(picks)


def _member_losses(result: EvalResult, rows: Tensor) -> Tensor:
    member_loss = result.probes["members"]["loss"][0]
    if member_loss.shape != rows.shape:
        raise ValueError(f"{len(rows)} probed rows but {member_loss.numel()} member losses: pass the "
                         "rows that prepare() returned with this result.")
    return member_loss


def _singled_out(syn: SyntheticSet, rows: Tensor, members: ImageData,
                 init_indices: Tensor | None) -> Tensor:
    """Which probed ``rows`` are the initialisation images of ``syn`` (or ``init_indices``)."""
    used = syn.meta.get("init_indices") if init_indices is None else init_indices
    if used is None:
        return torch.zeros(len(rows), dtype=torch.bool)
    return torch.isin(members.source_index[rows], used)


def probe_losses(syn: SyntheticSet, result: EvalResult, rows: Tensor, members: ImageData,
                 init_indices: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The victim's losses from one ``prepare`` ``(syn, result, rows)`` of ``members``:
    on the initialisation images, on the other probed members, on the non-members.

    ``init_indices`` (root indices) overrides ``syn.meta["init_indices"]``: the images
    to single out (a placebo for a noise-initialised set, probed through ``also_probe``).
    """
    member_loss = _member_losses(result, rows)
    is_init = _singled_out(syn, rows, members, init_indices)
    return member_loss[is_init], member_loss[~is_init], result.probes["nonmembers"]["loss"][0]


def comparison_members(syn: SyntheticSet, rows: Tensor, members: ImageData, *, seed: int,
                       init_indices: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Positions in ``rows`` of the singled-out images (the initialisation images of ``syn``, or
    ``init_indices``) and of as many other probed members of the same classes, drawn at random
    (``seed``): the two groups Table 1's attack separates."""
    is_init = _singled_out(syn, rows, members, init_indices)
    singled = torch.nonzero(is_init).flatten()
    if singled.numel() < 2:
        raise ValueError(f"{singled.numel()} probed initialisation image(s): the attack needs >= 2; "
                         "use a real initialisation (or pass init_indices with also_probe) and ipc >= 1 "
                         "over >= 2 classes.")
    return singled, class_matched(members.labels[rows], singled, torch.nonzero(~is_init).flatten(), seed)


def init_attack(syn: SyntheticSet, result: EvalResult, rows: Tensor, members: ImageData, *,
                seed: int, init_indices: Tensor | None = None) -> ThresholdAttack:
    """Table 1's loss attack on one preparation: the images that initialised S (or
    ``init_indices``) against as many other probed members of the same classes, drawn at random
    (:func:`comparison_members`), ``n`` = half of them."""
    member_loss = _member_losses(result, rows)
    singled, matched = comparison_members(syn, rows, members, seed=seed, init_indices=init_indices)
    return loss_threshold_attack(member_loss[singled], member_loss[matched], seed=seed)


def placebo_indices(members: ImageData, ipc: int, seed: int) -> Tensor:
    """Root indices of the images a real initialisation of ``members`` with ``seed`` copies
    (the draw of :func:`~ddrepro.condense.base.initial_synthetic`, without condensing): Table 1's
    placebo attacks them on the noise-initialised set of the same preparation."""
    classes = [torch.nonzero(members.labels == c).flatten() for c in range(members.num_classes)]
    _, _, rows = initial_synthetic(members.images, classes, ipc, "real", make_generator(seed))
    return members.source_index[rows]


__all__ = ["class_matched", "comparison_members", "init_attack", "placebo_indices", "probe_losses"]
