"""Gradient-matching poisoning (Alg. 1 of Zheng & Li, UAI 2023; Geiping et al., ICLR 2021).

The poisons' perturbation is chosen so that the training loss on the poisons,
labelled ``y_adv``, has the gradient that the adversarial loss on the target
has (Eq. 4): a network that lowers one then lowers the other. Unlike DM
poisoning (:mod:`ddrepro.poisoning.poison`), the attack needs networks trained on
the clean data, "pre-trained for different epochs" (the paper, Sec. 3.1):
here ``pretrained`` networks with staggered checkpoints, model ``k`` taken
after ``ceil((k + 1) E / K)`` of ``E`` epochs. Restarts, signed Adam, the
projection and the derived poisoned set are DM poisoning's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..artifacts import cached
from ..config import AugConfig, EvalConfig, NetConfig
from ..data import ImageData, PerturbConfig, derive
from ..functional import ce_gradients
from ..pixels import from_pixels, quantise, to_pixels
from ..runtime import make_generator, progress, resolve_device
from ..train import steps_per_epoch, train_models
from .poison import (CraftingConfig, PoisonResult, Target, _check_attack_config, _crafting_setup,
                     _Problem, project)


@dataclass(frozen=True)
class GMPoisonConfig(CraftingConfig):
    """Gradient-matching poisoning, Alg. 1. ``eps``, ``rate``, ``steps`` T, ``restarts`` R,
    ``step_size`` and ``dsa`` as :class:`~ddrepro.poisoning.poison.DMPoisonConfig`; ``pretrained``
    clean networks (paper: 16), trained on the clean set for up to ``pretrain_epochs``
    (staggered: :func:`pretrain_epochs_of`), cycled through one per step."""

    pretrained: int = 16
    pretrain_epochs: int = 40

    def __post_init__(self) -> None:
        _check_attack_config(self, ("steps", "restarts", "pretrained", "pretrain_epochs"))


def pretrain_epochs_of(pretrained: int, epochs: int) -> list[int]:
    """The epochs after which each of ``pretrained`` networks is taken: ``ceil((k + 1) E / K)``,
    spread over ``1 .. E`` and ending at ``E`` (Sec. 3.1: "pre-trains multiple models for
    different epochs")."""
    return [-(-(k + 1) * epochs // pretrained) for k in range(pretrained)]


def pretrain_models(real: ImageData, cfg: GMPoisonConfig, net_cfg: NetConfig, seed: int,
                    device: torch.device, quiet: bool | None = None) -> list[torch.nn.Module]:
    """``cfg.pretrained`` networks trained on the clean ``real``, network ``k`` read at its own
    epoch (:func:`pretrain_epochs_of`) from one checkpoint per epoch of a single training run."""
    eval_cfg = EvalConfig(epochs=cfg.pretrain_epochs, n_models=cfg.pretrained, augment="none")
    trained = train_models(real.images, real.labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                           num_classes=real.num_classes, seed=seed, device=device, quiet=quiet,
                           record_every=steps_per_epoch(len(real), eval_cfg.batch_size))
    # checkpoint e of the trajectory is the state after e epochs (checkpoint 0: before training)
    # parameters keep requires_grad: Eq. 4 differentiates the loss with respect to them
    return [trained.module_at(epoch, k)
            for k, epoch in enumerate(pretrain_epochs_of(cfg.pretrained, cfg.pretrain_epochs))]


def gm_poison_loss(target_grads: list[Tensor], poison_grads: list[Tensor]) -> Tensor:
    """Eq. 4: ``1 - cos(grad l(x_t, y_adv), grad sum_p l(x_p + delta_p, y_adv))`` over all parameters.

    (The mean loss's gradient has the direction of the sum's, so either may be passed.)
    """
    dot = sum((a * b).sum() for a, b in zip(target_grads, poison_grads))
    norm_t = torch.sqrt(sum(a.pow(2).sum() for a in target_grads))
    norm_p = torch.sqrt(sum(b.pow(2).sum() for b in poison_grads))
    return 1 - dot / (norm_t * norm_p).clamp_min(1e-12)


def craft_gm_poisons(problem: _Problem, models: list[torch.nn.Module], adv_label: int,
                     cfg: GMPoisonConfig, generator: torch.Generator, device: torch.device,
                     quiet: bool | None = None) -> dict[str, Tensor]:
    """Alg. 1: per restart, ``steps`` signed-Adam steps on Eq. 4, one pretrained model per step
    (cycled), a fresh DSA draw on the poisons; the restart with the lowest Eq. 4 averaged over
    all models (no augmentation) is kept, quantised to 1/255. The restarts run one after the
    other: each step differentiates through a parameter gradient (double backward), whose
    memory a batch of restarts would multiply."""
    clean = problem.clean
    target = from_pixels(problem.target, problem.mean, problem.std)[None]
    adv = torch.full((1,), adv_label, dtype=torch.int64, device=device)
    adv_poisons = adv.expand(clean.shape[0])
    target_grads = [[g.detach() for g in ce_gradients(net, target, adv, create_graph=False)] for net in models]

    def loss_on(k: int, delta: Tensor, augment: bool) -> Tensor:
        poisons = from_pixels(clean + delta, problem.mean, problem.std)
        if augment and problem.aug is not None:
            poisons = problem.aug(poisons, generator)
        grads = ce_gradients(models[k], poisons, adv_poisons, create_graph=True)
        return gm_poison_loss(target_grads[k], grads)

    deltas, scores = [], []
    curve = torch.zeros(cfg.steps)
    for _ in range(cfg.restarts):
        delta = (torch.rand(clean.shape, generator=generator) * 2 - 1).to(device) * cfg.eps
        delta = project(delta, clean, cfg.eps).requires_grad_(True)
        optimizer = torch.optim.Adam([delta], lr=cfg.step_size)
        for step in progress(range(cfg.steps), desc="gradient-matching poisoning", quiet=quiet):
            loss = loss_on(step % len(models), delta, augment=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            delta.grad.sign_()
            optimizer.step()
            with torch.no_grad():
                delta.copy_(project(delta, clean, cfg.eps))
            curve[step] += float(loss.detach()) / cfg.restarts
        final = quantise(clean + delta.detach()) - clean
        with torch.enable_grad():
            score = sum(float(loss_on(k, final, augment=False).detach()) for k in range(len(models))) / len(models)
        deltas.append(final)
        scores.append(score)
    best = int(torch.tensor(scores).argmin())
    return {"delta": deltas[best].cpu(), "scores": torch.tensor(scores), "curve": curve, "best": best}


def gm_poison(real: ImageData, test: ImageData, target: Target, cfg: GMPoisonConfig = GMPoisonConfig(),
              *, net_cfg: NetConfig = NetConfig(), aug_cfg: AugConfig = AugConfig(), seed: int = 0,
              device: str | torch.device = "auto", quiet: bool | None = None,
              cache: bool = True) -> PoisonResult:
    """Gradient-matching poisoning (Alg. 1) of ``real`` against ``target``: pretrain the clean
    networks, craft, cache; the poisoned set is a derived ``perturb`` set. ``seconds`` counts
    the pretraining too (the cost DM poisoning does not have)."""
    rows, parts = _crafting_setup("gm_poison", real, test, target, cfg, net_cfg, aug_cfg, seed)
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        models = pretrain_models(real, cfg, net_cfg, seed, dev, quiet)
        pretrain_seconds = time.perf_counter() - start
        problem = _Problem.of(real, rows, to_pixels(test.images[target.index], test.mean, test.std),
                              net_cfg=net_cfg, aug_cfg=aug_cfg, dsa=cfg.dsa, device=dev)
        out = craft_gm_poisons(problem, models, target.adv_label, cfg, make_generator(seed), dev, quiet)
        return out | {"seconds": time.perf_counter() - start, "pretrain_seconds": pretrain_seconds}

    crafted = cached("poison", parts, compute,
                     code=(pretrain_models, craft_gm_poisons, "ddrepro.poisoning.gradient_matching"),
                     enabled=cache)
    data = derive("perturb", real, PerturbConfig(eps=cfg.eps), seed=seed, cache=cache, index=rows,
                  delta=crafted["delta"])
    return PoisonResult(data, target, rows, crafted["scores"], crafted["curve"], crafted["seconds"],
                        pretrain_seconds=crafted["pretrain_seconds"])


__all__ = ["GMPoisonConfig", "craft_gm_poisons", "gm_poison", "gm_poison_loss", "pretrain_epochs_of",
           "pretrain_models"]
