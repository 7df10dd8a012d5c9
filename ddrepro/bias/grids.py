"""Chapter 4's grids (``book/04_bias``): Table 1's cells, the colour-op check and Table 2, and
the debiasing study, each with the full-set control."""

from __future__ import annotations

import functools

import torch

from ..executor import Job
from ..grids import register_grid
from ..profiles import Profile
from . import study as bs
from .debias import DebiasConfig
from .erm import erm_distil_and_score


def cmnist_cells(prof: Profile) -> list[tuple[str, str, float, int, bool]]:
    """The (job name, method, ratio, severity, colour op kept) cells of ``book/04_bias/cmnist``
    (Table 1): DM at every ratio, DSA at ``dsa_ratios``, DC at ``dc_ratios``."""
    bias = prof.bias
    cells = [(f"dm/r{r:g}/s{bias.severity}", "dm", r, bias.severity, True) for r in bias.ratios]
    cells += [(f"dsa/r{r:g}/s{bias.severity}", "dsa", r, bias.severity, True) for r in bias.dsa_ratios]
    cells += [(f"dc/r{r:g}/s{bias.severity}", "dc", r, bias.severity, True) for r in bias.dc_ratios]
    return cells


def shortcut_cells(prof: Profile) -> list[tuple[str, str, float, int, bool]]:
    """The cells of ``book/04_bias/shortcut``: DM and DSA at ``colour_ratio`` with and without
    DSA's colour op, and DM at ratios 0 and 100 % for every severity of Table 2 (cells shared
    with :func:`cmnist_cells` carry the same name and arguments, so they are cache hits)."""
    bias = prof.bias
    r, s0 = bias.colour_ratio, bias.severity
    cells = [(f"{m}{tag}/r{r:g}/s{s0}", m, r, s0, colour)
             for m in ("dm", "dsa") for tag, colour in (("", True), ("-nocolour", False))]
    cells += [(f"dm/r{ratio:g}/s{s}", "dm", ratio, s, True)
              for s in sorted(set(bias.severities)) for ratio in (0.0, 100.0)]
    return cells


def full_jobs(prof: Profile, ratio: float, *, seed: int, device: str | torch.device,
              quiet: bool | None, balanced: bool = False) -> list[Job]:
    """The full-set control at ``ratio`` (severity ``bias.severity``), one job per seed ``seed + k``
    (``k < bias.full_seeds``), each on its own redrawn biased set, validation split and network:
    ``"full/r95/s4/k0"`` (``"full-balanced/..."``: group-balanced resampling)."""
    bias, jobs = prof.bias, []
    test = bs.biased_test(prof, bias.severity, seed)
    for k in range(bias.full_seeds):
        real = bs.biased_split(prof, ratio, bias.severity, seed + k)
        # a validation split only where a choice is made: at `paper` the training set is all
        # of MNIST's training images and the paper's 150 epochs are taken as given
        val = (bs.biased_validation(prof, real, bias.severity, seed + k)
               if bias.full_epoch_candidates else None)
        kwargs = dict(real=real, val=val, test=test, net_cfg=prof.net, eval_cfg=bs.full_eval_config(prof),
                      candidates=bias.full_epoch_candidates, aug_cfg=prof.aug, seed=seed + k,
                      balanced=balanced, device=device, quiet=quiet)
        label = "full-balanced" if balanced else "full"
        jobs.append(Job(bs.full_control, kwargs, name=f"{label}/r{ratio:g}/s{bias.severity}/k{k}"))
    return jobs


def seeded(name: str, k: int) -> str:
    """The job name of a cell's ``k``-th distillation seed (``seed + k``): ``"dm/r95/s4/k1"``."""
    return f"{name}/k{k}"


