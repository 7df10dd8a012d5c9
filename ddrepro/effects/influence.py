"""The replacement effect (Def. 3.1 of the effect-alignment paper) and two estimators of it.

``R(G, A) = L(P, theta*_D) - L(P, theta*_{D-G+A})``: how much the loss on a
real set P *drops* when the group G of the training set D is replaced by A.

* :func:`retrained_losses` computes it by brute force: one network per
  modified set, all trained together with the shared loop in coupled mode
  (one initialisation, one shuffle of the pool), so two runs differ only
  through the data change, not through seed noise.
* :func:`linear_response` is the exact first-order response through the
  unroll: the derivative in ``eps`` of the P-loss after T steps of gradient
  descent on ``L_eps = (1 - eps) L(D) + eps L(D')``, by forward-mode
  :func:`torch.func.jvp` through the whole run, extrapolated to ``eps = 1``
  (the SGD-influence of Hara et al. 2019, at these sizes exactly);
* :class:`EffectEstimator` reads one recorded SGD run on D
  (:class:`ddrepro.trajectory.Trajectory`) and gives

  - ``form="paper"``, Eq. 4/5 as printed:
    ``sum_t <gP, gG - alpha gD> - <gP, gA>``;
  - ``form="derived"``, the first-order unroll of SGD (the chapter's
    Proposition, book/05_effect_alignment/estimator.md):
    ``sum_t eta_t <gP, alpha gD - |G|/|D'| gG + |A|/|D'| gA>``,

  with ``gX = grad L(X, theta_t)``, ``alpha = (|G| - |A|) / |D'|`` and
  ``|D'| = |D| - |G| + |A|``. The two differ in sign and in scale: removing
  G with P = G raises the loss on G (R < 0); the derived form is then
  negative, Eq. 4 positive. The derived form is the linear response with
  the propagation of the parameter change dropped (the term
  ``eta_t H_t dtheta_t``, first order in the data change): a TracIn-style
  sum over checkpoints (Pruthi et al. 2020), not the linear response.

Both sum over ``t_m`` sampled checkpoints (Eq. 5) with one batched pass per
group (:func:`ddrepro.functional.checkpoint_grads`, vmapped over checkpoints).
The derived form rescales its sampled sum by ``T / t_m`` so that it estimates
the full sum; Eq. 5 is kept as printed (no rescaling, no step sizes).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from torch import nn
from torch.func import functional_call

from ..config import EvalConfig, NetConfig
from ..models import TrainedModels
from ..train import batch_loss, per_sample_loss, train_models
from ..trajectory import Trajectory, group_grads, sample_checkpoints

Form = Literal["paper", "derived"]
FORMS = ("paper", "derived")


def replacement_alpha(n_d: int, n_g: int, n_a: int) -> float:
    """``alpha = (|G| - |A|) / (|D| - |G| + |A|)`` (Prop. 3.2)."""
    n_new = n_d - n_g + n_a
    if n_new <= 0:
        raise ValueError(f"|D| - |G| + |A| = {n_new}: the modified training set would be empty.")
    return (n_g - n_a) / n_new


def effect_paper(g_p: Tensor, g_d: Tensor, g_g: Tensor, g_a: Tensor, alpha: float) -> Tensor:
    """Eq. 4/5 as printed: ``sum_t <gP, gG - alpha gD> - sum_t <gP, gA>`` (rows = checkpoints)."""
    return ((g_p * (g_g - alpha * g_d - g_a)).sum(1)).sum()


def effect_derived(g_p: Tensor, g_d: Tensor, g_g: Tensor, g_a: Tensor, *, n_d: int, n_g: int,
                   n_a: int, step_lengths: Tensor) -> Tensor:
    """First-order unroll of SGD: ``sum_t s_t <gP, alpha gD - |G|/|D'| gG + |A|/|D'| gA>``.

    ``step_lengths[t]``: the total step size checkpoint t stands for (``eta_t``
    times the updates it covers, times ``T / t_m`` when checkpoints are sampled).
    """
    n_new = n_d - n_g + n_a
    alpha = replacement_alpha(n_d, n_g, n_a)
    change = alpha * g_d - (n_g / n_new) * g_g + (n_a / n_new) * g_a  # grad L(D') - grad L(D)
    return (step_lengths * (g_p * change).sum(1)).sum()


def _check_group(name: str, images: Tensor, targets: Tensor, *, allow_empty: bool) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"{name} images must be an (n, C, H, W) tensor.")
    if not isinstance(targets, Tensor) or targets.shape[:1] != images.shape[:1]:
        raise ValueError(f"{name} needs one target per image, got {images.shape[0]} images and "
                         f"targets of shape {tuple(getattr(targets, 'shape', ()))}.")
    if images.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty; the replacement effect needs at least one example in it.")


class EffectEstimator:
    """Estimates ``R(G, A)`` from one recorded trajectory on D (module docstring).

    ``t_m``: checkpoints sampled (with ``seed``) among those followed by an
    update; None uses all of them. The gradients on P and D at the sampled
    checkpoints are computed once here; each :meth:`estimate` adds one batched
    pass for G and one for A.
    """

    def __init__(self, traj: Trajectory, p_images: Tensor, p_targets: Tensor, d_images: Tensor,
                 d_targets: Tensor, *, t_m: int | None = None, seed: int = 0) -> None:
        _check_group("P", p_images, p_targets, allow_empty=False)
        _check_group("D", d_images, d_targets, allow_empty=False)
        eligible = torch.nonzero(traj.updates.cpu() > 0).flatten()
        if eligible.numel() == 0:
            raise ValueError("the trajectory has no update between checkpoints; record more than one.")
        t_m = eligible.numel() if t_m is None else t_m
        picks = eligible[sample_checkpoints(eligible.numel(), t_m, torch.Generator().manual_seed(seed))]
        self.traj = traj.take(picks.to(traj.lrs.device))
        self.t_m = t_m
        self.checkpoints = picks
        self.n_d = d_images.shape[0]
        scale = eligible.numel() / t_m
        self.step_lengths = (self.traj.lrs * self.traj.updates).float() * scale
        with torch.no_grad():
            self.g_p = group_grads(self.traj, p_images, p_targets)
            self.g_d = group_grads(self.traj, d_images, d_targets)

    def grads(self, images: Tensor, targets: Tensor) -> Tensor:
        """``(t_m, P)`` gradients of a group at the sampled checkpoints."""
        with torch.no_grad():
            return group_grads(self.traj, images, targets)

    def estimate(self, g_images: Tensor, g_targets: Tensor, a_images: Tensor, a_targets: Tensor,
                 *, form: Form = "derived") -> float:
        """``R-hat(G, A)`` of the given form; G must be non-empty, A may be empty."""
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}.")
        _check_group("G", g_images, g_targets, allow_empty=False)
        _check_group("A", a_images, a_targets, allow_empty=True)
        n_g, n_a = g_images.shape[0], a_images.shape[0]
        if n_g > self.n_d:
            raise ValueError(f"|G| = {n_g} exceeds |D| = {self.n_d}; G must be a subset of D.")
        g_g, g_a = self.grads(g_images, g_targets), self.grads(a_images, a_targets)
        if form == "paper":
            value = effect_paper(self.g_p, self.g_d, g_g, g_a, replacement_alpha(self.n_d, n_g, n_a))
        else:
            value = effect_derived(self.g_p, self.g_d, g_g, g_a, n_d=self.n_d, n_g=n_g, n_a=n_a,
                                   step_lengths=self.step_lengths)
        return float(value)


# -- the exact first-order response ------------------------------------------

def mixing_weights(n_pool: int, d_rows: Tensor, new_rows: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row weights of the pool: ``w_D`` (mean over D) and ``w_D' - w_D`` (its change).

    ``sum_i (w_D + eps * delta)_i loss_i = (1 - eps) L(D) + eps L(D')`` with
    ``D'`` the rows ``new_rows`` (``D - G + A``): the mixing of
    :func:`linear_response`.
    """
    w_d = torch.zeros(n_pool)
    w_d[d_rows] = 1.0 / d_rows.numel()
    w_new = torch.zeros(n_pool)
    w_new[new_rows] = 1.0 / new_rows.numel()
    return w_d, w_new - w_d


