"""Targeted clean-label poisoning of the data set that is later condensed (Zheng & Li, UAI 2023).

Threat model (Sec. 2.1, 5.1): the attacker picks a target test image ``x_t``
(true label ``y``) and an adversarial label ``y_adv``; ``P`` = ``rate`` of the
training set, drawn from class ``y_adv``, get a perturbation ``delta_p`` with
``||delta_p||_inf <= eps`` in pixel space, stored as 8-bit images. The victim
condenses the poisoned set; the attack succeeds when a model trained on the
synthetic set labels ``x_t`` as ``y_adv``.

* :func:`dm_poison`, DM poisoning (Alg. 2): match the target's embedding in
  freshly drawn random ConvNets, under a fresh DSA draw, with the mean
  embedding of the poisons (Eq. 5); signed Adam, step 1/255, projection onto
  the eps ball and onto [0, 1], ``restarts`` runs, the best kept. All poisons
  of all restarts of a target go through the network in one batch per step.
* :func:`direct_poison`, the direct attack (Table 5): the poisons become the
  target image itself, still labelled ``y_adv``.

Both return the poisoned set as a derived data set (``derive("perturb", ...)``,
attr ``poisoned``); the crafted perturbations are a cached artifact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..artifacts import cached, tensor_digest
from ..augment import DSA, siamese_augment
from ..config import AugConfig, EvalConfig, NetConfig, _check
from ..condense.dm import embed_by_class
from ..data import ImageData, PerturbConfig, derive
from ..functional import ce_gradients
from ..nets import build_net
from ..pixels import from_pixels, quantise, to_pixels
from ..runtime import make_generator, progress, resolve_device
from ..train import train_models

# -- the threat model ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The attacked test image (its row in the test set), its true label and the adversarial label."""

    index: int
    label: int
    adv_label: int


def check_target(test: ImageData, index: int, adv_label: int) -> Target:
    """A :class:`Target` of ``test``; ``ValueError`` for an index out of range or ``adv_label == label``."""
    n = len(test)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"target index {index!r} is out of range for a test set of {n} images; "
                         f"give an int in [0, {n - 1}].")
    if isinstance(adv_label, bool) or not isinstance(adv_label, int) or not 0 <= adv_label < test.num_classes:
        raise ValueError(f"adversarial label {adv_label!r} must be a class in [0, {test.num_classes - 1}].")
    label = int(test.labels[index])
    if adv_label == label:
        raise ValueError(f"adversarial label {adv_label} equals the target's true label; a targeted "
                         "attack needs a different class.")
    return Target(index, label, adv_label)


def pick_target(test: ImageData, seed: int) -> Target:
    """The paper's target for ``seed`` (Fig. 2): a random test image and a random wrong label."""
    generator = make_generator(seed)
    index = int(torch.randint(len(test), (1,), generator=generator))
    label = int(test.labels[index])
    offset = int(torch.randint(1, test.num_classes, (1,), generator=generator))
    return check_target(test, index, (label + offset) % test.num_classes)


def _check_rate(rate: float) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 < rate < 0.5:
        raise ValueError(f"poisoning rate {rate!r} must be in (0, 0.5) (the paper: 0.01, 1 % of the "
                         "training set).")


def poison_rows(real: ImageData, adv_label: int, rate: float, seed: int) -> Tensor:
    """``P = round(rate * N)`` rows of class ``adv_label`` in ``real`` (int64, sorted), drawn with ``seed``."""
    _check_rate(rate)
    count = max(1, math.floor(rate * len(real) + 0.5))
    rows = torch.nonzero(real.labels.cpu() == adv_label).flatten()
    if count > rows.numel():
        raise ValueError(f"{count} poisons ({rate} of {len(real)}) do not fit in class {adv_label}, "
                         f"which has {rows.numel()} images; lower the rate.")
    chosen = rows[torch.randperm(rows.numel(), generator=make_generator(seed))[:count]]
    return chosen.sort().values


# -- DM poisoning (Alg. 2) --------------------------------------------------------


