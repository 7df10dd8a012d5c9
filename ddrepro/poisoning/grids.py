"""Chapter 3's grids (``book/03_poisoning``): the attack-and-defense table, the sweep, and the
attacks beyond the paper (adaptive, untargeted)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .. import data
from ..config import DMConfig
from ..executor import Job
from ..experiment import real_and_test
from ..grids import register_grid
from ..profiles import Profile
from .gradient_matching import GMPoisonConfig
from ..executor import get_executor
from ..tuning import Choice
from .poison import DMPoisonConfig
from .regime import (apply_regime, check_rate_cap, choose_regime, rdm_kept, regime_frame, regime_points,
                     victim_points)
from .study import class_rate, clean_cell, poison_cell, sweep_points, untargeted_cell
from .targets import evaluated_targets, target_ids, validation_targets
from .untargeted import UntargetedPoisonConfig


def poison_targets(prof: Profile, test: data.ImageData) -> list[Any]:
    """Chapter 3's evaluated targets: ``targets`` draws of :func:`ddrepro.poisoning.poison.pick_target`
    from seeds 0, 1, ... (Fig. 2), one per class pair, sharing no image or class pair with the
    validation pool (:func:`ddrepro.poisoning.targets.evaluated_targets`)."""
    return evaluated_targets(test, prof.poison.targets, regime_targets(prof, test))


def regime_targets(prof: Profile, test: data.ImageData) -> list[Any]:
    """Chapter 3's validation targets (the regime is chosen on them): ``val_targets`` draws from
    seeds ``val_seed``, ... (:func:`ddrepro.poisoning.targets.validation_targets`)."""
    return validation_targets(test, prof.poison.val_targets, prof.poison.val_seed)


def _poison_setup(prof: Profile, seed: int, device: str | torch.device, quiet: bool | None,
                  rate: float | None = None) -> dict[str, Any]:
    """What every Chapter 3 grid shares: data, targets, the attack and victim configs, and the
    keyword arguments common to ``poison_cell`` and ``clean_cell`` (equal arguments, equal cache keys).
    ``rate``: the poisoning rate (None: ``prof.poison.rate``)."""

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
    ``"t3/dm_poison/rdm/run0"``, ``"clean/rdm/run0"``. ``seed`` picks the training subset and
    seeds the poisons (``seed + t``). The poisons' cache key holds no defense, so a target's
    defenses share one crafted set. With ``use_regime`` the victim and the attack run at the
    regime chosen on the validation targets (:func:`regime_profile`; the regime grid's cells are
    cache hits after ``ddrepro precompute poison_sweep``, else they are computed here first).
    """

    prof = regime_profile(prof, seed=seed, device=device, quiet=quiet)
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
    # the misspecified defender's cells (names "misspec/..."), on the same page
    return jobs + (misspecified(prof, seed=seed, device=device, quiet=quiet) if "rdm" in study.defenses else [])


def misspec_settings(study: Any) -> list[tuple[str, float]]:
    """The misspecified defender's settings, ``(label, scale)`` sorted by scale: RDM-DC told ``scale``
    times the true eps_p. A factor ``f`` in place of the paper's 3 in ``k = ceil(3 eps_p N)`` is the
    scale ``f / 3`` (``k`` depends on the product only); the informed defender (scale 1) is included."""
    settings = {1.0: "told eps_p, factor 3 (the paper's)"}
    for scale in study.misspec_scales:
        settings.setdefault(float(scale), f"told {scale:g} x eps_p")
    for factor in study.misspec_factors:
        settings.setdefault(float(factor) / 3, f"factor {factor:g} in place of 3")
    return sorted(((label, scale) for scale, label in settings.items()), key=lambda item: item[1])