def _bias_jobs(prof: Profile, cells: list[tuple[str, str, float, int, bool]], full_ratios: tuple,
               *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """One :func:`ddrepro.bias.study.distil_and_score` job per cell and seed ``seed + k``
    (``k < bias.repeats``, each redrawing the biased training set; :func:`seeded` names it; DC
    evaluated under its own protocol, :func:`ddrepro.bias.study.condenser_eval_config`), then
    the full-set control at each of ``full_ratios`` (:func:`full_jobs`)."""

    jobs = []
    train = functools.cache(lambda ratio, severity, s: bs.biased_split(prof, ratio, severity, s))
    # the test split stays the first seed's: seeds redraw what is distilled, not the exam
    test_of = functools.cache(lambda severity: bs.biased_test(prof, severity, seed))

    for name, method, ratio, severity, colour in cells:
        for k in range(prof.bias.repeats):
            real, test = train(ratio, severity, seed + k), test_of(severity)
            aug = prof.aug if colour else bs.without_colour(prof.aug)
            kwargs = dict(method=method, real=real, test=test, ipc=prof.bias.ipc,
                          config=prof.condenser_config(method), seed=seed + k, net_cfg=prof.net,
                          aug_cfg=aug, eval_cfg=bs.condenser_eval_config(prof, method), device=device,
                          quiet=quiet)
            jobs.append(Job(bs.distil_and_score, kwargs, name=seeded(name, k)))
    for ratio in full_ratios:
        jobs += full_jobs(prof, ratio, seed=seed, device=device, quiet=quiet)
    return jobs


@register_grid("cmnist")
def cmnist(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 4's Table 1 at the profile: one job per :func:`cmnist_cells` cell and seed
    (``"dm/r95/s4/k0"``: ``(SyntheticSet, EvalResult, seconds)``) and the full-set control at ``full_ratios``
    (``"full/r95/s4/k0"``, ``bias.full_seeds`` seeds)."""
    return _bias_jobs(prof, cmnist_cells(prof), prof.bias.full_ratios, seed=seed, device=device,
                      quiet=quiet)


def colour_op_cells(prof: Profile) -> list[tuple[str, str, bool, bool]]:
    """The two off-diagonal cells of the colour op's 2 x 2 for DM and DSA at ``colour_ratio``:
    ``(job name, method, colour op while distilling, colour op while evaluating)``; the diagonal
    is :func:`shortcut_cells`' ``"dm/r95/s4"`` (both on) and ``"dm-nocolour/r95/s4"`` (both off)."""
    r, s0 = prof.bias.colour_ratio, prof.bias.severity
    return [(f"{m}-{tag}/r{r:g}/s{s0}", m, distil, evaluate)
            for m in ("dm", "dsa")
            for tag, distil, evaluate in (("distil-nocolour", False, True), ("eval-nocolour", True, False))]


@register_grid("shortcut")
def shortcut(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 4's colour-op check and Table 2: one job per :func:`shortcut_cells` cell and seed, the
    colour op's off-diagonal cells (:func:`colour_op_cells`: the op while distilling and while
    evaluating separated), and the full-set control at ``colour_ratio``."""
    jobs = _bias_jobs(prof, shortcut_cells(prof), (prof.bias.colour_ratio,), seed=seed,
                      device=device, quiet=quiet)
    r, s0 = prof.bias.colour_ratio, prof.bias.severity
    test, plain = bs.biased_test(prof, s0, seed), bs.without_colour(prof.aug)
    for k in range(prof.bias.repeats):
        real = bs.biased_split(prof, r, s0, seed + k)
        for name, method, distil, evaluate in colour_op_cells(prof):
            kwargs = dict(method=method, real=real, test=test, ipc=prof.bias.ipc,
                          config=prof.condenser_config(method), seed=seed + k, net_cfg=prof.net,
                          aug_cfg=prof.aug if distil else plain,
                          eval_aug_cfg=prof.aug if evaluate else plain,
                          eval_cfg=bs.condenser_eval_config(prof, method), device=device, quiet=quiet)
            jobs.append(Job(bs.distil_and_score, kwargs, name=seeded(name, k)))
    return jobs


@register_grid("debiased")
def debiased(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 4's debiasing study and its baselines at ``debias_ratios``, ``repeats`` seeds
    ``seed + k``, each redrawing the biased training set (``biased_split(..., seed + k)``) and
    driving distillation and evaluation:

    - each of ``debias_methods`` plain (``"dm/r95/k0"``) and reweighted, once per
      ``debias_samplings`` (``"dm-debiased/r95/k0"`` weighted means, ``"dm-resampled/r95/k0"``
      the set redrawn by weight);
    - with ``baselines``: the random real subset DM starts from (``"random/..."``, same seed, same
      rows), a real subset drawn by the inverse-density weights (``"weighted-subset/..."``), DM with
      the true group weights (``"dm-oracle/..."``, an upper bound for reweighting), the full set
      resampled to balanced groups (``"full-balanced/r95/s4/k0"``);
    - DM weighted by inverse density in the embedding of a briefly trained ERM network, a feature
      that does not assume the bias (``"dm-erm/r95/k0"``, :func:`ddrepro.bias.erm.erm_distil_and_score`:
      its bandwidth and weight cap chosen on the seed's validation split), where the profile
      leaves training images outside the training set to validate on (not at ``paper``);
    - the full-set control (``"full/r95/s4/k0"``, :func:`full_jobs`).

    Every job returns ``(SyntheticSet, EvalResult, seconds)`` but the full-set ones
    (:func:`ddrepro.bias.study.full_control`) and the ERM ones (the triple and the choice)."""

    bias = prof.bias
    test = bs.biased_test(prof, bias.severity, seed)
    jobs = []
    for ratio in bias.debias_ratios:
        for k in range(bias.repeats):
            real = bs.biased_split(prof, ratio, bias.severity, seed + k)
            common = dict(real=real, test=test, ipc=bias.ipc, seed=seed + k, net_cfg=prof.net,
                          aug_cfg=prof.aug, eval_cfg=prof.eval, device=device, quiet=quiet)
            for method in bias.debias_methods:
                eval_cfg = bs.condenser_eval_config(prof, method)
                cell = common | dict(method=method, config=prof.condenser_config(method), eval_cfg=eval_cfg)
                jobs.append(Job(bs.distil_and_score, cell, name=f"{method}/r{ratio:g}/k{k}"))
                for sampling in bias.debias_samplings:
                    weighting = DebiasConfig(bandwidth=bias.debias_bandwidth, power=bias.debias_power,
                                             sampling=sampling)
                    label = f"{method}-{SAMPLING_LABEL[sampling]}"
                    jobs.append(Job(bs.distil_and_score, cell | dict(debias=weighting),
                                    name=f"{label}/r{ratio:g}/k{k}"))
            if bias.baselines:
                weighting = DebiasConfig(bandwidth=bias.debias_bandwidth, power=bias.debias_power)
                jobs.append(Job(bs.distil_and_score, common | dict(method="random", config=None),
                                name=f"random/r{ratio:g}/k{k}"))
                jobs.append(Job(bs.subset_and_score, common | dict(debias=weighting),
                                name=f"weighted-subset/r{ratio:g}/k{k}"))
                jobs.append(Job(bs.distil_and_score, common | dict(
                    method="dm", config=prof.condenser_config("dm"), oracle=True),
                    name=f"dm-oracle/r{ratio:g}/k{k}"))
            if erm_validates(prof):
                val = bs.biased_validation(prof, real, bias.severity, seed + k, ratio=ratio)
                jobs.append(Job(erm_distil_and_score, common | dict(
                    method="dm", config=prof.condenser_config("dm"), val=val),
                    name=f"dm-erm/r{ratio:g}/k{k}"))
        jobs += full_jobs(prof, ratio, seed=seed, device=device, quiet=quiet)
        if bias.baselines:
            jobs += full_jobs(prof, ratio, seed=seed, device=device, quiet=quiet, balanced=True)
    return jobs


def erm_validates(prof: Profile) -> bool:
    """Whether the ERM feature's settings can be chosen on held-out training images: the training
    set is a per-class subset (at ``paper`` it is all of the training images, and no validation
    split is left; the full-set control then takes the paper's epochs without a choice)."""
    return prof.data.train_per_class is not None


# how a sampling of the debiasing weights is named in job names and tables
SAMPLING_LABEL = {"weights": "debiased", "resample": "resampled"}


__all__ = ["SAMPLING_LABEL", "cmnist", "cmnist_cells", "colour_op_cells", "debiased", "erm_validates",
           "full_jobs", "seeded", "shortcut", "shortcut_cells"]
