"""The chapters' grids of independent jobs, so a cluster can fill the cache a notebook reads.

A grid builder takes the resolved profile and the notebook's ``seed``,
``device`` and ``quiet`` and returns the :class:`ddrepro.executor.Job` list
that computes a chapter's expensive results. Each job calls the cached
functions with *exactly* the arguments the notebook passes, so the artifact
keys agree: after ``ddrepro precompute CHAPTER`` (on Ray, or as shards of a
job array) the notebook's own calls are cache hits, and the notebook, run by
``ddrepro run CHAPTER``, only joins results.

    jobs = GRIDS.get("does_it_work")(prof, seed=0, device="auto", quiet=None)
    results = get_executor("ray").map(jobs)
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from . import data
from .condense import condense
from .config import AugConfig, EvalConfig, NetConfig
from .evaluate import EvalResult, evaluate, train_full
from .executor import Job
from .profiles import Profile
from .registry import Registry
from .synthetic import SyntheticSet

# (prof, *, seed, device, quiet) -> list[Job]
GridBuilder = Callable[..., list[Job]]

GRIDS: Registry[GridBuilder] = Registry("grid")


def register_grid(name: str, *, replace: bool = False) -> Callable[[GridBuilder], GridBuilder]:
    """Decorator: ``@register_grid("does_it_work")`` above a grid builder; ``name`` is the chapter's stem."""
    return GRIDS.register(name, replace=replace)


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

    The two calls of Chapter 1's main loop, argument for argument.
    """
    syn = condense(method, real, ipc, config=config, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                   device=device, quiet=quiet)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=real.flip_ok, device=device, quiet=quiet)
    return syn, result


@register_grid("does_it_work")
def does_it_work(prof: Profile, *, seed: int, device: str | torch.device,
                 quiet: bool | None) -> list[Job]:
    """Chapter 1's table: per data set, one job per (ipc, method), then the full-data ceiling.

    Job names: ``"mnist/dm/ipc10"`` and ``"mnist/full"``. A job's result is
    ``(SyntheticSet, EvalResult)``, or the ceiling's ``EvalResult``.
    """
    jobs = []
    for name in prof.data.datasets:
        real, test = real_and_test(prof, name, seed)  # loaded once, shared by this data set's jobs
        for ipc in prof.ipcs:
            for method in prof.methods:
                kwargs = dict(method=method, real=real, test=test, ipc=ipc,
                              config=prof.condenser_config(method), seed=seed, net_cfg=prof.net,
                              aug_cfg=prof.aug, eval_cfg=prof.eval, device=device, quiet=quiet)
                jobs.append(Job(condense_and_evaluate, kwargs, name=f"{name}/{method}/ipc{ipc}"))
        full = dict(real=real, test=test, net_cfg=prof.net, eval_cfg=prof.full, aug_cfg=prof.aug,
                    seed=seed, device=device, quiet=quiet)
        jobs.append(Job(train_full, full, name=f"{name}/full"))
    return jobs


@register_grid("claims")
def privacy_claims(prof: Profile, *, seed: int, device: str | torch.device,
                   quiet: bool | None) -> list[Job]:
    """Chapter 2's claims (``book/02_privacy/claims.md``): loss-MIA preparations, LiRA's shadow
    and target syntheses and the real-data control (:func:`ddrepro.membership.claims_jobs`)."""
    from .membership import claims_jobs  # lazy: keeps this module's import light

    return claims_jobs(prof, seed=seed, device=device, quiet=quiet)


@register_grid("critique")
def privacy_critique(prof: Profile, *, seed: int, device: str | torch.device,
                     quiet: bool | None) -> list[Job]:
    """Chapter 2's critique (``book/02_privacy/critique.md``): DM's LiRA syntheses (shared with
    ``claims``), the accuracy-matched baseline, DP-SGD and the canary audit
    (:func:`ddrepro.critique.critique_jobs`)."""
    from .critique import critique_jobs  # lazy: keeps this module's import light

    return critique_jobs(prof, seed=seed, device=device, quiet=quiet)


# -- Chapter 4, dataset bias (book/04_bias) -------------------------------------------

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
    """One :func:`ddrepro.bias_study.distil_and_score` job per cell, then the full-set control
    at each of ``full_ratios`` (severity ``bias.severity``, named ``"full/r95/s4"``)."""
    from . import bias_study as bs

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
    from . import bias_study as bs
    from .debias import DebiasConfig

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


__all__ = ["GRIDS", "GridBuilder", "condense_and_evaluate", "does_it_work", "real_and_test",
           "real_val_and_test", "register_grid",
           "cmnist", "cmnist_cells", "debiased", "shortcut", "shortcut_cells"]


# -- Chapter 3: poisoning and the RDM-DC defense --------------------------------------------

def poison_targets(prof: Profile, test: data.ImageData) -> list[Any]:
    """Chapter 3's targets: :func:`ddrepro.attacks.poison.pick_target` with seeds 0..targets-1 (Fig. 2)."""
    from .attacks.poison import pick_target

    return [pick_target(test, seed) for seed in range(prof.poison.targets)]