def _check_attack_config(cfg: object, counts: tuple[str, ...]) -> None:
    """The checks both poisoning configs share: the pixel budget, the rate, counts >= 1, a step size."""
    _check(isinstance(cfg.eps, (int, float)) and 0.0 < cfg.eps <= 1.0, cfg, "eps", cfg.eps,
           "in (0, 1] (pixel units, e.g. 64/255)")
    _check(isinstance(cfg.rate, (int, float)) and 0.0 < cfg.rate < 0.5, cfg, "rate", cfg.rate,
           "in (0, 0.5)")
    for name in counts:
        value = getattr(cfg, name)
        _check(not isinstance(value, bool) and isinstance(value, int) and value >= 1, cfg, name,
               value, "an integer >= 1")
    _check(cfg.step_size > 0, cfg, "step_size", cfg.step_size, "> 0")


@dataclass(frozen=True)
class CraftingConfig:
    """What both crafting attacks share: ``eps`` in pixels (paper: 64/255, 128/255), ``rate`` of the
    training set (paper: 0.01), ``steps`` T and ``restarts`` R (the paper gives neither),
    signed-Adam ``step_size`` (paper: 1/255), ``dsa`` augmentation per step."""

    eps: float = 64 / 255
    rate: float = 0.01
    steps: int = 240
    restarts: int = 8
    step_size: float = 1 / 255
    dsa: bool = True


@dataclass(frozen=True)
class DMPoisonConfig(CraftingConfig):
    """DM poisoning, Alg. 2, with the shared :class:`CraftingConfig` fields; ``score_nets`` fresh
    networks on which the restarts' final losses are compared."""

    score_nets: int = 8

    def __post_init__(self) -> None:
        _check_attack_config(self, ("steps", "restarts", "score_nets"))


def dm_poison_loss(target_feats: Tensor, poison_feats: Tensor) -> Tensor:
    """Eq. 5 per restart: ``|| Phi(x_t) - mean_p Phi(x_p + delta_p) ||^2``; ``(R, d)``, ``(R, P, d)`` -> ``(R,)``."""
    return (target_feats - poison_feats.mean(1)).pow(2).sum(-1)


def project(delta: Tensor, clean: Tensor, eps: float) -> Tensor:
    """The nearest ``delta`` with ``||delta||_inf <= eps`` and ``clean + delta`` in ``[0, 1]`` (pixels)."""
    return (clean + delta.clamp(-eps, eps)).clamp(0.0, 1.0) - clean


@dataclass
class _Problem:
    """Everything a DM-poisoning step needs, on the device."""

    clean: Tensor          # (P, C, H, W) pixels of the poisons before perturbation
    target: Tensor         # (C, H, W) pixels of the target
    mean: Any
    std: Any
    net_cfg: NetConfig
    num_classes: int
    aug: DSA | None

    def embed_pair(self, net: torch.nn.Module, delta: Tensor, generator: torch.Generator
                   ) -> tuple[Tensor, Tensor]:
        """Target and poison embeddings ``(R, d)``, ``(R, P, d)`` under one DSA draw per restart."""
        restarts = delta.shape[0]
        poisons = from_pixels(self.clean + delta, self.mean, self.std)            # (R, P, C, H, W)
        target = from_pixels(self.target, self.mean, self.std).expand(restarts, 1, *self.target.shape)
        if self.aug is not None:
            poisons, target = siamese_augment(self.aug, generator, poisons, target)
        return embed_by_class(net.embed, target)[:, 0], embed_by_class(net.embed, poisons)

    def fresh_net(self, generator: torch.Generator, device: torch.device) -> torch.nn.Module:
        """A newly drawn random ConvNet (Alg. 2: theta ~ P_theta), weights frozen."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        channels, size = self.target.shape[0], self.target.shape[-1]
        net = build_net(self.net_cfg, channels, self.num_classes, size, seed=seed).to(device)
        return net.requires_grad_(False)


def craft_dm_poisons(problem: _Problem, cfg: DMPoisonConfig, generator: torch.Generator,
                     device: torch.device, quiet: bool | None = None) -> dict[str, Tensor]:
    """Alg. 2 with all ``R`` restarts batched: returns the best restart's ``delta`` ``(P, C, H, W)``
    (quantised to 1/255), every restart's final score, and the mean Eq. 5 loss per step."""
    restarts, clean = cfg.restarts, problem.clean
    delta = (torch.rand((restarts, *clean.shape), generator=generator) * 2 - 1).to(device) * cfg.eps
    delta = project(delta, clean, cfg.eps).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=cfg.step_size)
    curve = torch.zeros(cfg.steps)
    for step in progress(range(cfg.steps), desc=f"DM poisoning ({restarts} restarts)", quiet=quiet):
        net = problem.fresh_net(generator, device)
        target_feats, poison_feats = problem.embed_pair(net, delta, generator)
        losses = dm_poison_loss(target_feats, poison_feats)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()   # restarts are independent: the sum's gradient is each one's
        delta.grad.sign_()        # signed Adam (Geiping et al.): Adam on the gradient's sign
        optimizer.step()
        with torch.no_grad():
            delta.copy_(project(delta, clean, cfg.eps))
        curve[step] = float(losses.detach().mean())
    delta = quantise(clean + delta.detach()) - clean  # what the stored 8-bit image will hold
    scores = score_restarts(problem, delta, cfg.score_nets, generator, device)
    best = int(scores.argmin())
    return {"delta": delta[best].cpu(), "scores": scores.cpu(), "curve": curve, "best": best}


