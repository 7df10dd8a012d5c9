"""DP-MERF (Harder, Adamczewski & Park, AISTATS 2021): a generator fitted to a private mean embedding.

The data enter once: the mean of random Fourier features (Rahimi & Recht 2007)
of the members, one column per class,

    M = (1/n) sum_i phi(x_i) e_{y_i}^T,   phi(x) = sqrt(2/D) [cos(W x), sin(W x)],
    W ~ N(0, I / bandwidth^2)  ((D/2, d), drawn from a public seed),

released with the Gaussian mechanism, M~ = M + N(0, (sigma Delta)^2 I). Since
||phi(x)|| = 1 exactly, replacing one member changes at most two columns by
vectors of norm <= 1/n each, so the L2 sensitivity is Delta = 2/n (the
replace-one relation of Harder et al., Sec. 3). A single release of a
Gaussian mechanism with noise multiplier sigma is (epsilon, delta)-DP when
Opacus's RDP accountant says so for one full-batch step (sample rate 1), which
is how :func:`noise_multiplier` finds sigma. The generator then only sees
M~ (post-processing): it is trained to minimise ||M~ - M_G||^2, with M_G the
same embedding of a class-balanced batch of its own samples.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ...artifacts import cached
from ...config import _check, _positive
from ...data import ImageData
from ...runtime import progress, resolve_device
from ...synthetic import SyntheticSet
from .cgan import ConditionalMLP, _flat_pixels, generate, sample_set

# RDP orders searched by the accountant: Opacus's defaults stop at 63, too low for the
# small noise of epsilon = 10 with a single release (it warns that the optimum is the largest).
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [80, 128, 256, 512, 1024]


@dataclass(frozen=True)
class DPMERFConfig:
    """The budget (``epsilon``, ``delta``), ``features`` = D random features (D/2 frequencies),
    the Gaussian kernel's ``bandwidth`` in pixel units ([0, 1] pixels, flattened), and the
    generator (``latent``, ``width``) trained ``steps`` Adam(``lr``) steps on batches of
    ``batch`` samples. Harder et al. use D = 10,000 on MNIST; the other values are ours."""

    epsilon: float = 10.0
    delta: float = 1e-5
    features: int = 2000
    bandwidth: float = 5.0
    steps: int = 2000
    batch: int = 500
    latent: int = 32
    width: int = 256
    lr: float = 1e-3

    def __post_init__(self) -> None:
        _check(math.isfinite(self.epsilon) and self.epsilon > 0, self, "epsilon", self.epsilon,
               "a finite number > 0 (the privacy budget)")
        _check(0.0 < self.delta < 1.0, self, "delta", self.delta, "in (0, 1), e.g. 1e-5 < 1/|T|")
        _positive(self, "features", "bandwidth", "steps", "batch", "latent", "width", "lr")
        _check(self.features % 2 == 0, self, "features", self.features, "even (cos and sin pairs)")


def noise_multiplier(epsilon: float, delta: float) -> float:
    """sigma of one Gaussian release that is (epsilon, delta)-DP, from Opacus's RDP accountant."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon = {epsilon!r}: the privacy budget must be a finite number > 0.")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta = {delta!r} must lie in (0, 1); use e.g. 1e-5 (below 1/|T|).")
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order")
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=1.0,
                                          steps=1, accountant="rdp", alphas=RDP_ORDERS))


