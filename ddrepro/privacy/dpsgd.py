"""DP-SGD (Abadi et al., CCS 2016, Algorithm 1) with per-sample gradients from ``torch.func``.

The critique of "privacy for free" (Carlini, Feldman & Nasr 2022) compares
dataset condensation with the principled alternative: train on T with
differentially private SGD. Each step

1. draws a batch by Poisson sampling (every example independently with
   probability ``q``, the sampling the RDP accountant analyses);
2. computes every example's gradient (``torch.func.vmap`` of ``grad``);
3. clips each to L2 norm at most ``C`` over all parameters together;
4. adds Gaussian noise ``N(0, sigma^2 C^2 I)`` to their sum and divides by the
   *expected* batch size ``q N`` (Opacus's normalisation for Poisson batches).

The noise multiplier ``sigma`` for a target ``(epsilon, delta)`` after the
run's steps at rate ``q`` comes from Opacus's RDP accountant
(:func:`opacus.accountants.utils.get_noise_multiplier`), and the epsilon
actually spent is read back from :class:`opacus.accountants.RDPAccountant`:
the accounting is the kept library's, only the training loop is ours, so that
it runs on the engine's ConvNet (instance norm: per-sample, as DP requires).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from ..artifacts import cached
from ..config import NetConfig
from ..data import ImageData
from ..evaluate import accuracy, probe
from ..models import TrainedModels, init_stacked
from ..runtime import is_quiet, progress, resolve_device
from ..train import derive_seed


def check_privacy_target(epsilon: float, delta: float) -> None:
    """ValueError unless ``epsilon > 0`` (finite) and ``0 < delta < 1``."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 < epsilon < math.inf:
        raise ValueError(f"epsilon = {epsilon!r} must be a finite number > 0 (e.g. 1, 4, 10).")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise ValueError(f"delta = {delta!r} must lie strictly between 0 and 1 (e.g. 1e-5).")


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest sigma that keeps ``steps`` Poisson-sampled steps at rate ``sample_rate``
    within ``(epsilon, delta)``, by Opacus's RDP accountant."""
    from opacus.accountants.utils import get_noise_multiplier

    check_privacy_target(epsilon, delta)
    if not 0 < sample_rate <= 1 or steps < 1:
        raise ValueError(f"sample_rate = {sample_rate!r} must lie in (0, 1] and steps = {steps!r} be >= 1.")
    with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser bound, still valid
        warnings.simplefilter("ignore", UserWarning)
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps, accountant="rdp"))


