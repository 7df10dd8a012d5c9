"""A small conditional GAN (Mirza & Osindero 2014), the paper's non-private generator baseline.

Dong et al. (ICML 2022, Sec. 5) train a cGAN on the members T and compare
models trained on its samples with models trained on DC-synthesised sets
(Table 2, Figs. 3-4, 10). Ours is a two-hidden-layer MLP generator and
discriminator, both conditioned by concatenating the one-hot label, trained
with the non-saturating loss of Goodfellow et al. (2014) on pixels in [-1, 1]:
small enough to train in about a minute on one CPU core (the paper does not
give its architecture).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...artifacts import cached
from ...config import _positive
from ...data import ImageData
from ...pixels import from_pixels, to_pixels
from ...runtime import progress, resolve_device
from ...synthetic import SyntheticSet


@dataclass(frozen=True)
class CGANConfig:
    """``steps`` Adam updates of each network on minibatches of ``batch`` members;
    ``latent`` noise dimensions; hidden widths ``width`` and ``2 * width``. Ours
    (the paper gives none); Adam(``lr``, betas (0.5, 0.999)) as in DCGAN."""

    steps: int = 5000
    batch: int = 128
    latent: int = 32
    width: int = 256
    lr: float = 2e-4

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch", "latent", "width", "lr")


class ConditionalMLP(nn.Module):
    """``[input, one-hot(label)]`` -> ``width`` -> ``2 width`` -> ``out``: the generators' network
    (batch normalisation on the hidden layers when ``norm``, as in DCGAN's generator)."""

    def __init__(self, n_in: int, num_classes: int, width: int, n_out: int, norm: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        norm_layer = nn.BatchNorm1d if norm else nn.Identity
        self.net = nn.Sequential(nn.Linear(n_in + num_classes, width), norm_layer(width), nn.ReLU(),
                                 nn.Linear(width, 2 * width), norm_layer(2 * width), nn.ReLU(),
                                 nn.Linear(2 * width, n_out))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.net(torch.cat([x, F.one_hot(labels, self.num_classes).to(x.dtype)], 1))


class ProjectionCritic(nn.Module):
    """D(x, y) = v . h(x) + e_y . h(x): a leaky-ReLU MLP h with the label entering by projection
    (Miyato & Koyama 2018), which conditions more strongly than concatenating it."""

    def __init__(self, n_in: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, 2 * width), nn.LeakyReLU(0.2),
                                  nn.Linear(2 * width, width), nn.LeakyReLU(0.2))
        self.out = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.body(x)
        return self.out(h) + (self.embed(labels) * h).sum(1, keepdim=True)


def generator(cfg: CGANConfig, num_classes: int, n_pixels: int) -> ConditionalMLP:
    """G(z, y): pixels in [-1, 1] after a tanh (applied in :func:`generate`)."""
    return ConditionalMLP(cfg.latent, num_classes, cfg.width, n_pixels)


def discriminator(cfg: CGANConfig, num_classes: int, n_pixels: int) -> ProjectionCritic:
    """D(x, y): one logit, "x is a real image of class y"."""
    return ProjectionCritic(n_pixels, num_classes, cfg.width)


def generate(net: nn.Module, labels: Tensor, latent: int, gen: torch.Generator) -> Tensor:
    """Flat pixels in [0, 1] for ``labels``, from noise drawn with ``gen`` (on the CPU, then moved)."""
    z = torch.randn(len(labels), latent, generator=gen).to(labels.device)
    return (torch.tanh(net(z, labels)) + 1) / 2


def _flat_pixels(data: ImageData) -> Tensor:
    return to_pixels(data.images, data.mean, data.std, clamp=True).flatten(1)


def train_cgan(members: ImageData, cfg: CGANConfig = CGANConfig(), *, seed: int = 0,
               device: Any = "auto", quiet: bool | None = None) -> dict[str, Tensor]:
    """Train the cGAN on ``members`` (non-saturating GAN loss); the generator's weights, cached.

    Every random draw (initialisation, minibatches, noise) comes from ``seed``.
    """
    if len(members) < cfg.batch:
        raise ValueError(f"{len(members)} members but batch = {cfg.batch}: lower CGANConfig.batch.")
    parts = {"members": members.digest(), "cfg": asdict(cfg), "seed": seed}

    def compute() -> dict[str, Tensor]:
        dev = resolve_device(device)
        x_all = (_flat_pixels(members) * 2 - 1).to(dev)
        y_all = members.labels.to(dev)
        n_pixels, k = x_all.shape[1], members.num_classes
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g_net = generator(cfg, k, n_pixels).to(dev)
            d_net = discriminator(cfg, k, n_pixels).to(dev)
        opt_g = torch.optim.Adam(g_net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(d_net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        for _ in progress(range(cfg.steps), desc="cGAN", quiet=quiet):
            rows = torch.randint(len(x_all), (cfg.batch,), generator=gen).to(dev)
            real, labels = x_all[rows], y_all[rows]
            fake = generate(g_net, labels, cfg.latent, gen) * 2 - 1
            # D: real -> 1, fake -> 0 (the generator's graph is cut here)
            d_real, d_fake = d_net(real, labels), d_net(fake.detach(), labels)
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # G: the non-saturating loss -log D(G(z, y), y)
            d_fake = d_net(fake, labels)
            loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        return {k_: v.detach().cpu() for k_, v in g_net.state_dict().items()}

    return cached("cgan", parts, compute, code=("ddrepro.privacy.generators.cgan",))


def sample_set(state: dict[str, Tensor], like: ImageData, ipc: int, *, latent: int, width: int,
               seed: int, method: str = "cgan", meta: dict[str, Any] | None = None) -> SyntheticSet:
    """``ipc`` samples per class of a trained conditional generator, as a :class:`SyntheticSet` in
    ``like``'s normalised space (so :func:`ddrepro.evaluate.evaluate` trains on it as on DM's sets)."""
    if ipc < 1:
        raise ValueError(f"ipc = {ipc!r}: sample at least one image per class.")
    c, h, w = like.shape
    k = like.num_classes
    net = ConditionalMLP(latent, k, width, c * h * w)
    net.load_state_dict(state)
    labels = torch.arange(k).repeat_interleave(ipc)
    with torch.no_grad():
        pixels = generate(net.eval(), labels, latent, torch.Generator().manual_seed(seed))
    images = from_pixels(pixels.view(-1, c, h, w), like.mean, like.std)
    info = {"method": method, "dataset": like.name, "ipc": ipc, "seed": seed, **(meta or {})}
    return SyntheticSet(images, labels, tuple(like.mean), tuple(like.std), info)


def cgan_set(members: ImageData, ipc: int, cfg: CGANConfig = CGANConfig(), *, seed: int = 0,
             sample_seed: int | None = None, device: Any = "auto",
             quiet: bool | None = None) -> SyntheticSet:
    """Train (or load) the cGAN on ``members`` and draw ``ipc`` images per class."""
    state = train_cgan(members, cfg, seed=seed, device=device, quiet=quiet)
    return sample_set(state, members, ipc, latent=cfg.latent, width=cfg.width,
                      seed=seed if sample_seed is None else sample_seed, method="cgan",
                      meta={"config": asdict(cfg)})


__all__ = ["CGANConfig", "ConditionalMLP", "ProjectionCritic", "cgan_set", "discriminator", "generate", "generator",
           "sample_set", "train_cgan"]