def frequencies(n_pixels: int, features: int, bandwidth: float, seed: int) -> Tensor:
    """W ``(features // 2, n_pixels)`` ~ N(0, 1/bandwidth^2): data-independent, so public."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(features // 2, n_pixels, generator=gen) / bandwidth


def fourier_features(x: Tensor, w: Tensor) -> Tensor:
    """phi(x) = sqrt(2/D) [cos(W x), sin(W x)] ``(n, D)``, so that ||phi(x)|| = 1 and
    phi(x).phi(x') approximates exp(-||x - x'||^2 / (2 bandwidth^2)) (Rahimi & Recht)."""
    proj = x @ w.T
    return torch.cat([proj.cos(), proj.sin()], 1) / math.sqrt(w.shape[0])


def mean_embedding(x: Tensor, labels: Tensor, w: Tensor, num_classes: int) -> Tensor:
    """M = (1/n) sum_i phi(x_i) e_{y_i}^T, ``(D, num_classes)``."""
    phi = fourier_features(x, w)
    onehot = torch.nn.functional.one_hot(labels, num_classes).to(phi.dtype)
    return phi.T @ onehot / len(x)


def sensitivity(n: int) -> float:
    """L2 sensitivity of :func:`mean_embedding` over n members under replace-one: 2/n."""
    if n < 1:
        raise ValueError(f"n = {n!r}: the embedding needs at least one member.")
    return 2.0 / n


def release(embedding: Tensor, n: int, sigma: float, seed: int) -> Tensor:
    """The Gaussian mechanism: ``embedding + N(0, (sigma * sensitivity(n))^2)`` per entry."""
    if not sigma > 0:
        raise ValueError(f"sigma = {sigma!r} must be > 0.")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(embedding.shape, generator=gen, dtype=embedding.dtype)
    return embedding + sigma * sensitivity(n) * noise.to(embedding.device)


def private_embedding(members: ImageData, cfg: DPMERFConfig, seed: int) -> dict[str, Any]:
    """The one access to the members: W (public), the released M~, sigma and Delta."""
    sigma = noise_multiplier(cfg.epsilon, cfg.delta)  # raises before any compute
    x = _flat_pixels(members)
    w = frequencies(x.shape[1], cfg.features, cfg.bandwidth, seed)
    exact = mean_embedding(x, members.labels, w, members.num_classes)
    return {"w": w, "released": release(exact, len(members), sigma, seed + 1), "sigma": sigma,
            "sensitivity": sensitivity(len(members))}


def train_dp_merf(members: ImageData, cfg: DPMERFConfig = DPMERFConfig(), *, seed: int = 0,
                  device: Any = "auto", quiet: bool | None = None) -> dict[str, Any]:
    """Release the embedding once, then fit a conditional generator to it; cached.

    Returns the generator's weights (``state``), ``sigma`` and ``sensitivity``.
    Class-balanced generator batches: the members are balanced per class, so
    M's columns are each class's mean embedding over the number of classes.
    """
    sigma = noise_multiplier(cfg.epsilon, cfg.delta)
    k = members.num_classes
    if cfg.batch < k:
        raise ValueError(f"DPMERFConfig.batch = {cfg.batch} < {k} classes: raise it.")
    parts = {"members": members.digest(), "cfg": asdict(cfg), "seed": seed}

    def compute() -> dict[str, Any]:
        dev = resolve_device(device)
        released = private_embedding(members, cfg, seed)
        target, w = released["released"].to(dev), released["w"].to(dev)
        gen = torch.Generator().manual_seed(seed + 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            net = ConditionalMLP(cfg.latent, k, cfg.width, w.shape[1]).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        labels = torch.arange(k, device=dev).repeat_interleave(cfg.batch // k)
        for _ in progress(range(cfg.steps), desc=f"DP-MERF eps={cfg.epsilon:g}", quiet=quiet):
            fake = generate(net, labels, cfg.latent, gen)
            loss = (target - mean_embedding(fake, labels, w, k)).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"state": {n_: v.detach().cpu() for n_, v in net.state_dict().items()},
                "sigma": sigma, "sensitivity": released["sensitivity"]}

    return cached("dp-merf", parts, compute, code=("ddrepro.privacy.generators.dp_merf",))


def dp_merf_set(members: ImageData, ipc: int, cfg: DPMERFConfig = DPMERFConfig(), *, seed: int = 0,
                sample_seed: int | None = None, device: Any = "auto",
                quiet: bool | None = None) -> SyntheticSet:
    """Train (or load) DP-MERF on ``members`` and draw ``ipc`` images per class."""
    fit = train_dp_merf(members, cfg, seed=seed, device=device, quiet=quiet)
    return sample_set(fit["state"], members, ipc, latent=cfg.latent, width=cfg.width,
                      seed=seed if sample_seed is None else sample_seed, method="dp_merf",
                      meta={"config": asdict(cfg), "epsilon": cfg.epsilon, "delta": cfg.delta,
                            "sigma": fit["sigma"], "sensitivity": fit["sensitivity"]})


__all__ = ["DPMERFConfig", "RDP_ORDERS", "dp_merf_set", "fourier_features", "frequencies",
           "mean_embedding", "noise_multiplier", "private_embedding", "release", "sensitivity",
           "train_dp_merf"]