def spent_epsilon(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """The epsilon Opacus's RDP accountant reports for ``steps`` steps of noise ``sigma`` at ``sample_rate``."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(sigma, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(accountant.get_epsilon(delta))


def clip_and_noise(per_sample: list[Tensor], clip: float, sigma: float, expected_batch: float,
                   generator: torch.Generator) -> list[Tensor]:
    """Steps 3-4: clip each example's gradient (all parameters together) to norm ``clip``, sum,
    add ``N(0, (sigma * clip)^2)`` per coordinate and divide by ``expected_batch``.

    ``per_sample``: one ``(b, ...)`` tensor per parameter (``b`` may be 0).
    """
    b = per_sample[0].shape[0]
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample)) if b else None
    out = []
    for g in per_sample:
        total = torch.zeros(g.shape[1:], dtype=g.dtype, device=g.device)
        if b:
            factor = (clip / (norms + 1e-12)).clamp(max=1.0)
            total = torch.einsum("b,b...->...", factor, g)
        noise = torch.randn(total.shape, generator=generator, dtype=total.dtype).to(total.device)
        out.append((total + sigma * clip * noise) / expected_batch)
    return out


def clipped_norms(per_sample: list[Tensor], clip: float) -> Tensor:
    """Per-example norms after step 3 (what :func:`clip_and_noise` sums): each <= ``clip``."""
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_sample))
    return norms * (clip / (norms + 1e-12)).clamp(max=1.0)


def per_sample_grads(base: torch.nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor],
                     x: Tensor, y: Tensor) -> list[Tensor]:
    """Step 2: each example's gradient of its cross-entropy, ``(b, ...)`` per parameter."""
    def loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(base, (p, buffers), (xi.unsqueeze(0),))
        return torch.nn.functional.cross_entropy(logits, yi.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return [grads[name] for name in params]


def dp_sgd(images: Tensor, labels: Tensor, *, net_cfg: NetConfig, num_classes: int,
           epsilon: float | None, delta: float, epochs: int, expected_batch: int, clip: float,
           lr: float, momentum: float = 0.0, seed: int = 0, device: Any = "auto",
           quiet: bool | None = None) -> tuple[TrainedModels, dict[str, float]]:
    """Train one network on ``(images, labels)`` by DP-SGD at ``(epsilon, delta)`` (module docstring).

    ``epsilon=None`` is the non-private reference: the same loop with neither
    clipping nor noise. Returns the model (as a 1-model :class:`TrainedModels`)
    and the run's accounting: ``sigma``, ``sample_rate``, ``steps`` and the
    epsilon the accountant reports for them (``inf`` without noise).
    """
    if epsilon is not None:
        check_privacy_target(epsilon, delta)
    if net_cfg.norm == "batchnorm":
        raise ValueError("DP-SGD needs per-sample normalisation; batch norm mixes examples "
                         "(use norm='instancenorm').")
    n = images.shape[0]
    if not 1 <= expected_batch <= n or epochs < 1 or clip <= 0 or lr <= 0:
        raise ValueError(f"need 1 <= expected_batch ({expected_batch}) <= n ({n}), epochs >= 1, "
                         f"clip > 0 and lr > 0.")
    q = expected_batch / n
    steps = epochs * round(1 / q)
    sigma = 0.0 if epsilon is None else noise_multiplier(epsilon, delta, q, steps)
    dev = resolve_device(device)
    base, stacked, buffers = init_stacked(net_cfg, images.shape[1], num_classes, images.shape[2],
                                          [derive_seed(seed, 0, "init")], dev)
    params = {k: v[0].detach().clone() for k, v in stacked.items()}
    single_buffers = {k: v[0] for k, v in buffers.items()}
    momenta = {k: torch.zeros_like(v) for k, v in params.items()}
    gen = torch.Generator().manual_seed(derive_seed(seed, 0, "dp-sgd"))
    x_all, y_all = images.to(dev), labels.to(dev)
    for _ in progress(range(steps), desc=f"DP-SGD eps={epsilon}", quiet=is_quiet(quiet)):
        take = torch.nonzero(torch.rand(n, generator=gen) < q).flatten().to(dev)
        g = per_sample_grads(base, params, single_buffers, x_all[take], y_all[take])
        if epsilon is None:   # non-private: the plain mean of the batch's gradients
            update = [gi.sum(0) / max(1, take.numel()) for gi in g]
        else:
            update = clip_and_noise(g, clip, sigma, q * n, gen)
        with torch.no_grad():
            for (name, p), u in zip(params.items(), update):
                momenta[name].mul_(momentum).add_(u)
                p.sub_(lr * momenta[name])
    model = TrainedModels(net_cfg, images.shape[1], num_classes, images.shape[2],
                          {k: v.detach()[None] for k, v in params.items()}, buffers)
    spent = math.inf if epsilon is None else spent_epsilon(sigma, q, steps, delta)
    return model, {"sigma": sigma, "sample_rate": q, "steps": steps, "epsilon_spent": spent}


def dp_sgd_membership(*, members: ImageData, nonmembers: ImageData, test: ImageData,
                      epsilon: float | None, delta: float, epochs: int, expected_batch: int,
                      clip: float, lr: float, momentum: float, net_cfg: NetConfig, seed: int,
                      n_probe: int, device: Any = "auto", quiet: bool | None = None) -> dict[str, Any]:
    """Train on ``members`` by :func:`dp_sgd`; return the test accuracy, the accounting and the
    losses on ``n_probe`` members and ``n_probe`` non-members (for the loss attack); cached."""
    if epsilon is not None:
        check_privacy_target(epsilon, delta)
    parts = {"members": members.digest(), "nonmembers": nonmembers.digest(), "test": test.digest(),
             "epsilon": epsilon, "delta": delta, "epochs": epochs, "batch": expected_batch,
             "clip": clip, "lr": lr, "momentum": momentum, "net": net_cfg, "seed": seed, "n": n_probe}

    def compute() -> dict[str, Any]:
        model, record = dp_sgd(members.images, members.labels, net_cfg=net_cfg,
                               num_classes=members.num_classes, epsilon=epsilon, delta=delta,
                               epochs=epochs, expected_batch=expected_batch, clip=clip, lr=lr,
                               momentum=momentum, seed=seed, device=device, quiet=quiet)
        inside = members.subset(n_probe, seed=seed)
        outside = nonmembers.subset(n_probe, seed=seed)
        return record | {"accuracy": float(accuracy(model, test)[0]),
                         "member_loss": probe(model, *inside)["loss"][0],
                         "nonmember_loss": probe(model, *outside)["loss"][0]}

    return cached("dp-sgd", parts, compute, code=(dp_sgd_membership, "ddrepro.privacy.dpsgd"))


def advantage_bound(epsilon: float, delta: float) -> float:
    """The largest membership advantage TPR - FPR any attack has against an (epsilon, delta)-DP
    mechanism: ``(e^eps - 1 + 2 delta) / (e^eps + 1)`` (from TPR <= e^eps FPR + delta applied to
    both the attack and its complement; Kairouz et al., ICML 2015)."""
    check_privacy_target(epsilon, delta)
    return min(1.0, (math.exp(epsilon) - 1 + 2 * delta) / (math.exp(epsilon) + 1))


__all__ = ["advantage_bound", "check_privacy_target", "clip_and_noise", "clipped_norms", "dp_sgd",
           "dp_sgd_membership", "noise_multiplier", "per_sample_grads", "spent_epsilon"]