def _poison_setup(prof: Profile, seed: int, device: str | torch.device, quiet: bool | None,
                  rate: float | None = None) -> dict[str, Any]:
    """What every Chapter 3 grid shares: data, targets, the attack and victim configs, and the
    keyword arguments common to ``poison_cell`` and ``clean_cell`` (equal arguments, equal cache keys).
    ``rate``: the poisoning rate (None: ``prof.poison.rate``)."""
    import dataclasses

    from .attacks.gradient_matching import GMPoisonConfig
    from .attacks.poison import DMPoisonConfig
    from .config import DMConfig

    study = prof.poison
    real, test = real_and_test(prof, study.dataset, seed)
    rate = study.rate if rate is None else rate
    attack_cfg = DMPoisonConfig(eps=study.eps[0], rate=rate, steps=study.attack_steps,
                                restarts=study.restarts, step_size=study.attack_lr)
    gm_cfg = GMPoisonConfig(eps=study.eps[0], rate=rate, steps=study.attack_steps, restarts=study.restarts,
                            step_size=study.attack_lr, pretrained=study.pretrained,
                            pretrain_epochs=study.pretrain_epochs)
    common = dict(real=real, test=test, dm_cfg=DMConfig(steps=study.dm_steps, batch_real=study.batch_real),
                  ipc=study.ipc, power_iterations=study.power_iterations, net_cfg=prof.net,
                  aug_cfg=prof.aug, eval_cfg=dataclasses.replace(prof.eval, n_models=study.victims),
                  device=device, quiet=quiet, init=study.init)
    return {"targets": poison_targets(prof, test), "attack_cfg": attack_cfg, "gm_cfg": gm_cfg,
            "common": common}


def _clean_job(prof: Profile, setup: dict[str, Any], defense: str, run: int) -> Job:
    """The no-attack reference of ``defense``: eps_p as the defender assumes it (the first target's class)."""
    from .attacks.study import class_rate, clean_cell

    common, targets = setup["common"], setup["targets"]
    eps_p = class_rate(common["real"], setup["attack_cfg"].rate, targets[0].adv_label)
    return Job(clean_cell, dict(common, targets=targets, defense=defense, eps_p=eps_p, run=run),
               name=f"clean/{defense}/run{run}")


@register_grid("attack_and_defense")
def attack_and_defense(prof: Profile, *, seed: int, device: str | torch.device,
                       quiet: bool | None) -> list[Job]:
    """Chapter 3's table: one job per (target, attack, defense, run), each ``attacks.study.poison_cell``,
    and the no-attack reference per (defense, run), ``attacks.study.clean_cell``.

    DM poisoning at the first ``eps`` on the first ``dm_poison_targets`` targets (None: all),
    gradient-matching poisoning (Alg. 1) on the first ``gm_targets`` (None: all) and the direct
    attack on the first ``direct_targets``, all at ``table_rate`` (None: ``rate``) and against DM
    and RDM-DC; DM poisoning and the direct attack also against the baselines (every other
    defense of ``prof.poison``) on the first ``baseline_targets`` targets. Job names:
    ``"t3/dm_poison/rdm/run0"``, ``"clean/rdm/run0"``. The target's seed is its number; ``seed``
    picks the training subset and seeds the poisons (``seed + t``).
    The poisons' cache key holds no defense, so a target's defenses share one crafted set.
    """
    from .attacks.study import poison_cell

    study = prof.poison
    setup = _poison_setup(prof, seed, device, quiet, rate=study.table_rate)
    jobs = [_clean_job(prof, setup, defense, run) for defense in study.defenses for run in range(study.runs)]
    crafted = study.targets if study.dm_poison_targets is None else study.dm_poison_targets
    matched = study.targets if study.gm_targets is None else study.gm_targets
    configs = {"dm_poison": setup["attack_cfg"], "direct": setup["attack_cfg"], "grad_match": setup["gm_cfg"]}
    for t, target in enumerate(setup["targets"]):
        defenses = [d for d in study.defenses if d in ("dm", "rdm") or t < study.baseline_targets]
        cells = [("dm_poison", defense) for defense in defenses if t < crafted]
        # Table 3 runs gradient matching against DM and RDM-DC only
        cells += [("grad_match", defense) for defense in defenses if defense in ("dm", "rdm") and t < matched]
        cells += [("direct", defense) for defense in defenses if t < study.direct_targets]
        for attack, defense in cells:
            for run in range(study.runs):
                kwargs = dict(setup["common"], target=target, attack=attack, defense=defense,
                              attack_cfg=configs[attack], run=run, seed=seed + t)
                jobs.append(Job(poison_cell, kwargs, name=f"t{t}/{attack}/{defense}/run{run}"))
    return jobs