def misspecified(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """A defender who guesses wrong (ours, issue 24): on the first ``misspec_targets`` evaluated
    targets, DM poisoning at ``table_rate`` against RDM-DC told each scale of
    :func:`misspec_settings` times eps_p (``"misspec/t0/x0.5/run0"``), and RDM-DC's clean victim
    per scale (``"misspec/clean/x0.5/run0"``, its accuracy), victim run 0 only. A scale at which
    RDM-DC would drop every real image of a batch (``k >= batch_real``) has no job. Call it with
    the regime applied (the attack-and-defense grid does)."""

    study = prof.poison
    setup = _poison_setup(prof, seed, device, quiet, rate=study.table_rate)
    common, targets, cfg = setup["common"], setup["targets"], setup["attack_cfg"]
    jobs = []
    # eps_p as _clean_job's defender assumes it (the first target's class; the classes are balanced)
    eps_p = class_rate(common["real"], cfg.rate, targets[0].adv_label)
    for _, scale in misspec_settings(study):
        if rdm_kept(eps_p * scale, study.batch_real) == 0:
            continue
        for run in range(1):  # one victim run per setting: 6-7 settings x targets are many cells already
            jobs.append(Job(clean_cell, dict(common, targets=targets, defense="rdm", eps_p=eps_p * scale, run=run),
                            name=f"misspec/clean/x{scale:.3g}/run{run}"))
            for t, target in enumerate(targets[:study.misspec_targets]):
                kwargs = dict(common, target=target, attack="dm_poison", defense="rdm", attack_cfg=cfg, run=run,
                              seed=seed + t, assumed_scale=scale)
                jobs.append(Job(poison_cell, kwargs, name=f"misspec/t{t}/x{scale:.3g}/run{run}"))
    return jobs


@register_grid("poison_regime")
def poison_regime(prof: Profile, *, seed: int, device: str | torch.device,
                  quiet: bool | None) -> list[Job]:
    """The regime search (ours, issue 24; :mod:`ddrepro.poisoning.regime`), on the validation
    targets only: at every victim (DM steps, batch) of :func:`~ddrepro.poisoning.regime.victim_points`
    the clean victim (its p(y_adv) per target) and, at ``rate`` and every rate of ``regime_rates``, DM
    poisoning at every ``regime_eps`` and the direct attack, each against plain DM (run 0).

    Names: ``"regime/S300/B32/clean"``, ``"regime/r0.01/S300/B32/v1/eps64"``,
    ``"regime/r0.01/S300/B32/v1/direct"``. A rate at which RDM-DC would keep fewer than half of a
    real batch is refused before any job is built (:func:`~ddrepro.poisoning.regime.check_rate_cap`).
    The crafted poisons do not depend on the victim, so every victim point shares them.
    """

    study = prof.poison
    real, test = real_and_test(prof, study.dataset, seed)
    pool = regime_targets(prof, test)
    check_rate_cap(real, study.search_rates, study.regime_batch, [t.adv_label for t in pool])
    eval_cfg = dataclasses.replace(prof.eval, n_models=study.victims)
    jobs = []
    for steps, batch in victim_points(study.regime_steps, study.regime_batch):
        common = dict(real=real, test=test, dm_cfg=DMConfig(steps=steps, batch_real=batch), ipc=study.ipc,
                      power_iterations=study.power_iterations, net_cfg=prof.net, aug_cfg=prof.aug,
                      eval_cfg=eval_cfg, device=device, quiet=quiet, init=study.init)
        eps_p = class_rate(real, study.rate, pool[0].adv_label)  # unused by plain DM; as _clean_job
        jobs.append(Job(clean_cell, dict(common, targets=pool, defense="dm", eps_p=eps_p, run=0),
                        name=f"regime/S{steps}/B{batch}/clean"))
        for rate in study.search_rates:
            base_cfg = DMPoisonConfig(eps=study.regime_eps[0], rate=rate, steps=study.attack_steps,
                                      restarts=study.restarts, step_size=study.attack_lr)
            for v, target in enumerate(pool):
                base = dict(common, target=target, defense="dm", run=0, seed=seed + study.val_seed + v)
                prefix = f"regime/r{rate:g}/S{steps}/B{batch}/v{v}"
                for eps in study.regime_eps:
                    cfg = dataclasses.replace(base_cfg, eps=eps)
                    jobs.append(Job(poison_cell, dict(base, attack="dm_poison", attack_cfg=cfg),
                                    name=f"{prefix}/eps{round(255 * eps)}"))
                jobs.append(Job(poison_cell, dict(base, attack="direct", attack_cfg=base_cfg),
                                name=f"{prefix}/direct"))
    return jobs


def regime_choice(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None,
                  executor: Any = None) -> tuple[Choice, Any, list[Any]]:
    """Run (or read from the cache) :func:`poison_regime` and choose the regime on its validation
    targets (:func:`ddrepro.poisoning.regime.choose_regime`). Returns the :class:`~ddrepro.tuning.Choice`
    (its value a :class:`~ddrepro.poisoning.regime.RegimePoint`), the regime's frame and the pool."""

    study = prof.poison
    jobs = poison_regime(prof, seed=seed, device=device, quiet=quiet)
    cells = (executor or get_executor("local")).map(jobs, quiet=quiet)
    frame = regime_frame(jobs, cells)
    pool = jobs[0].kwargs["targets"]
    points = regime_points(study.search_rates, study.regime_steps, study.regime_batch, study.regime_eps)
    return choose_regime(frame, points, study.regime_threshold, target_ids(pool)), frame, pool


def regime_profile(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None,
                   executor: Any = None) -> Profile:
    """``prof`` at the chosen regime (:func:`ddrepro.poisoning.regime.apply_regime`) when
    ``poison.use_regime``, else unchanged; refuses (``ValueError``) a choice made on any evaluated
    target (:meth:`ddrepro.tuning.Choice.check_disjoint`)."""
    if not prof.poison.use_regime:
        return prof
    choice, _, _ = regime_choice(prof, seed=seed, device=device, quiet=quiet, executor=executor)
    _, test = real_and_test(prof, prof.poison.dataset, seed)
    choice.check_disjoint(target_ids(poison_targets(prof, test)), "the evaluated targets")
    return apply_regime(prof, choice.value)


@register_grid("poison_sweep")
def poison_sweep(prof: Profile, *, seed: int, device: str | torch.device,
                 quiet: bool | None) -> list[Job]:
    """Chapter 3's sweep: DM poisoning against plain DM (run 0) on the first ``sweep_targets``
    targets at every point of ``attacks.study.sweep_points`` (eps at T = ``attack_steps``, T at
    the first ``eps``), the direct attack (the eps = 1 end; Table 5) against DM and RDM-DC,
    and the clean reference.

    Job names: ``"t1/eps64/T100"``, ``"t1/direct/rdm"``, ``"clean/dm/run0"``. The cells at the
    profile's own (eps, T) and the direct and clean cells have the arguments of
    ``attack_and_defense``'s, so the two grids share their cache entries. The regime search's
    jobs (:func:`poison_regime`, names ``"regime/..."``) follow the sweep's.
    """

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
    # the regime search's cells (names "regime/..."), shown on the same page: `ddrepro precompute
    # poison_sweep` fills the cache the attack-and-defense grid reads its regime from
    return jobs + poison_regime(prof, seed=seed, device=device, quiet=quiet)


@register_grid("beyond")
def beyond(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Chapter 3 beyond the paper (book/03_poisoning/beyond.md).

    *Adaptive attacks* at ``table_rate``: on the first ``adaptive_targets`` targets, DM poisoning
    with each loss of ``adaptive_losses`` (``DMPoisonConfig.loss``: "through" RDM-DC's calibrated
    mean, "spread" on its top direction, "batches" through the calibrated means of the victim's
    own batches of ``batch_real``) against RDM-DC, beside the paper's DM poisoning against
    DM and RDM-DC and the clean references (those cells have ``attack_and_defense``'s arguments,
    so the two grids share them). Names: ``"t0/through/rdm/run0"``, ``"t0/mean/dm/run0"``.

    *Untargeted poisoning* (``attacks.study.untargeted_cell``) at every rate of
    ``untargeted_rates`` against DM and RDM-DC (eps_p = the rate), with RDM-DC's clean reference
    at the same eps_p. Names: ``"untargeted/r0.01/rdm/run0"``, ``"clean/rdm/eps0.01/run0"``.
    With ``use_regime`` both run at the table's chosen regime (:func:`regime_profile`).
    """

    prof = regime_profile(prof, seed=seed, device=device, quiet=quiet)  # the table's regime, as its cells
    study = prof.poison
    setup = _poison_setup(prof, seed, device, quiet, rate=study.table_rate)
    defenses = [d for d in ("dm", "rdm") if d in study.defenses]
    if "rdm" not in defenses:
        raise ValueError("the beyond page attacks RDM-DC: add 'rdm' to poison.defenses.")
    runs = range(study.runs)
    jobs = [_clean_job(prof, setup, defense, run) for defense in defenses for run in runs]
    adaptive = {"mean": setup["attack_cfg"]} | {
        loss: dataclasses.replace(setup["attack_cfg"], loss=loss, spread_weight=study.spread_weight,
                                  power_iterations=study.power_iterations,
                                  victim_batch=study.batch_real if loss == "batches" else 0)
        for loss in study.adaptive_losses}
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


__all__ = ["attack_and_defense", "beyond", "misspec_settings", "misspecified", "poison_regime", "poison_sweep", "poison_targets", "regime_choice",
           "regime_profile", "regime_targets"]