@torch.no_grad()
def score_restarts(problem: _Problem, delta: Tensor, nets: int, generator: torch.Generator,
                   device: torch.device) -> Tensor:
    """Eq. 5 of every restart ``(R,)``, averaged over ``nets`` fresh networks and DSA draws."""
    total = torch.zeros(delta.shape[0], device=device)
    for _ in range(nets):
        net = problem.fresh_net(generator, device)
        total += dm_poison_loss(*problem.embed_pair(net, delta, generator))
    return total / nets


def _check_poison_inputs(real: ImageData, test: ImageData, target: Target) -> None:
    if real.num_classes != test.num_classes or real.shape != test.shape:
        raise ValueError(f"real {real.shape} with {real.num_classes} classes and test {test.shape} with "
                         f"{test.num_classes} classes must be the same kind of data.")
    check_target(test, target.index, target.adv_label)


@dataclass
class PoisonResult:
    """The poisoned training set and how it was made."""

    data: ImageData         # the derived set; attr ``poisoned`` marks the poisons
    target: Target
    rows: Tensor            # the poisons' rows in ``data``
    scores: Tensor          # Eq. 5 of every restart (empty for the direct attack)
    curve: Tensor           # mean Eq. 5 loss per step (empty for the direct attack)
    seconds: float


def _crafting_setup(attack: str, real: ImageData, test: ImageData, target: Target, cfg: Any,
                    net_cfg: NetConfig, aug_cfg: AugConfig, seed: int) -> tuple[Tensor, dict[str, Any]]:
    """What both crafting attacks start from: checked inputs, the poison rows, the cache key's parts."""
    _check_poison_inputs(real, test, target)
    rows = poison_rows(real, target.adv_label, cfg.rate, seed)
    parts = {"attack": attack, "config": cfg, "real": real.digest(),
             "target": tensor_digest(test.images[target.index]), "target_label": target.label,
             "adv_label": target.adv_label, "rows": tensor_digest(rows), "net": net_cfg,
             "aug": aug_cfg, "flip": real.flip_ok, "seed": seed}
    return rows, parts


def dm_poison(real: ImageData, test: ImageData, target: Target, cfg: DMPoisonConfig = DMPoisonConfig(),
              *, net_cfg: NetConfig = NetConfig(), aug_cfg: AugConfig = AugConfig(), seed: int = 0,
              device: str | torch.device = "auto", quiet: bool | None = None,
              cache: bool = True) -> PoisonResult:
    """DM poisoning (Alg. 2) of ``real`` against ``target``; the crafted perturbation is cached."""
    rows, parts = _crafting_setup("dm_poison", real, test, target, cfg, net_cfg, aug_cfg, seed)
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        problem = _Problem(
            clean=to_pixels(real.images[rows], real.mean, real.std).to(dev),
            target=to_pixels(test.images[target.index], test.mean, test.std).to(dev),
            mean=real.mean, std=real.std, net_cfg=net_cfg, num_classes=real.num_classes,
            aug=DSA(aug_cfg, flip=real.flip_ok) if cfg.dsa else None)
        out = craft_dm_poisons(problem, cfg, make_generator(seed), dev, quiet)
        return out | {"seconds": time.perf_counter() - start}

    crafted = cached("poison", parts, compute, code=(craft_dm_poisons, "ddrepro.attacks.poison"),
                     enabled=cache)
    data = derive("perturb", real, PerturbConfig(eps=cfg.eps), seed=seed, cache=cache, index=rows,
                  delta=crafted["delta"])
    return PoisonResult(data, target, rows, crafted["scores"], crafted["curve"], crafted["seconds"])


