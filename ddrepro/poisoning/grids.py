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
from .poison import DMPoisonConfig, pick_target
from .study import class_rate, clean_cell, poison_cell, sweep_points, untargeted_cell
from .untargeted import UntargetedPoisonConfig


def poison_targets(prof: Profile, test: data.ImageData) -> list[Any]:
    """Chapter 3's targets: :func:`ddrepro.poisoning.poison.pick_target` with seeds 0..targets-1 (Fig. 2)."""
    return [pick_target(test, seed) for seed in range(prof.poison.targets)]


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
    ``"t3/dm_poison/rdm/run0"``, ``"clean/rdm/run0"``. The target's seed is its number; ``seed``
    picks the training subset and seeds the poisons (``seed + t``).
    The poisons' cache key holds no defense, so a target's defenses share one crafted set.
    """

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


__all__ = ["attack_and_defense", "beyond", "poison_sweep", "poison_targets"]