def linear_response(base: nn.Module, start: dict[str, Tensor], buffers: dict[str, Tensor],
                    lrs: Tensor, pool_images: Tensor, pool_targets: Tensor, w_d: Tensor,
                    deltas: Tensor, p_images: Tensor, p_targets: Tensor) -> Tensor:
    """``(K,)`` first-order replacement effects through the unroll, one per row of ``deltas``.

    For each direction ``delta`` (a row of ``deltas``, :func:`mixing_weights`)
    the run ``theta_{t+1} = theta_t - lrs[t] grad L_eps(theta_t)`` on
    ``L_eps = sum_i (w_d + eps delta)_i loss_i`` starts at ``start`` and runs
    ``len(lrs)`` full-batch steps; the result is ``-d/d eps L(P, theta_T)`` at
    ``eps = 0``, i.e. ``R(G, A)`` to first order in ``eps`` taken at 1. It is
    one forward-mode derivative (:func:`torch.func.jvp`) through every step,
    so the change of the parameters ``dtheta_t`` is carried along (the
    derived form drops its ``- eta_t H_t dtheta_t``). Vmapped over the K
    directions.
    """
    def params_loss(params, weights):
        logits = functional_call(base, (params, buffers), (pool_images,))
        return (weights * per_sample_loss(logits, pool_targets)).sum()

    step_grad = torch.func.grad(params_loss)

    def p_loss_after(eps, delta):
        weights = w_d + eps * delta
        params = dict(start)
        for lr in lrs:
            grads = step_grad(params, weights)
            params = {name: p - lr * grads[name] for name, p in params.items()}
        return batch_loss(functional_call(base, (params, buffers), (p_images,)), p_targets, None)

    def response(delta):
        zero, one = torch.zeros((), dtype=w_d.dtype, device=w_d.device), torch.ones((), dtype=w_d.dtype,
                                                                                     device=w_d.device)
        _, tangent = torch.func.jvp(lambda eps: p_loss_after(eps, delta), (zero,), (one,))
        return -tangent

    return torch.vmap(response)(deltas)


