"""Chapter 4's grids (``book/04_bias``): Table 1's cells, the colour-op check and Table 2, and
the debiasing study, each with the full-set control."""

from __future__ import annotations

import torch

from ..executor import Job
from ..grids import register_grid
from ..profiles import Profile
from . import study as bs
from .debias import DebiasConfig


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


def _bias_jobs(prof: Profile, cells: list[tuple[str, str, float, int, bool]], full_ratios: tuple,
               *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """One :func:`ddrepro.bias.study.distil_and_score` job per cell, then the full-set control
    at each of ``full_ratios`` (severity ``bias.severity``, named ``"full/r95/s4"``)."""

    jobs, sets = [], {}

    def data(ratio: float, severity: int):
        if (ratio, severity) not in sets:
            sets[ratio, severity] = (bs.biased_split(prof, ratio, severity, seed),
                                     bs.biased_test(prof, severity, seed))
        return sets[ratio, severity]

    for name, method, ratio, severity, colour in cells:
        real, test = data(ratio, severity)
        aug = prof.aug if colour else bs.without_colour(prof.aug)
        kwargs = dict(method=method, real=real, test=test, ipc=prof.bias.ipc,
                      config=prof.condenser_config(method), seed=seed, net_cfg=prof.net,
                      aug_cfg=aug, eval_cfg=prof.eval, device=device, quiet=quiet)
        jobs.append(Job(bs.distil_and_score, kwargs, name=name))
    for ratio in full_ratios:
        real, test = data(ratio, prof.bias.severity)
        kwargs = dict(real=real, test=test, net_cfg=prof.net, eval_cfg=bs.full_eval_config(prof),
                      aug_cfg=prof.aug, seed=seed, device=device, quiet=quiet)
        jobs.append(Job(bs.full_control, kwargs, name=f"full/r{ratio:g}/s{prof.bias.severity}"))
    return jobs


@register_grid("cmnist")
def cmnist(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 4's Table 1 at the profile: one job per :func:`cmnist_cells` cell
    (``(SyntheticSet, EvalResult, 0.0)``) and the full-set control at ``full_ratios``
    (``"full/r95/s4"``)."""
    return _bias_jobs(prof, cmnist_cells(prof), prof.bias.full_ratios, seed=seed, device=device,
                      quiet=quiet)


@register_grid("shortcut")
def shortcut(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 4's colour-op check and Table 2: one job per :func:`shortcut_cells` cell, and the
    full-set control at ``colour_ratio``."""
    return _bias_jobs(prof, shortcut_cells(prof), (prof.bias.colour_ratio,), seed=seed,
                      device=device, quiet=quiet)


@register_grid("debiased")
def debiased(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 4's debiasing study: each of ``debias_methods`` plain and reweighted at
    ``debias_ratios``, ``repeats`` seeds (``seed``, ``seed + 1``, ...: distillation and
    evaluation; one biased data set per ratio, built with ``seed``), jobs ``"dm/r95/k0"`` and
    ``"dm-debiased/r95/k0"``, plus the full-set control per ratio (``"full/r95"``)."""

    bias = prof.bias
    weighting = DebiasConfig(bandwidth=bias.debias_bandwidth, power=bias.debias_power)
    jobs = []
    for ratio in bias.debias_ratios:
        real = bs.biased_split(prof, ratio, bias.severity, seed)
        test = bs.biased_test(prof, bias.severity, seed)
        for method in bias.debias_methods:
            for k in range(bias.repeats):
                for label, debias in ((method, None), (f"{method}-debiased", weighting)):
                    kwargs = dict(method=method, real=real, test=test, ipc=bias.ipc,
                                  config=prof.condenser_config(method), seed=seed + k,
                                  net_cfg=prof.net, aug_cfg=prof.aug, eval_cfg=prof.eval,
                                  debias=debias, device=device, quiet=quiet)
                    jobs.append(Job(bs.distil_and_score, kwargs, name=f"{label}/r{ratio:g}/k{k}"))
        kwargs = dict(real=real, test=test, net_cfg=prof.net, eval_cfg=bs.full_eval_config(prof),
                      aug_cfg=prof.aug, seed=seed, device=device, quiet=quiet)
        jobs.append(Job(bs.full_control, kwargs, name=f"full/r{ratio:g}"))
    return jobs


__all__ = ["cmnist", "cmnist_cells", "debiased", "shortcut", "shortcut_cells"]