def direct_poison(real: ImageData, test: ImageData, target: Target, rate: float = 0.01, *,
                  seed: int = 0, cache: bool = True) -> PoisonResult:
    """The direct attack (Table 5): the poisons' pixels are replaced by the target's, label ``y_adv``."""
    _check_poison_inputs(real, test, target)
    rows = poison_rows(real, target.adv_label, rate, seed)
    clean = to_pixels(real.images[rows], real.mean, real.std)
    target_pixels = to_pixels(test.images[target.index], test.mean, test.std)
    delta = target_pixels.expand_as(clean) - clean  # eps = 1: no bound, the image is replaced
    data = derive("perturb", real, PerturbConfig(eps=1.0), seed=seed, cache=cache, index=rows, delta=delta)
    return PoisonResult(data, target, rows, torch.empty(0), torch.empty(0), 0.0)


# -- gradient-matching poisoning (Alg. 1, Witches' Brew) ----------------------------

@dataclass(frozen=True)
class GMPoisonConfig(CraftingConfig):
    """Gradient-matching poisoning, Alg. 1 (Geiping et al. 2021). ``eps``, ``rate``, ``steps`` T,
    ``restarts`` R, ``step_size`` and ``dsa`` as :class:`DMPoisonConfig`; ``pretrained`` clean
    networks (paper: 16) trained for ``pretrain_epochs`` on the clean training set, cycled through
    one per step."""

    pretrained: int = 16
    pretrain_epochs: int = 40

    def __post_init__(self) -> None:
        _check_attack_config(self, ("steps", "restarts", "pretrained", "pretrain_epochs"))


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
    all models (no augmentation) is kept, quantised to 1/255."""
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
    """Gradient-matching poisoning (Alg. 1) of ``real`` against ``target``: pretrain ``cfg.pretrained``
    clean networks, craft, cache; the poisoned set is a derived ``perturb`` set."""
    rows, parts = _crafting_setup("gm_poison", real, test, target, cfg, net_cfg, aug_cfg, seed)
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        trained = train_models(real.images, real.labels, net_cfg=net_cfg,
                               eval_cfg=EvalConfig(epochs=cfg.pretrain_epochs, n_models=cfg.pretrained,
                                                   augment="none"),
                               num_classes=real.num_classes, seed=seed, device=dev, quiet=quiet)
        models = [trained.module(k) for k in range(cfg.pretrained)]
        problem = _Problem(
            clean=to_pixels(real.images[rows], real.mean, real.std).to(dev),
            target=to_pixels(test.images[target.index], test.mean, test.std).to(dev),
            mean=real.mean, std=real.std, net_cfg=net_cfg, num_classes=real.num_classes,
            aug=DSA(aug_cfg, flip=real.flip_ok) if cfg.dsa else None)
        out = craft_gm_poisons(problem, models, target.adv_label, cfg, make_generator(seed), dev, quiet)
        return out | {"seconds": time.perf_counter() - start}

    crafted = cached("poison", parts, compute, code=(craft_gm_poisons, "ddrepro.attacks.poison"),
                     enabled=cache)
    data = derive("perturb", real, PerturbConfig(eps=cfg.eps), seed=seed, cache=cache, index=rows,
                  delta=crafted["delta"])
    return PoisonResult(data, target, rows, crafted["scores"], crafted["curve"], crafted["seconds"])


__all__ = [
    "DMPoisonConfig", "GMPoisonConfig", "craft_gm_poisons", "gm_poison", "gm_poison_loss", "PoisonResult", "Target", "check_target", "craft_dm_poisons", "direct_poison",
    "dm_poison", "dm_poison_loss", "pick_target", "poison_rows", "project", "score_restarts",
]
