"""Chapter 4's cells (Lu et al. 2024): biased splits, distil-and-score, the full-set control.

Every function is an ordinary call of the cached engine (``condense``,
``evaluate``, ``train_full``), so the chapter's notebooks, the grids in
:mod:`ddrepro.grids` and ``ddrepro precompute`` share artifacts.

The test set. The authors' generator builds the test split at a biased ratio
of 0: every test image is bias-conflicting (its colour belongs to another
digit). We evaluate once on a split with ``test_aligned`` % aligned images
(default 50) and read the accuracy per (class, aligned) cell (``evaluate(...,
group_by="cell")``): the conflicting half is drawn exactly as the release draws
its test set, so its accuracy is the paper's metric, the aligned half shows
what the shortcut buys, and the worst class on conflicting images shows whether
the mean hides a class the shortcut still owns. A colour-balanced ("unbiased") test set, where every
colour is equally likely, would score ``0.1 * aligned + 0.9 * conflicting``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..condense import condense
from ..config import AugConfig, EvalConfig, NetConfig, dc_protocol, replace_checked
from .biased import BIASED_SETS, BiasedConfig, load_biased
from ..data.dataset import ImageData
from ..data.loading import load
from .debias import DebiasConfig, debias_weights, debiased
from ..evaluate import EvalResult, evaluate, train_full
from ..profiles import Profile
from ..synthetic import SyntheticSet
from ..tuning import Choice, choose

# The test and validation splits carry attribute "cell" = 2 * class + aligned: evaluating with
# group_by="cell" gives the accuracy of every (class, aligned) cell, from which the aligned,
# conflicting and worst-class conflicting accuracies follow (group_accuracies).
GROUP_BY = "cell"


def with_cells(data: ImageData) -> ImageData:
    """``data`` with attribute ``cell`` = ``2 * label + aligned`` (:data:`GROUP_BY`)."""
    return data.with_attrs(cell=2 * data.labels.cpu() + data.attrs["aligned"].long())


def biased_split(prof: Profile, ratio: float, severity: int, seed: int) -> ImageData:
    """The training set of a cell: ``prof.data.train_per_class`` images per class, biased; ``seed``
    draws both which images and which of them are bias-conflicting."""
    return load_biased(prof.bias.dataset, "train", ratio, severity, seed=seed,
                       per_class=prof.data.train_per_class)


def biased_test(prof: Profile, severity: int, seed: int) -> ImageData:
    """``prof.data.test_size`` test images, ``prof.bias.test_aligned`` % of them bias-aligned."""
    return with_cells(load_biased(prof.bias.dataset, "test", prof.bias.test_aligned, severity,
                                  seed=seed, size=prof.data.test_size))


def biased_validation(prof: Profile, train: ImageData, severity: int, seed: int,
                      ratio: float | None = None) -> ImageData:
    """``prof.bias.val_per_class`` *training* images per class that are not in ``train``, biased at
    ``ratio`` % (default ``test_aligned``, its conflicting images drawn as the test set's): the
    split any choice is made on (the full-set control's epochs, the reweighting's settings),
    never the test set."""
    parent_name, build = BIASED_SETS[prof.bias.dataset]
    parent = load(parent_name, "train")
    rest = parent.take(~torch.isin(parent.source_index, train.source_index))
    rest = rest.subset_per_class(prof.bias.val_per_class, seed=seed)
    ratio = prof.bias.test_aligned if ratio is None else ratio
    return with_cells(build(rest, BiasedConfig(ratio=ratio, severity=severity), seed=seed))


def split_ids(data: ImageData) -> list[str]:
    """``"<name>/<split>:<source index>"`` per row: ids for :class:`ddrepro.tuning.Choice` that
    tell a training-split image from a test-split image of the same index."""
    return [f"{data.name}/{data.split}:{int(i)}" for i in data.source_index.tolist()]


def without_colour(aug: AugConfig) -> AugConfig:
    """``aug`` without DSA's colour op (which rescales brightness and saturation at random)."""
    ops = [op for op in aug.strategy.split("_") if op != "color"]
    return replace_checked(aug, strategy="_".join(ops))


def condenser_eval_config(prof: Profile, method: str) -> EvalConfig:
    """How a synthetic set of ``method`` is evaluated: DC under its own paper's protocol
    (:func:`ddrepro.config.dc_protocol`, as Chapter 1), DSA and DM under DSA's (``prof.eval``)."""
    if method == "dc":
        return dc_protocol(prof.eval, BIASED_SETS[prof.bias.dataset][0])
    return prof.eval


def paper_decay_epochs(epochs: int) -> tuple[int, ...]:
    """The bias paper's full-set schedule in proportion: x0.1 at a third and at two thirds of
    ``epochs`` (Sec. 4.2: epochs 50 and 100 of 150); decays that would fall outside [1, epochs)
    or coincide are dropped (1 epoch: constant rate)."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"paper_decay_epochs needs an epoch count >= 1, got {epochs!r}.")
    return tuple(sorted({e for e in (round(epochs / 3), round(2 * epochs / 3)) if 1 <= e < epochs}))


def full_eval_config(prof: Profile, epochs: int | None = None) -> EvalConfig:
    """The full-set control's recipe (paper Sec. 4.2: SGD lr 0.01, momentum 0.9, weight decay
    5e-4, batch 256, x0.1 at a third and two thirds of the epochs), ``epochs`` (default
    ``bias.full_epochs``), one network per seed, augmented as ``bias.full_augment``."""
    epochs = prof.bias.full_epochs if epochs is None else epochs
    return replace_checked(prof.full, epochs=epochs, decay_epochs=paper_decay_epochs(epochs),
                           lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=256, n_models=1,
                           augment=prof.bias.full_augment)


def distil_and_score(*, method: str, real: ImageData, test: ImageData, ipc: int, config: Any,
                     seed: int, net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                     debias: DebiasConfig | None = None, oracle: bool = False,
                     eval_aug_cfg: AugConfig | None = None, device: str | torch.device = "auto",
                     quiet: bool | None = None) -> tuple[SyntheticSet, EvalResult, float]:
    """Condense ``real`` (reweighted by :func:`ddrepro.bias.debias.debiased` when ``debias``, or
    by the true group weights when ``oracle``) with ``aug_cfg``, then evaluate with accuracy per
    (class, aligned) cell, the evaluation networks augmented with ``eval_aug_cfg`` (default
    ``aug_cfg``: the papers' protocol uses one augmentation for both). Returns the set, the result
    and the seconds the reweighting took (0 without it); condensing time is
    ``syn.meta["seconds"]``."""
    if debias is not None and oracle:
        raise ValueError("distil_and_score: pass debias or oracle, not both.")
    start = time.perf_counter()
    if debias is not None:
        real = debiased(real, debias, seed=seed)
    if oracle:
        real = real.with_weights(group_weights(real))
    weigh_s = time.perf_counter() - start if debias is not None or oracle else 0.0
    syn = condense(method, real, ipc, config=config, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                   device=device, quiet=quiet)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg,
                      aug_cfg=aug_cfg if eval_aug_cfg is None else eval_aug_cfg, seed=seed,
                      flip=real.flip_ok, group_by=GROUP_BY, device=device, quiet=quiet)
    return syn, result, weigh_s


def group_weights(real: ImageData) -> torch.Tensor:
    """Weights ``1 / n(class, bias attribute)``, mean 1 per class: every (class, colour) group the
    same total weight. Reads the *true* bias labels: the upper bound reweighting can reach."""
    key = real.labels.cpu() * 1000 + real.attrs["bias"].cpu()
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse].double()
    for rows in real.indices_by_class():
        w[rows] = w[rows] / w[rows].mean()
    return w.float()


def subset_and_score(*, real: ImageData, test: ImageData, ipc: int, seed: int, debias: DebiasConfig,
                     net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                     device: str | torch.device = "auto",
                     quiet: bool | None = None) -> tuple[SyntheticSet, EvalResult, float]:
    """The selection baseline: ``ipc`` real images per class drawn without replacement with
    probabilities proportional to the inverse-density weights of ``debias`` (no distillation),
    evaluated as a synthetic set."""
    start = time.perf_counter()
    w = debias_weights(real, debias).double()
    gen = torch.Generator().manual_seed(seed)
    picks = [rows[torch.multinomial(w[rows], min(ipc, rows.numel()), replacement=False, generator=gen)]
             for rows in real.indices_by_class()]
    chosen = real.take(torch.cat(picks).long())
    seconds = time.perf_counter() - start
    syn = SyntheticSet(chosen.images.clone(), chosen.labels.clone(), real.mean, real.std,
                       meta={"method": "weighted subset", "ipc": ipc, "seed": seed, "seconds": seconds,
                             "init_indices": chosen.source_index.clone()})
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=real.flip_ok, group_by=GROUP_BY, device=device, quiet=quiet)
    return syn, result, seconds


def group_balanced(real: ImageData, seed: int) -> ImageData:
    """``real`` resampled with replacement (same size per class) so that every (class, colour)
    group is drawn equally often: group-balanced resampling, a standard debiasing of ERM that reads
    the true group labels (as GroupDRO and JTT's validation do)."""
    from .debias import resample_by_weight

    return resample_by_weight(real, group_weights(real), seed)


def full_control(*, real: ImageData, val: ImageData | None, test: ImageData, net_cfg: NetConfig,
                 eval_cfg: EvalConfig, candidates: tuple[int, ...], aug_cfg: AugConfig, seed: int,
                 balanced: bool = False, device: str | torch.device = "auto",
                 quiet: bool | None = None) -> dict[str, Any]:
    """The network trained on the whole biased training set, with accuracy per (class, aligned)
    cell of ``test``; ``balanced``: on ``real`` resampled to balanced groups (:func:`group_balanced`).

    With ``candidates``, the epoch count is chosen first among them (schedule in proportion,
    :func:`paper_decay_epochs`) by the ERM network's conflicting accuracy on ``val`` (the choice
    refuses a ``test`` that shares a row with ``val``); else ``eval_cfg.epochs``. Returns
    ``{"result": EvalResult, "choice": Choice | None}``."""
    choice: Choice | None = None
    if candidates and val is None:
        raise ValueError("full_control: choosing the epochs among candidates needs a validation "
                         "split (val); pass one, or candidates=() to train eval_cfg.epochs.")
    if candidates:
        scores = {}
        for epochs in candidates:
            cfg = replace_checked(eval_cfg, epochs=epochs, decay_epochs=paper_decay_epochs(epochs))
            scored = train_full(real, val, net_cfg=net_cfg, eval_cfg=cfg, aug_cfg=aug_cfg, seed=seed,
                                group_by=GROUP_BY, keep_models=True, device=device, quiet=quiet)
            scores[epochs] = group_accuracies(scored, val)["conflicting"]
        choice = choose("full-set epochs", scores, rows=split_ids(val),
                        chosen_on=f"conflicting accuracy on {len(val)} held-out training images")
        choice.check_disjoint(split_ids(test), "the test images")
        eval_cfg = replace_checked(eval_cfg, epochs=choice.value,
                                   decay_epochs=paper_decay_epochs(choice.value))
    fit = group_balanced(real, seed) if balanced else real
    result = train_full(fit, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                        group_by=GROUP_BY, keep_models=not balanced, device=device, quiet=quiet)
    result.models = None  # the answers are what the pages read; the models stay in the cache
    return {"result": result, "choice": choice}


def group_accuracies(result: EvalResult, test: ImageData) -> dict[str, float]:
    """Mean accuracy (%) over ``result``'s networks on ``test``'s conflicting and aligned images,
    the worst class on conflicting images, a colour-balanced test set (one image in ten
    aligned), and the std of the conflicting accuracy over the networks, from a result evaluated
    with ``group_by="cell"`` on ``test``."""
    cells = test.attrs[GROUP_BY].cpu()
    acc = {int(k): v.double() for k, v in result.groups.items()}
    total = {0: 0.0, 1: 0.0}
    count = {0: 0, 1: 0}
    per_class = []
    for cell, value in acc.items():
        n = int((cells == cell).sum())
        total[cell % 2] = total[cell % 2] + value * n
        count[cell % 2] += n
        if cell % 2 == 0:
            per_class.append(value)
    if not count[0] or not count[1]:
        raise ValueError("group_accuracies needs aligned and conflicting test images, evaluated "
                         f"with group_by={GROUP_BY!r}; got cells {sorted(acc)}.")
    per_model = total[0] / count[0]
    conflicting = 100 * float(per_model.mean())
    aligned = 100 * float((total[1] / count[1]).mean())
    worst = 100 * float(torch.stack(per_class).min(0).values.mean())
    return {"conflicting": conflicting, "aligned": aligned, "worst class": worst,
            "balanced": 0.1 * aligned + 0.9 * conflicting,
            "conflicting std": 100 * float(per_model.std(unbiased=False))}


__all__ = ["GROUP_BY", "biased_split", "biased_test", "biased_validation", "condenser_eval_config",
           "distil_and_score", "full_control", "full_eval_config", "group_accuracies", "group_balanced",
           "group_weights", "paper_decay_epochs", "split_ids", "subset_and_score", "with_cells",
           "without_colour"]