@register_grid("poison_sweep")
def poison_sweep(prof: Profile, *, seed: int, device: str | torch.device,
                 quiet: bool | None) -> list[Job]:
    """Chapter 3's sweep: DM poisoning against plain DM (run 0) on the first ``sweep_targets``
    targets at every point of ``attacks.study.sweep_points`` (eps at T = ``attack_steps``, T at
    the first ``eps``), the direct attack (the eps = 1 end; Table 5) against DM and RDM-DC,
    and the clean reference.

    Job names: ``"t1/eps64/T100"``, ``"t1/direct/rdm"``, ``"clean/dm/run0"``. The cells at the
    profile's own (eps, T) and the direct and clean cells have the arguments of
    ``attack_and_defense``'s, so the two grids share their cache entries.
    """
    import dataclasses

    from .attacks.study import poison_cell, sweep_points

    study = prof.poison
    setup = _poison_setup(prof, seed, device, quiet)
    points = sweep_points(study.sweep_eps, study.sweep_steps, study.eps[0], study.attack_steps)
    jobs = [_clean_job(prof, setup, "dm", 0)]
    for t, target in enumerate(setup["targets"][:study.sweep_targets]):
        base = dict(setup["common"], target=target, defense="dm", run=0, seed=seed + t)
        for eps, steps in points:
            cfg = dataclasses.replace(setup["attack_cfg"], eps=eps, steps=steps)
            jobs.append(Job(poison_cell, dict(base, attack="dm_poison", attack_cfg=cfg),
                            name=f"t{t}/eps{round(255 * eps)}/T{steps}"))
        for defense in [d for d in ("dm", "rdm") if d in study.defenses]:
            jobs.append(Job(poison_cell, dict(base, attack="direct", defense=defense,
                                              attack_cfg=setup["attack_cfg"]),
                            name=f"t{t}/direct/{defense}"))
    return jobs


__all__ += ["attack_and_defense", "poison_sweep", "poison_targets"]


@register_grid("beyond")
def beyond(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 3 beyond the paper (book/03_poisoning/beyond.md).

    *Adaptive attacks* at ``table_rate``: on the first ``adaptive_targets`` targets, DM poisoning
    with each loss of ``adaptive_losses`` (``DMPoisonConfig.loss``: "through" RDM-DC's calibrated
    mean, "spread" on its top direction) against RDM-DC, beside the paper's DM poisoning against
    DM and RDM-DC and the clean references (those cells have ``attack_and_defense``'s arguments,
    so the two grids share them). Names: ``"t0/through/rdm/run0"``, ``"t0/mean/dm/run0"``.

    *Untargeted poisoning* (``attacks.study.untargeted_cell``) at every rate of
    ``untargeted_rates`` against DM and RDM-DC (eps_p = the rate), with RDM-DC's clean reference
    at the same eps_p. Names: ``"untargeted/r0.01/rdm/run0"``, ``"clean/rdm/eps0.01/run0"``.
    """
    import dataclasses

    from .attacks.study import clean_cell, poison_cell, untargeted_cell
    from .attacks.untargeted import UntargetedPoisonConfig

    study = prof.poison
    setup = _poison_setup(prof, seed, device, quiet, rate=study.table_rate)
    defenses = [d for d in ("dm", "rdm") if d in study.defenses]
    if "rdm" not in defenses:
        raise ValueError("the beyond page attacks RDM-DC: add 'rdm' to poison.defenses.")
    runs = range(study.runs)
    jobs = [_clean_job(prof, setup, defense, run) for defense in defenses for run in runs]
    adaptive = {"mean": setup["attack_cfg"]} | {
        loss: dataclasses.replace(setup["attack_cfg"], loss=loss, spread_weight=study.spread_weight,
                                  power_iterations=study.power_iterations) for loss in study.adaptive_losses}
    for t, target in enumerate(setup["targets"][:study.adaptive_targets]):
        for loss, cfg in adaptive.items():
            for defense in (defenses if loss == "mean" else ["rdm"]):
                for run in runs:
                    kwargs = dict(setup["common"], target=target, attack="dm_poison", defense=defense,
                                  attack_cfg=cfg, run=run, seed=seed + t)
                    jobs.append(Job(poison_cell, kwargs, name=f"t{t}/{loss}/{defense}/run{run}"))
    common, targets = setup["common"], setup["targets"]
    for rate in study.untargeted_rates:
        cfg = UntargetedPoisonConfig(eps=study.eps[0], rate=rate, steps=study.attack_steps,
                                     restarts=study.restarts, step_size=study.attack_lr,
                                     anchors=study.untargeted_anchors)
        for run in runs:
            jobs.append(Job(clean_cell, dict(common, targets=targets, defense="rdm", eps_p=rate, run=run),
                            name=f"clean/rdm/eps{rate:g}/run{run}"))
            for defense in defenses:
                jobs.append(Job(untargeted_cell, dict(common, targets=targets, defense=defense,
                                                      attack_cfg=cfg, run=run, seed=seed),
                                name=f"untargeted/r{rate:g}/{defense}/run{run}"))
    return jobs


__all__ += ["beyond"]
