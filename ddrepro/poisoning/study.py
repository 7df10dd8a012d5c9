"""One cell of the poisoning chapter's grid: poison, condense with a defense, train a victim, ask the target.

Zheng & Li's protocol (Sec. 5.1): for a target (seed), craft the poisons once;
for each victim run, condense the poisoned set from Gaussian noise with DM or a
defended DM, train networks on the synthetic set, and call the attack a success
for a network that labels the target ``y_adv``. Each (target, defense, run) is
an independent job (``ddrepro.grids``'s ``attack_and_defense``); the poisons are
cached, so the defenses of one target share them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from ..condense import condense
from ..config import AugConfig, DMConfig, EvalConfig, NetConfig
from ..data import ImageData
from ..evaluate import evaluate
from ..robust import MeanEstimatorConfig
from .gradient_matching import GMPoisonConfig, gm_poison
from .poison import DMPoisonConfig, PoisonResult, Target, direct_poison, dm_poison
from .untargeted import UntargetedPoisonConfig, untargeted_poison

# Defense name -> (condenser, mean estimator name); "rdm" is RDM-DC (Alg. 3). Every robust one
# drops k = ceil(3 eps_p N) of a batch of N. The trimmed mean drops ceil(k/2) values from *each*
# end of every coordinate (ddrepro.robust.trimmed_mean): the paper does not say how it splits k,
# and an odd k cannot split evenly (the paper's N = 256, eps_p = 0.1 give k = 77), so we round up
# and drop k + 1 values per coordinate (ours; robust_means.md shows the count at each profile).
DEFENSES = {"dm": ("dm", "mean"), "rdm": ("rdm", "calibrated"), "median": ("dm", "median"),
            "trimmed": ("dm", "trimmed"), "truncated": ("dm", "truncated")}
ATTACKS = ("dm_poison", "grad_match", "direct")


def class_rate(real: ImageData, rate: float, adv_label: int) -> float:
    """eps_p for the defense: the poisons' share of their class (all sit in ``y_adv``; Sec. 4.3's end)."""
    count = max(1, math.floor(rate * len(real) + 0.5))
    return count / int((real.labels == adv_label).sum())


def defense_config(defense: str, dm_cfg: DMConfig, eps_p: float, power_iterations: int) -> tuple[str, DMConfig]:
    """The condenser and config of a defense: DM's config with the defense's class-mean estimator."""
    if defense not in DEFENSES:
        raise ValueError(f"unknown defense {defense!r}; choose one of {sorted(DEFENSES)}.")
    method, estimator = DEFENSES[defense]
    spec: Any = "mean" if estimator == "mean" else MeanEstimatorConfig(
        estimator, rate=eps_p, power_iterations=power_iterations)
    return method, dataclasses.replace(dm_cfg, mean_estimator=spec)


def make_poisons(real: ImageData, test: ImageData, target: Target, attack: str,
                 attack_cfg: DMPoisonConfig | GMPoisonConfig, *, net_cfg: NetConfig, aug_cfg: AugConfig,
                 seed: int, device: Any, quiet: bool | None) -> PoisonResult:
    """The poisoned set of ``attack`` against ``target`` (cached): "dm_poison" (Alg. 2, a
    :class:`DMPoisonConfig`), "grad_match" (Alg. 1, a :class:`GMPoisonConfig`) or "direct"
    (Table 5; only ``attack_cfg.rate`` is read)."""
    expected = {"dm_poison": DMPoisonConfig, "grad_match": GMPoisonConfig}.get(attack)
    if expected is not None and not isinstance(attack_cfg, expected):
        raise ValueError(f"the {attack!r} attack needs a {expected.__name__}, got {type(attack_cfg).__name__}.")
    if attack == "dm_poison":
        return dm_poison(real, test, target, attack_cfg, net_cfg=net_cfg, aug_cfg=aug_cfg, seed=seed,
                         device=device, quiet=quiet)
    if attack == "grad_match":
        return gm_poison(real, test, target, attack_cfg, net_cfg=net_cfg, aug_cfg=aug_cfg, seed=seed,
                         device=device, quiet=quiet)
    if attack == "direct":
        return direct_poison(real, test, target, attack_cfg.rate, seed=seed)
    raise ValueError(f"unknown attack {attack!r}; choose one of {ATTACKS}.")


def poison_cell(*, real: ImageData, test: ImageData, target: Target, attack: str, defense: str,
                attack_cfg: DMPoisonConfig | GMPoisonConfig, dm_cfg: DMConfig, ipc: int, run: int,
                power_iterations: int, net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                seed: int, device: Any, quiet: bool | None, init: str = "noise",
                assumed_scale: float = 1.0) -> dict[str, Any]:
    """Poison (``seed``), condense with ``defense`` from ``init`` (seed ``run``), evaluate, probe the target.

    ``init``: "noise" (the paper's protocol) or "real" (Sec. 5.1: real images of the
    poisoned set, so a poison may be copied into the synthetic set). ``assumed_scale`` (ours):
    the defender is told ``assumed_scale`` times the poisons' true share of their class (a
    defender who guesses wrong; 1 is the paper's informed defender).

    Returns the test accuracies of the ``eval_cfg.n_models`` victims, their
    predictions for the target, and whether each predicted ``y_adv``.
    """
    poisoned = make_poisons(real, test, target, attack, attack_cfg, net_cfg=net_cfg, aug_cfg=aug_cfg,
                            seed=seed, device=device, quiet=quiet)
    if isinstance(assumed_scale, bool) or not isinstance(assumed_scale, (int, float)) or assumed_scale <= 0:
        raise ValueError(f"assumed_scale = {assumed_scale!r} must be a number > 0 (1: the true eps_p).")
    eps_p = class_rate(real, attack_cfg.rate, target.adv_label)
    method, cfg = defense_config(defense, dm_cfg, eps_p * assumed_scale, power_iterations)
    syn = condense(method, poisoned.data, ipc, config=cfg, init=init, seed=run, net_cfg=net_cfg,
                   aug_cfg=aug_cfg, device=device, quiet=quiet)
    probe = (test.images[target.index][None], torch.tensor([target.adv_label]))
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=run,
                      flip=real.flip_ok, probes={"target": probe}, device=device, quiet=quiet)
    logits = result.probes["target"]["logits"][:, 0]
    predicted = logits.argmax(-1)
    return {"attack": attack, "defense": defense, "target": target.index, "label": target.label,
            "adv_label": target.adv_label, "run": run, "eps_p": eps_p,
            "assumed_eps_p": eps_p * assumed_scale, "accs": result.accs,
            "predicted": predicted, "success": predicted == target.adv_label,
            "adv_prob": logits.softmax(-1)[:, target.adv_label],
            "poison_seconds": poisoned.seconds, "condense_seconds": syn.meta["seconds"],
            "loss": attack_cfg.loss if attack == "dm_poison" else "none", "kept": poisoned.kept}


def sweep_points(eps_values: tuple[float, ...], steps_values: tuple[int, ...], base_eps: float,
                 base_steps: int) -> list[tuple[float, int]]:
    """The (eps, T) points of a one-factor-at-a-time sweep: every ``eps`` at ``base_steps`` and every
    ``T`` at ``base_eps``, the base point once, sorted by eps then T.

    The paper gives no T and remarks that a small eps leaves DM safe (Sec. 4.3): the two arms
    show each factor with the other held at the chapter's setting, for far fewer cells than the
    full product.
    """
    for eps in (*eps_values, base_eps):
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 < eps <= 1.0:
            raise ValueError(f"eps {eps!r} must be in (0, 1] (pixel units, e.g. 64/255).")
    for steps in (*steps_values, base_steps):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"attack steps {steps!r} must be an integer >= 1.")
    points = {(float(eps), base_steps) for eps in eps_values} | {(float(base_eps), steps) for steps in steps_values}
    return sorted(points | {(float(base_eps), base_steps)})


def clean_cell(*, real: ImageData, test: ImageData, targets: list[Target], defense: str, eps_p: float,
               dm_cfg: DMConfig, ipc: int, run: int, power_iterations: int, net_cfg: NetConfig,
               aug_cfg: AugConfig, eval_cfg: EvalConfig, device: Any, quiet: bool | None,
               init: str = "noise") -> dict[str, Any]:
    """The no-attack reference: condense the clean set with ``defense`` and ask about every target.

    Gives the accuracy a defense costs without any poison (it drops ``k`` of every class's
    batch, since the defender does not know ``y_adv``) and each target's ``y_adv``
    probability before poisoning.
    """
    method, cfg = defense_config(defense, dm_cfg, eps_p, power_iterations)
    syn = condense(method, real, ipc, config=cfg, init=init, seed=run, net_cfg=net_cfg,
                   aug_cfg=aug_cfg, device=device, quiet=quiet)
    probe = (torch.stack([test.images[t.index] for t in targets]), torch.tensor([t.adv_label for t in targets]))
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=run,
                      flip=real.flip_ok, probes={"targets": probe}, device=device, quiet=quiet)
    logits = result.probes["targets"]["logits"]                        # (K, targets, classes)
    adv = torch.tensor([t.adv_label for t in targets])
    return {"attack": "none", "defense": defense, "run": run, "accs": result.accs,
            "targets": [t.index for t in targets], "predicted": logits.argmax(-1),
            "success": logits.argmax(-1) == adv, "adv_prob": logits.softmax(-1)[..., adv].diagonal(dim1=-2, dim2=-1),
            "condense_seconds": syn.meta["seconds"]}


def untargeted_cell(*, real: ImageData, test: ImageData, targets: list[Target], defense: str,
                    attack_cfg: UntargetedPoisonConfig, dm_cfg: DMConfig, ipc: int, run: int,
                    power_iterations: int, net_cfg: NetConfig, aug_cfg: AugConfig, eval_cfg: EvalConfig,
                    seed: int, device: Any, quiet: bool | None, init: str = "noise") -> dict[str, Any]:
    """Untargeted poisoning (``ddrepro.poisoning.untargeted``, seed ``seed``), then :func:`clean_cell`
    on the poisoned set: the victim's test accuracy under ``defense``.

    Every class holds ``attack_cfg.rate`` poisons, so the defender's eps_p is that rate (not a
    class share as for the targeted attack); the clean reference of the same defender is
    ``clean_cell`` with ``eps_p = attack_cfg.rate``.
    """
    poisoned = untargeted_poison(real, attack_cfg, net_cfg=net_cfg, aug_cfg=aug_cfg, seed=seed,
                                 device=device, quiet=quiet)
    out = clean_cell(real=poisoned.data, test=test, targets=targets, defense=defense, eps_p=attack_cfg.rate,
                     dm_cfg=dm_cfg, ipc=ipc, run=run, power_iterations=power_iterations, net_cfg=net_cfg,
                     aug_cfg=aug_cfg, eval_cfg=eval_cfg, device=device, quiet=quiet, init=init)
    return out | {"attack": "untargeted", "rate": attack_cfg.rate, "poisons": int(poisoned.rows.numel()),
                  "poison_seconds": poisoned.seconds, "curves": poisoned.curves}


__all__ = ["ATTACKS", "DEFENSES", "class_rate", "clean_cell", "defense_config", "make_poisons",
           "poison_cell", "sweep_points", "untargeted_cell"]
