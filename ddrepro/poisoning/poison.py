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

Both return the poisoned set as a derived data set (``derive("perturb", ...)``, attr
``poisoned``); the crafted perturbations are a cached artifact. Gradient-matching poisoning
(Alg. 1) shares this module's problem, projection and setup (:mod:`.gradient_matching`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..artifacts import cached, tensor_digest
from ..augment import DSA, siamese_augment
from ..config import AugConfig, NetConfig, _check
from ..condense.dm import embed_by_class
from ..data import ImageData, PerturbConfig, derive
from ..nets import build_net
from ..pixels import from_pixels, quantise, to_pixels
from ..robust import MeanEstimatorConfig
from ..runtime import make_generator, progress, resolve_device
from .adaptive import batches_poison_loss, spread_penalty, through_poison_loss

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


# The losses DM poisoning can minimise (:func:`attack_loss`): "mean" is Alg. 2's Eq. 5; the
# others are ours, adaptive attacks that know RDM-DC (Alg. 3-5) is the defense.
POISON_LOSSES = ("mean", "through", "spread", "batches")


@dataclass(frozen=True)
class DMPoisonConfig(CraftingConfig):
    """DM poisoning, Alg. 2, with the shared :class:`CraftingConfig` fields; ``score_nets`` fresh
    networks on which the restarts' final losses are compared.

    ``loss`` (ours, beyond the paper; part of the cache key like every field):

    * ``"mean"``: Eq. 5, the paper's attack.
    * ``"through"``: Eq. 5 through the defender's calibrated mean (Alg. 4): the poisons and the
      clean images of their class are embedded together and the target's embedding is matched
      with the *calibrated* mean of that batch, ``k = ceil(3 eps_p N)`` rows dropped
      (:func:`through_poison_loss`).
    * ``"spread"``: Eq. 5 plus ``spread_weight`` times the poisons' mean squared score on the
      batch's top direction (:func:`spread_penalty`), so that no poison stands out there.
    * ``"batches"``: "through" the calibrated means of the victim's own batches of ``victim_batch``
      rows (``batch_real``; 0 for the other losses): :func:`batches_poison_loss`.

    ``power_iterations``: the power method's iterations (Alg. 5) in the adaptive losses.
    """

    score_nets: int = 8
    loss: str = "mean"
    spread_weight: float = 1.0
    power_iterations: int = 10
    victim_batch: int = 0

    def __post_init__(self) -> None:
        _check_attack_config(self, ("steps", "restarts", "score_nets", "power_iterations"))
        _check((self.loss == "batches") == (self.victim_batch >= 2), self, "victim_batch", self.victim_batch,
               'the victim\'s batch_real (>= 2) with loss "batches", else 0')
        _check(self.loss in POISON_LOSSES, self, "loss", self.loss, f"one of {POISON_LOSSES}")
        _check(isinstance(self.spread_weight, (int, float)) and not isinstance(self.spread_weight, bool)
               and self.spread_weight >= 0, self, "spread_weight", self.spread_weight, ">= 0")


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
    target: Tensor         # (C, H, W) pixels of the target, or (n, C, H, W): match their mean embedding
    mean: Any
    std: Any
    net_cfg: NetConfig
    num_classes: int
    aug: DSA | None
    context: Tensor | None = None   # (m, C, H, W) clean pixels of the poisons' class (adaptive losses)
    eps_p: float = 0.0              # the poisons' share of their class, as the defender assumes it

    @classmethod
    def of(cls, real: ImageData, rows: Tensor, target: Tensor, *, net_cfg: NetConfig, aug_cfg: AugConfig,
           dsa: bool, device: torch.device, context: Tensor | None = None, eps_p: float = 0.0) -> "_Problem":
        """Perturb ``real``'s ``rows`` towards ``target`` (pixels, ``(C, H, W)`` or ``(n, C, H, W)``),
        with a fresh DSA draw per step when ``dsa``; every attack's crafting loop starts here."""
        return cls(clean=to_pixels(real.images[rows], real.mean, real.std).to(device), target=target.to(device),
                   mean=real.mean, std=real.std, net_cfg=net_cfg, num_classes=real.num_classes,
                   aug=DSA(aug_cfg, flip=real.flip_ok) if dsa else None, context=context, eps_p=eps_p)

    @property
    def targets(self) -> Tensor:
        """The target pixels as ``(n, C, H, W)``."""
        return self.target if self.target.ndim == 4 else self.target[None]

    def embed_all(self, net: torch.nn.Module, delta: Tensor, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Target, poison and context embeddings ``(R, d)``, ``(R, P, d)``, ``(R, m, d)`` (None
        without context) under one DSA draw per restart; several targets give their mean."""
        restarts, n = delta.shape[0], self.targets.shape[0]
        poisons = from_pixels(self.clean + delta, self.mean, self.std)            # (R, P, C, H, W)
        others = self.targets if self.context is None else torch.cat([self.targets, self.context])
        others = from_pixels(others, self.mean, self.std).expand(restarts, *others.shape)
        if self.aug is not None:   # one draw per restart (R rows), whatever the batch sizes
            poisons, others = siamese_augment(self.aug, generator, poisons, others)
        target = embed_by_class(net.embed, others[:, :n]).mean(1)
        context = None
        if self.context is not None:
            with torch.no_grad():  # the clean images are fixed: no graph for them
                context = embed_by_class(net.embed, others[:, n:])
        return target, embed_by_class(net.embed, poisons), context

    def embed_pair(self, net: torch.nn.Module, delta: Tensor, generator: torch.Generator
                   ) -> tuple[Tensor, Tensor]:
        """Target and poison embeddings ``(R, d)``, ``(R, P, d)`` under one DSA draw per restart."""
        target, poisons, _ = self.embed_all(net, delta, generator)
        return target, poisons

    def fresh_net(self, generator: torch.Generator, device: torch.device) -> torch.nn.Module:
        """A newly drawn random ConvNet (Alg. 2: theta ~ P_theta), weights frozen."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        channels, size = self.targets.shape[1], self.targets.shape[-1]
        net = build_net(self.net_cfg, channels, self.num_classes, size, seed=seed).to(device)
        return net.requires_grad_(False)


def attack_loss(problem: _Problem, cfg: DMPoisonConfig, net: torch.nn.Module, delta: Tensor,
                generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """The loss of ``cfg.loss`` per restart ``(R,)`` for one network and DSA draw, and the share
    of poisons RDM-DC's calibration would keep ``(R,)`` (None without context).

    "mean": Eq. 5; "through": :func:`through_poison_loss` with the defender's
    ``k = ceil(3 eps_p N)`` (``N`` = poisons + context); "spread": Eq. 5 +
    ``spread_weight`` x :func:`spread_penalty`.
    """
    target, poisons, context = problem.embed_all(net, delta, generator)
    if cfg.loss == "mean":
        return dm_poison_loss(target, poisons), None
    if context is None:
        raise ValueError(f"the {cfg.loss!r} loss needs the clean images of the poisons' class "
                         "(problem.context); dm_poison builds them.")
    n = poisons.shape[1] + context.shape[1]
    k = MeanEstimatorConfig("calibrated", rate=problem.eps_p,
                            power_iterations=cfg.power_iterations).drop_count(n)
    if cfg.loss == "through":
        return through_poison_loss(target, poisons, context, k, cfg.power_iterations)
    if cfg.loss == "batches":
        return batches_poison_loss(target, poisons, context, cfg.victim_batch, problem.eps_p,
                                   cfg.power_iterations, generator)
    with torch.no_grad():  # diagnostics only: what the defender's calibration would keep
        _, kept = through_poison_loss(target, poisons, context, k, cfg.power_iterations)
    loss = dm_poison_loss(target, poisons) + cfg.spread_weight * spread_penalty(
        poisons, context, cfg.power_iterations)
    return loss, kept


def craft_dm_poisons(problem: _Problem, cfg: DMPoisonConfig, generator: torch.Generator,
                     device: torch.device, quiet: bool | None = None) -> dict[str, Tensor]:
    """Alg. 2 with all ``R`` restarts batched: returns the best restart's ``delta`` ``(P, C, H, W)``
    (quantised to 1/255), every restart's final score, and the mean loss per step (Eq. 5, or the
    adaptive loss ``cfg.loss``: :func:`attack_loss`; with a context, ``kept``: the mean share of
    poisons RDM-DC's calibration keeps, per step)."""
    restarts, clean = cfg.restarts, problem.clean
    delta = (torch.rand((restarts, *clean.shape), generator=generator) * 2 - 1).to(device) * cfg.eps
    delta = project(delta, clean, cfg.eps).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=cfg.step_size)
    curve, kept = torch.zeros(cfg.steps), torch.full((cfg.steps,), float("nan"))
    for step in progress(range(cfg.steps), desc=f"DM poisoning ({restarts} restarts)", quiet=quiet):
        net = problem.fresh_net(generator, device)
        losses, kept_now = attack_loss(problem, cfg, net, delta, generator)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()   # restarts are independent: the sum's gradient is each one's
        delta.grad.sign_()        # signed Adam (Geiping et al.): Adam on the gradient's sign
        optimizer.step()
        with torch.no_grad():
            delta.copy_(project(delta, clean, cfg.eps))
        curve[step] = float(losses.detach().mean())
        if kept_now is not None:
            kept[step] = float(kept_now.mean())
    delta = quantise(clean + delta.detach()) - clean  # what the stored 8-bit image will hold
    scores = score_restarts(problem, delta, cfg.score_nets, generator, device, cfg)
    best = int(scores.argmin())
    out = {"delta": delta[best].cpu(), "scores": scores.cpu(), "curve": curve, "best": best}
    return out if problem.context is None else out | {"kept": kept}


@torch.no_grad()
def score_restarts(problem: _Problem, delta: Tensor, nets: int, generator: torch.Generator,
                   device: torch.device, cfg: DMPoisonConfig | None = None) -> Tensor:
    """The attack's loss (Eq. 5 when ``cfg`` is None) of every restart ``(R,)``, averaged over
    ``nets`` fresh networks and DSA draws."""
    cfg = DMPoisonConfig() if cfg is None else cfg
    total = torch.zeros(delta.shape[0], device=device)
    for _ in range(nets):
        net = problem.fresh_net(generator, device)
        total += attack_loss(problem, cfg, net, delta, generator)[0]
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
    kept: Tensor = dataclasses.field(default_factory=lambda: torch.empty(0))  # adaptive: poisons kept per step
    pretrain_seconds: float = 0.0  # gradient matching: training its clean networks (within ``seconds``)


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
    others, eps_p = None, 0.0
    if cfg.loss != "mean":  # the adaptive attacker sees the poisons' class as the defender does
        others = class_rows(real, target.adv_label, exclude=rows)
        eps_p = rows.numel() / (rows.numel() + others.numel())
        # the defender's k = ceil(3 eps_p N) must leave rows: fail before crafting
        MeanEstimatorConfig("calibrated", rate=eps_p, power_iterations=cfg.power_iterations).drop_count(
            rows.numel() + others.numel())

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        context = None if others is None else to_pixels(real.images[others], real.mean, real.std).to(dev)
        problem = _Problem.of(real, rows, to_pixels(test.images[target.index], test.mean, test.std),
                              net_cfg=net_cfg, aug_cfg=aug_cfg, dsa=cfg.dsa, device=dev, context=context,
                              eps_p=eps_p)
        out = craft_dm_poisons(problem, cfg, make_generator(seed), dev, quiet)
        return out | {"seconds": time.perf_counter() - start}

    crafted = cached("poison", parts, compute, code=(craft_dm_poisons, "ddrepro.poisoning.poison"),
                     enabled=cache)
    data = derive("perturb", real, PerturbConfig(eps=cfg.eps), seed=seed, cache=cache, index=rows,
                  delta=crafted["delta"])
    return PoisonResult(data, target, rows, crafted["scores"], crafted["curve"], crafted["seconds"],
                        crafted.get("kept", torch.empty(0)))


def class_rows(real: ImageData, label: int, exclude: Tensor | None = None) -> Tensor:
    """The rows of class ``label`` in ``real`` (int64, sorted), without those in ``exclude``."""
    rows = torch.nonzero(real.labels.cpu() == label).flatten()
    if exclude is not None:
        rows = rows[~torch.isin(rows, exclude.cpu())]
    return rows


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


__all__ = [
    "CraftingConfig", "DMPoisonConfig", "POISON_LOSSES", "PoisonResult", "Target", "attack_loss",
    "check_target", "class_rows", "craft_dm_poisons", "direct_poison", "dm_poison", "dm_poison_loss",
    "pick_target", "poison_rows", "project", "score_restarts",
]
