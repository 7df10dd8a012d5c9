"""Distribution matching, DM (Zhao & Bilen, WACV 2023), and the loop it shares with MMD.

DM learns the synthetic set S by matching, class by class, the mean embedding
of real and synthetic images in randomly initialised networks (Eq. 6 of Dong
et al. 2022, "Privacy for Free", which restates DM's objective):

    min_S  E_{theta, omega} sum_c || mean_{x in T_c} psi_theta(A(x, omega_c))
                                    - mean_{s in S_c} psi_theta(A(s, omega_c)) ||^2

with psi_theta a fresh ConvNet every step and A the differentiable Siamese
augmentation (the same draw omega_c for class c's real and synthetic images).

Why it is fast: no Python loop over classes -- the synthetic images of all
classes go through the network in one batch of ``C * ipc``, the real ones as
one ``C * batch_real`` batch (on a CPU split into cache-sized chunks, which is
faster than one huge batch; not for batch-norm networks, whose statistics are
the whole batch's, as in the authors' BN branch), one DSA draw per class is
expanded to every image with ``AugParams.index``, and class means are a reshape plus a
``vmap``-ed estimator; the real side runs without an autograd graph; network
weights never require gradients (only the synthetic images are learned);
activations use the channels-last layout that oneDNN convolutions prefer;
long runs ``torch.compile`` the embedding (fused norm/ReLU/pool). Measured in
``benchmarks/bench_dm_step.py``.

The loss functions are pure (tensors in, scalar out) so that many independent
syntheses can later be batched with ``torch.func``.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Callable

import torch
from torch import nn

from ..augment import DSA, siamese_augment
from ..config import DMConfig, NetConfig
from ..nets import build_net, has_batchnorm
from ..nets.convnet import feature_size
from ..robust import EstimatorSpec, as_config, class_means
from .base import Context, register

# Above this many steps the one-off torch.compile (about a minute per input shape
# on a 2-core CPU) is repaid: it fuses norm/ReLU/pool around the convolutions
# (1.5x-1.7x per step over eager in benchmarks/bench_dm_step.py). Below it, eager
# is faster overall.
COMPILE_MIN_STEPS = 2000
# On a CPU the real batch goes through the network in chunks whose first-layer
# activations take about this many bytes: small enough to stay in a 32 MiB L3
# cache, large enough for efficient convolutions. Measured on a 2-core EPYC
# (ConvNet-3, DM step): width 128 at 32x32 -> 32 images/chunk, 1.3x-1.5x faster
# per step than 256; width 32 -> 128 images. GPUs take the whole batch.
CPU_CHUNK_BYTES = 16 * 2**20

Embed = Callable[[torch.Tensor], torch.Tensor]
# (real_feats (C, n, d), syn_feats (C, m, d), real_weights (C, n) | None) -> scalar
FeatureLoss = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _check_by_class(name: str, images: torch.Tensor) -> None:
    if images.ndim != 5:
        raise ValueError(
            f"{name} must be (num_classes, n, C, H, W), got shape {tuple(images.shape)}; "
            "reshape the flat batch with .view(num_classes, n, *image_shape)."
        )


def _check_weights(real_weights: torch.Tensor | None, shape: tuple[int, int]) -> None:
    if real_weights is not None and tuple(real_weights.shape) != shape:
        raise ValueError(
            f"real_weights has shape {tuple(real_weights.shape)} but the real batch is {shape} "
            "(num_classes, n); pass one weight per real image."
        )


def cpu_chunk_size(net_cfg: NetConfig, image_shape: tuple[int, ...]) -> int:
    """Images per real-side forward chunk on a CPU (``CPU_CHUNK_BYTES`` of first-layer activations).

    The first layer's output, ``width`` float32 maps of the padded input's side,
    is the largest activation of the ConvNets used here.
    """
    side = feature_size(image_shape[-1], 0, "none")
    return max(1, CPU_CHUNK_BYTES // (4 * net_cfg.width * side * side))


def embed_by_class(embed: Embed, images_by_class: torch.Tensor) -> torch.Tensor:
    """``(C, n, *image) -> (C, n, d)``: one forward pass for every class."""
    num_classes, n = images_by_class.shape[:2]
    feats = embed(images_by_class.flatten(0, 1))
    return feats.reshape(num_classes, n, -1)


def real_class_means(real_feats: torch.Tensor, real_weights: torch.Tensor | None = None,
                     mean_estimator: EstimatorSpec = "mean") -> torch.Tensor:
    """``(C, n, d) -> (C, d)``: the estimator (:func:`ddrepro.robust.class_means`) on each class at once."""
    return class_means(real_feats, mean_estimator, real_weights)


def dm_feature_loss(real_feats: torch.Tensor, syn_feats: torch.Tensor,
                    real_weights: torch.Tensor | None = None,
                    mean_estimator: EstimatorSpec = "mean") -> torch.Tensor:
    """DM's loss on embeddings: ``sum_c || mu_real_c - mean(syn_feats_c) ||^2`` (Eq. 6).

    ``real_feats`` ``(C, n, d)``, ``syn_feats`` ``(C, m, d)``; ``real_weights``
    ``(C, n)`` weights the real class means (the estimator is applied to the
    real side only, as in RDM-DC).
    """
    if real_feats.ndim != 3 or syn_feats.ndim != 3 or real_feats.shape[0] != syn_feats.shape[0] \
            or real_feats.shape[2] != syn_feats.shape[2]:
        raise ValueError(
            f"real_feats {tuple(real_feats.shape)} and syn_feats {tuple(syn_feats.shape)} must be "
            "(C, n, d) and (C, m, d) with the same C and d."
        )
    _check_weights(real_weights, tuple(real_feats.shape[:2]))
    real_means = real_class_means(real_feats, real_weights, mean_estimator)
    syn_means = syn_feats.mean(1)
    return (real_means - syn_means).pow(2).sum()


def embed_real(embed: Embed, real_images_by_class: torch.Tensor,
               chunk_size: int | None = None, dtype: str = "float32") -> torch.Tensor:
    """Real embeddings without an autograd graph, unless the real images themselves are learned.

    (Poisoning attacks differentiate through the real side, so a graph is kept
    exactly when ``real_images_by_class.requires_grad``.) ``chunk_size`` splits
    the forward pass: on a CPU, chunks that keep the activations in cache run
    faster than one huge batch. ``dtype`` "bfloat16" runs the forward pass
    under autocast (``DMConfig.real_dtype``); the embeddings come back in the images' dtype.
    """
    grad = torch.is_grad_enabled() and real_images_by_class.requires_grad
    low_precision = torch.autocast(real_images_by_class.device.type, dtype=torch.bfloat16) \
        if dtype == "bfloat16" else contextlib.nullcontext()
    with torch.set_grad_enabled(grad), low_precision:
        if chunk_size is None:
            feats = embed_by_class(embed, real_images_by_class)
        else:
            num_classes, n = real_images_by_class.shape[:2]
            chunks = real_images_by_class.flatten(0, 1).split(chunk_size)
            feats = torch.cat([embed(chunk) for chunk in chunks]).reshape(num_classes, n, -1)
    return feats.to(real_images_by_class.dtype)


def dm_loss(embed: Embed, real_images_by_class: torch.Tensor, syn_images_by_class: torch.Tensor,
            *, real_weights: torch.Tensor | None = None,
            mean_estimator: EstimatorSpec = "mean") -> torch.Tensor:
    """DM's Eq. 6 for one draw of the network (``embed``) and already-augmented images.

    ``real_images_by_class`` ``(C, n, ch, H, W)``, ``syn_images_by_class``
    ``(C, ipc, ch, H, W)``, ``real_weights`` ``(C, n)`` or None. A pure function
    of its inputs: differentiable w.r.t. the synthetic images (and the real
    ones when they require grad).
    """
    _check_by_class("real_images_by_class", real_images_by_class)
    _check_by_class("syn_images_by_class", syn_images_by_class)
    _check_weights(real_weights, tuple(real_images_by_class.shape[:2]))
    real_feats = embed_real(embed, real_images_by_class)
    syn_feats = embed_by_class(embed, syn_images_by_class)
    return dm_feature_loss(real_feats, syn_feats, real_weights, mean_estimator)


def fresh_embedder(ctx: Context, seed: int, channels_last: bool) -> nn.Module:
    """A newly initialised network whose weights never need gradients (only images are learned)."""
    channels, size = ctx.image_shape[0], ctx.image_shape[1]
    net = build_net(ctx.net_cfg, channels, ctx.num_classes, size, seed=seed).to(ctx.device)
    net.requires_grad_(False)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


@torch.no_grad()
def reinitialise_(net: nn.Module, ctx: Context, seed: int) -> nn.Module:
    """Give ``net`` the weights a fresh ``build_net(..., seed=seed)`` would have, in place.

    Same draw as :func:`fresh_embedder`, but the module (already on the device,
    in its layout) is reused.
    """
    channels, size = ctx.image_shape[0], ctx.image_shape[1]
    fresh = build_net(ctx.net_cfg, channels, ctx.num_classes, size, seed=seed)
    for dst, src in zip(net.state_dict().values(), fresh.state_dict().values()):
        dst.copy_(src)
    return net


def _embed_with_layout(net: nn.Module, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return net.embed(_layout(x, channels_last))


@functools.lru_cache(maxsize=None)
def _compiled_embedding() -> Callable[..., torch.Tensor]:
    """One compiled embedding per process: the network is an argument, so new nets (and new
    runs) reuse the compiled code instead of piling up recompilations."""
    return torch.compile(_embed_with_layout, dynamic=False)


def make_embed(net: nn.Module, channels_last: bool, use_compile: bool) -> Embed:
    """``x -> net.embed(x)`` in the chosen layout; compiled when asked, falling back to eager
    (with a warning) if compilation fails (no C++ toolchain, an unsupported op, ...)."""
    if not use_compile:
        return lambda x: _embed_with_layout(net, x, channels_last)
    state = {"compiled": True}

    def call(x: torch.Tensor) -> torch.Tensor:
        if state["compiled"]:
            try:
                return _compiled_embedding()(net, x, channels_last)
            except Exception as err:
                warnings.warn(f"torch.compile of the embedding failed ({type(err).__name__}: {err}); "
                              "running eagerly.", RuntimeWarning, stacklevel=2)
                state["compiled"] = False
        return _embed_with_layout(net, x, channels_last)

    return call


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def distribution_matching_run(
    ctx: Context,
    syn_images: torch.Tensor,
    syn_labels: torch.Tensor,
    feature_loss: FeatureLoss,
    *,
    steps: int,
    batch_real: int,
    lr_img: float,
    momentum: float,
    dsa: bool,
    real_weights: torch.Tensor | None = None,
    real_dtype: str = "float32",
    channels_last: bool = True,
    compile_embed: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loop DM and MMD share (DM paper, Algorithm 1): fresh net, Siamese DSA, match, SGD on S.

    ``feature_loss`` maps class-blocked real/synthetic embeddings (and real
    weights) to a scalar. ``real_weights`` ``(N,)`` aligned with
    ``ctx.real_images`` (None: unweighted). ``syn_images`` must be class-major
    (``ipc`` images of class 0, then class 1, ...), as ``condense`` builds it.
    ``real_dtype`` is the real side's precision (:func:`embed_real`).
    ``compile_embed`` None compiles the embedding when ``steps >= COMPILE_MIN_STEPS``.
    Every step re-draws the network weights (seeded from ``ctx.generator``)
    into one module; a compiled embedding is built once per process.
    A batch-norm network runs in train mode on one real and one synthetic
    batch of all classes each, as the authors' BN branch (never chunked).
    """
    num_classes, ipc = ctx.num_classes, ctx.ipc
    expected = torch.arange(num_classes, device=syn_labels.device).repeat_interleave(ipc)
    if syn_labels.shape != expected.shape or not torch.equal(syn_labels, expected):
        raise ValueError("syn_labels must be class-major (ipc images of class 0, then class 1, ...); "
                         "build the initial set with condense()/initial_synthetic().")
    if real_weights is not None and real_weights.shape != (ctx.real_images.shape[0],):
        raise ValueError(f"real_weights has shape {tuple(real_weights.shape)}; it must be "
                         f"({ctx.real_images.shape[0]},), one weight per real image.")
    aug = DSA(ctx.aug_cfg, flip=ctx.flip) if dsa else None
    use_compile = steps >= COMPILE_MIN_STEPS if compile_embed is None else compile_embed
    net = fresh_embedder(ctx, 0, channels_last).train()  # weights replaced at every step below
    # Batch norm: the authors' BN branch (main_DM.py, for ConvNetBN & co.) embeds all
    # classes' real images as one batch and all synthetic images as another, in train
    # mode, so each side is normalised with its own batch's statistics. The real side is
    # then never chunked: chunks would normalise with each chunk's statistics instead.
    chunk = (cpu_chunk_size(ctx.net_cfg, ctx.image_shape)
             if ctx.device.type == "cpu" and not has_batchnorm(net) else None)
    embed = make_embed(net, channels_last, use_compile)
    syn = syn_images.detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([syn], lr=lr_img, momentum=momentum)
    for step in ctx.steps(steps, state=[syn], optimizer=optimizer):
        reinitialise_(net, ctx, int(torch.randint(0, 2**62, (1,), generator=ctx.generator)))
        index = ctx.sample_indices(batch_real)
        real = ctx.real_images[index]
        weights = None if real_weights is None else real_weights[index]
        syn_by_class = syn.view(num_classes, ipc, *syn.shape[1:])
        if aug is not None:
            real, syn_by_class = siamese_augment(aug, ctx.generator, real, syn_by_class)
        real_feats = embed_real(embed, real, chunk, real_dtype)
        syn_feats = embed_by_class(embed, syn_by_class)
        loss = feature_loss(real_feats, syn_feats, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ctx.log(loss)
        ctx.check_finite(syn, step)
    return syn.detach(), syn_labels


@register("dm", DMConfig, default_init="real")  # main_DM.py: --init real
def run(ctx: Context, syn_images: torch.Tensor, syn_labels: torch.Tensor):
    """DM with ``DMConfig`` (paper: 20,000 steps, batch_real 256, SGD lr 1.0 momentum 0.5, DSA;
    ``real_dtype`` "bfloat16" is ours, opt-in)."""
    cfg: DMConfig = ctx.config
    if ctx.real_weights is not None and as_config(cfg.mean_estimator).robust:
        raise ValueError(f"{ctx.method}: the {as_config(cfg.mean_estimator).name} mean cannot use "
                         "per-sample weights; condense an unweighted set (real.with_weights(None)) "
                         "or use mean_estimator='mean'.")
    # k = ceil(3 eps_p N) must leave rows: fail before the first step, not at it.
    as_config(cfg.mean_estimator).drop_count(min([cfg.batch_real] + [int(i.numel()) for i in ctx.class_indices]))

    def loss(real_feats, syn_feats, real_weights):
        return dm_feature_loss(real_feats, syn_feats, real_weights, cfg.mean_estimator)

    return distribution_matching_run(
        ctx, syn_images, syn_labels, loss, steps=cfg.steps, batch_real=cfg.batch_real,
        lr_img=cfg.lr_img, momentum=cfg.momentum, dsa=cfg.dsa, real_weights=ctx.real_weights,
        real_dtype=cfg.real_dtype, compile_embed=cfg.compile,
    )


__all__ = [
    "COMPILE_MIN_STEPS", "CPU_CHUNK_BYTES", "cpu_chunk_size", "dm_loss", "dm_feature_loss", "real_class_means", "embed_by_class", "embed_real",
    "fresh_embedder", "reinitialise_", "make_embed", "distribution_matching_run", "run",
]
