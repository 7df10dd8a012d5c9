"""Infinite-width kernels of fully-connected ReLU networks: the NNGP and the NTK.

The network, for inputs flattened to vectors ``x`` of dimension ``d``, has
``depth`` hidden ReLU layers of width ``n`` and a linear read-out. Its layers are
written in the *NTK parametrisation* (Jacot et al. 2018): weights and biases are
drawn N(0, 1) and scaled in the forward pass,

    z^1 = sigma_w / sqrt(d) * W^1 x + sigma_b * b^1,
    z^{l+1} = sigma_w / sqrt(n) * W^{l+1} relu(z^l) + sigma_b * b^{l+1}.

This has the same forward distribution as the standard parametrisation with
weight variance ``sigma_w^2 / fan_in`` (He initialisation for ``sigma_w^2 = 2``)
but a tangent kernel that converges as ``n -> inf``; in the standard
parametrisation the raw gradient inner product grows with ``n``. As ``n -> inf``
(Lee et al. 2018; Jacot et al. 2018; Arora et al. 2019, Eq. 4-6), with
``k1``/``k0`` the arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009):

    Sigma^1     = sigma_w^2 * <x, x'> / d + sigma_b^2,           Theta^1 = Sigma^1
    Sigma^{l+1} = sigma_w^2 * k1(Sigma^l) + sigma_b^2
    Theta^{l+1} = Theta^l * sigma_w^2 * k0(Sigma^l) + Sigma^{l+1}

    k1 = sqrt(s s') / (2 pi) * (sin t + (pi - t) cos t),   k0 = (pi - t) / (2 pi),
    t = arccos(Sigma(x, x') / sqrt(Sigma(x, x) Sigma(x', x'))).

The output kernels are ``Sigma^{depth+1}`` (NNGP) and ``Theta^{depth+1}`` (NTK).
Defaults: ``sigma_w^2 = 2`` (keeps ``Sigma(x, x)`` constant across ReLU layers)
and ``sigma_b^2 = 0``, the bias-free network, whose kernels are the simplest to
check by hand. KIP does not use these defaults: it passes the KIP paper's
``sigma_w^2 = 2, sigma_b^2 = 1e-4`` (Nguyen et al. 2021, experimental setup; see
:class:`ddrepro.config.KIPConfig`). A positive ``sigma_b^2`` adds it to every
entry at each layer, which also keeps ``Sigma`` positive for the zero input.

Everything is differentiable w.r.t. both inputs, which is what KIP optimises.
The cosine inside ``arccos`` is clamped to ``[-1 + eps, 1 - eps]`` so that the
derivative ``-1 / sqrt(1 - c^2)`` stays finite; on the diagonal of a kernel of a
set with itself the angle is set to exactly 0 (where the clamp would otherwise
cost a relative error of order ``sqrt(eps)``).
"""

from __future__ import annotations

import math

import torch


def _check_inputs(x1: torch.Tensor, x2: torch.Tensor | None, depth: int,
                  sigma_w2: float, sigma_b2: float) -> None:
    if x1.ndim < 2:
        raise ValueError(f"inputs must be (n, ...) with a batch dimension, got shape {tuple(x1.shape)}.")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x1 items of shape {tuple(x1.shape[1:])} and x2 items of shape "
            f"{tuple(x2.shape[1:])} differ; pass inputs of the same shape."
        )
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0 (hidden layers), got {depth!r}.")
    if sigma_w2 <= 0 or sigma_b2 < 0:
        raise ValueError(
            f"sigma_w2 = {sigma_w2} must be > 0 and sigma_b2 = {sigma_b2} >= 0."
        )


def _cos_eps(dtype: torch.dtype) -> float:
    """Clamp margin for the cosine: far enough from 1 that arccos' slope is finite in ``dtype``."""
    return 1e-6 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-12


def _arccos_terms(sigma: torch.Tensor, diag1: torch.Tensor, diag2: torch.Tensor,
                  same: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(k1, k0)`` of the ReLU arc-cosine kernels for one layer (see module docstring)."""
    norms = torch.sqrt(diag1[:, None] * diag2[None, :]).clamp_min(torch.finfo(sigma.dtype).tiny)
    eps = _cos_eps(sigma.dtype)
    cos = (sigma / norms).clamp(-1.0 + eps, 1.0 - eps)
    angle = torch.arccos(cos)
    if same:  # x with itself: the angle is exactly 0, no clamp error on the diagonal
        eye = torch.eye(sigma.shape[0], dtype=torch.bool, device=sigma.device)
        angle = torch.where(eye, torch.zeros_like(angle), angle)
        cos = torch.where(eye, torch.ones_like(cos), cos)
    k1 = norms * (torch.sin(angle) + (math.pi - angle) * cos) / (2 * math.pi)
    k0 = (math.pi - angle) / (2 * math.pi)
    return k1, k0


def relu_kernels(
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    depth: int = 1,
    sigma_w2: float = 2.0,
    sigma_b2: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(nngp, ntk)``, each ``(n1, n2)``, of a ``depth``-hidden-layer ReLU network.

    ``x2=None`` means ``x2 = x1`` (the symmetric kernel of a set with itself,
    with an exact diagonal). ``depth = 0`` is the linear model.
    Inputs of any shape ``(n, ...)`` are flattened to vectors.
    """
    _check_inputs(x1, x2, depth, sigma_w2, sigma_b2)
    same = x2 is None
    a = x1.flatten(1)
    b = a if same else x2.flatten(1)
    dim = a.shape[1]
    sigma = sigma_w2 * (a @ b.T) / dim + sigma_b2
    diag1 = sigma_w2 * (a * a).sum(1) / dim + sigma_b2
    diag2 = diag1 if same else sigma_w2 * (b * b).sum(1) / dim + sigma_b2
    theta = sigma
    for _ in range(depth):
        k1, k0 = _arccos_terms(sigma, diag1, diag2, same)
        sigma_next = sigma_w2 * k1 + sigma_b2
        theta = theta * (sigma_w2 * k0) + sigma_next
        sigma = sigma_next
        # on the diagonal t = 0, so k1(s, s) = s / 2: the diagonals follow in closed form
        diag1 = sigma_w2 * diag1 / 2 + sigma_b2
        diag2 = diag1 if same else sigma_w2 * diag2 / 2 + sigma_b2
    return sigma, theta


def relu_ntk(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int = 1,
             sigma_w2: float = 2.0, sigma_b2: float = 0.0) -> torch.Tensor:
    """The infinite-width NTK ``Theta^{depth+1}`` (see :func:`relu_kernels`)."""
    return relu_kernels(x1, x2, depth=depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2)[1]


def relu_nngp(x1: torch.Tensor, x2: torch.Tensor | None = None, *, depth: int = 1,
              sigma_w2: float = 2.0, sigma_b2: float = 0.0) -> torch.Tensor:
    """The infinite-width NNGP kernel ``Sigma^{depth+1}`` (see :func:`relu_kernels`)."""
    return relu_kernels(x1, x2, depth=depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2)[0]


__all__ = ["relu_kernels", "relu_ntk", "relu_nngp"]