# -- brute force ---------------------------------------------------------------

def replacement_members(n_d: int, n_pool: int, groups: list[Tensor], additions: list[Tensor]) -> Tensor:
    """``(1 + K, n_pool)`` bool: row 0 is D (the pool's first ``n_d`` rows), row k is ``D - G_k + A_k``.

    ``groups[k]``: indices into D (non-empty); ``additions[k]``: indices into the
    pool's extra rows ``[n_d, n_pool)`` (may be empty).
    """
    if len(groups) != len(additions) or not groups:
        raise ValueError(f"need one addition per group and at least one pair, got {len(groups)} "
                         f"groups and {len(additions)} additions.")
    members = torch.zeros(1 + len(groups), n_pool, dtype=torch.bool)
    members[:, :n_d] = True
    for k, (g, a) in enumerate(zip(groups, additions), start=1):
        if g.numel() == 0:
            raise ValueError(f"group {k - 1} is empty; every G needs at least one row of D.")
        if int(g.min()) < 0 or int(g.max()) >= n_d or (a.numel() and (int(a.min()) < n_d
                                                                       or int(a.max()) >= n_pool)):
            raise ValueError(f"pair {k - 1}: G must index [0, {n_d}) and A [{n_d}, {n_pool}).")
        members[k, g] = False
        members[k, a] = True
    return members


def retrained_losses(pool_images: Tensor, pool_labels: Tensor, members: Tensor, p_images: Tensor,
                     p_labels: Tensor, *, net_cfg: NetConfig, eval_cfg: EvalConfig, num_classes: int,
                     seed: int = 0, record_every: int | None = None,
                     device: str | torch.device = "auto",
                     quiet: bool | None = None) -> tuple[Tensor, TrainedModels]:
    """``(K,)`` loss on P of K networks, network k trained on the rows ``members[k]`` of the pool.

    Coupled (one initialisation, one shuffle) so that ``losses[0] - losses[k]``
    is the exact replacement effect of the change from set 0 to set k for this
    initialisation (Def. 3.1 by brute force).
    """
    _check_group("P", p_images, p_labels, allow_empty=False)
    models = train_models(pool_images, pool_labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                          num_classes=num_classes, members=members, coupled=True, seed=seed,
                          record_every=record_every, device=device, quiet=quiet)
    logits = models.predict(p_images)
    targets = p_labels.to(logits.device)
    losses = torch.stack([batch_loss(logits[k], targets, None) for k in range(logits.shape[0])])
    return losses.cpu(), models


def error_bound(steps: int, lipschitz: float, distance: float, grad_bound: float, n_d: int) -> float:
    """Prop. 3.3: ``|R - R-hat| <= l T^2 C + T^2 g / |D|``."""
    return lipschitz * steps ** 2 * distance + steps ** 2 * grad_bound / n_d


def spearman(x: Tensor, y: Tensor) -> float:
    """Spearman rank correlation (scipy), NaN when either side is constant."""
    from scipy.stats import spearmanr

    value = spearmanr(x.numpy(), y.numpy()).statistic
    return float(value) if not math.isnan(value) else math.nan


__all__ = ["EffectEstimator", "FORMS", "effect_derived", "effect_paper", "error_bound",
           "linear_response", "mixing_weights", "replacement_alpha", "replacement_members",
           "retrained_losses", "spearman"]
