"""Train fresh networks on a (synthetic) set and test them: the project's one training loop.

The recipe is the evaluation protocol of DC (Zhao et al., ICLR 2021), DSA and
DM (``ddrepro.config.EvalConfig``): SGD with learning rate 0.01, momentum
0.9, weight decay 5e-4, minibatches of 256, the learning rate times 0.1 from
epoch ``epochs // 2`` on with the momentum reset to zero there (the reference
builds a new optimiser at the decay), 1000 epochs, DSA applied to every
training batch; the reported number is the mean and standard deviation of the
test accuracy over ``n_models`` freshly initialised networks.

Augmentation follows the reference's ``DiffAugment`` in mode ``'S'`` (one
call per minibatch, fresh randomness): each model draws *one* op for its
whole minibatch (color, crop, cutout, flip, scale or rotate) and a magnitude
per sample. In the batched path the K models' draws are concatenated, so
different models may run different ops in the same step.

:func:`train_models` trains the K networks *together*: their parameters are
stacked (``torch.func.stack_module_state``), the K forward passes run in one
autograd graph (``torch.func.functional_call``, under ``torch.func.vmap`` with
the ``"vmap"`` engine) and one SGD update acts on the stacked tensors. The
randomness of model ``k`` (its initial weights, its shuffling, its
augmentation) comes from seeds derived from ``(seed, k)`` alone, so model k
trains exactly as it would alone: :func:`evaluate_loop`, an ordinary
``nn.Module`` + ``torch.optim.SGD`` loop over models, is the reference the
tests compare against.

Engines (measured in ``benchmarks/bench_eval_batched.py``): ``"vmap"`` turns
every layer into one grouped operation over the K models, which is what a GPU
wants (many small kernels become one). On a CPU the work is compute-bound and
the K-times larger activations fall out of cache, so grouped kernels lose to K
ordinary ones (2-core CPU, ConvNet-3 width 128, 100 images, 10 models: vmap
0.3-0.7x the per-model loop); there ``"unrolled"`` is the default: forward and
backward model by model (bit-identical to the plain loop), with one stacked
SGD update and one batched DSA call per step (0.85-1.3x the loop, within the
machine's noise at width 128; the gain grows as nets and sets shrink). No
engine can do much better on a CPU: the loop already spends 55 % of its time
(width 128) in the convolution kernels, which caps any engine doing the same
float32 arithmetic at 1.8x (the benchmark prints this bound). Networks with
BatchNorm (running statistics updated in place) use ``"unrolled"``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .artifacts import cached, tensor_digest
from .augment import DSA, AugParams
from .config import AugConfig, EvalConfig, NetConfig, to_dict
from .nets import build_net, has_batchnorm
from .runtime import is_quiet, progress, resolve_device
from .synthetic import SyntheticSet

ENGINES = ("auto", "vmap", "unrolled")


# -- seeds and schedule ------------------------------------------------------

def derive_seed(seed: int, k: int, purpose: str) -> int:
    """A 63-bit seed for model ``k`` of a run with ``seed``, one per ``purpose`` ("init", "data").

    It depends on (seed, k, purpose) only, never on how many models train together.
    """
    digest = hashlib.sha256(f"ddrepro.evaluate:{seed}:{k}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def decay_epoch(eval_cfg: EvalConfig) -> int:
    """The first epoch at ``0.1 * lr``: ``epochs // 2`` (at least 1; 1 = never for one epoch)."""
    return max(eval_cfg.epochs // 2, 1)


def lr_at(epoch: int, eval_cfg: EvalConfig) -> float:
    """The step size of ``epoch``: ``lr`` before ``epochs // 2``, ``0.1 * lr`` from there on.

    A one-epoch run keeps ``lr`` (there is no second half to decay in). The
    reference (DatasetCondensation ``evaluate_synset``) is off by one: it runs
    ``Epoch + 1`` = 1001 epochs and decays after epoch ``Epoch // 2 + 1``
    (502 epochs at 0.01, 499 at 0.001); we keep the papers' stated 1000
    epochs, halved.
    """
    return eval_cfg.lr * (0.1 if epoch >= decay_epoch(eval_cfg) else 1.0)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Minibatches in one pass over ``n`` samples (the last one may be smaller)."""
    return -(-n // batch_size)


def _data_generator(seed: int, k: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, k, "data"))


# -- loss and update ---------------------------------------------------------

def per_sample_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy per sample: hard int64 targets, or soft ``-(p * log_softmax).sum(1)``."""
    if targets.dtype == torch.int64:
        return F.cross_entropy(logits, targets, reduction="none")
    return -(targets * logits.log_softmax(1)).sum(1)


def batch_loss(logits: Tensor, targets: Tensor, weights: Tensor | None) -> Tensor:
    """Mean loss of a batch; ``weights`` (already scaled to mean 1 over the set) weight each sample."""
    losses = per_sample_loss(logits, targets)
    return losses.mean() if weights is None else (losses * weights).mean()


@torch.no_grad()
def sgd_step(params: list[Tensor], grads: list[Tensor], momenta: list[Tensor], *, lr: float,
             momentum: float, weight_decay: float) -> None:
    """In-place SGD with momentum, the arithmetic of ``torch.optim.SGD`` (dampening 0, no Nesterov).

    ``d = g + wd * p``; ``buf = momentum * buf + d``; ``p -= lr * buf``. Buffers
    start at zero, which gives ``buf = d`` on the first step as torch does.
    """
    for p, g, buf in zip(params, grads, momenta):
        d_p = g.add(p, alpha=weight_decay) if weight_decay != 0 else g
        buf.mul_(momentum).add_(d_p)
        p.add_(buf, alpha=-lr)


# -- validation --------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_training_inputs(images: Any, labels: Any, num_classes: Any, n_models: Any, seed: Any,
                           aug: Any, sample_weights: Any, record_every: Any) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a float (n, C, H, W) tensor, got {shape}.")
    n = images.shape[0]
    if n < 1:
        raise ValueError("images is empty; pass at least one training image.")
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be square, got {images.shape[2]}x{images.shape[3]}; crop or pad them.")
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}.")
    if not isinstance(labels, Tensor) or labels.shape[0:1] != (n,):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{n} images but labels of shape {shape}; pass one label (row) per image.")
    if labels.dim() == 1:
        if labels.dtype != torch.int64:
            raise ValueError(f"hard labels must be int64, got {labels.dtype}; use labels.long().")
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                             f"[{int(labels.min())}, {int(labels.max())}]; check num_classes.")
    elif labels.dim() != 2 or not labels.is_floating_point() or labels.shape[1] != num_classes:
        raise ValueError(f"soft labels must be float (n, {num_classes}), got {labels.dtype} "
                         f"{tuple(labels.shape)}.")
    if not _is_int(n_models) or n_models < 1:
        raise ValueError(f"n_models must be an int >= 1, got {n_models!r}.")
    if not _is_int(seed):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    if aug is not None and not isinstance(aug, DSA):
        raise ValueError(f"aug must be a ddrepro.augment.DSA or None, got {type(aug).__name__}.")
    if record_every is not None and (not _is_int(record_every) or record_every < 1):
        raise ValueError(f"record_every must be an int >= 1 or None, got {record_every!r}.")
    if sample_weights is not None:
        if not isinstance(sample_weights, Tensor) or sample_weights.shape != (n,):
            shape = tuple(sample_weights.shape) if isinstance(sample_weights, Tensor) else type(sample_weights).__name__
            raise ValueError(f"sample_weights must be a ({n},) tensor, got {shape}.")
        w = sample_weights.double()
        if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sample_weights must be finite, >= 0 and not all zero.")


def _normalised_weights(sample_weights: Tensor | None, device: torch.device) -> Tensor | None:
    """Scale to mean 1 over the set, so a batch's mean of weighted losses estimates the weighted risk."""
    if sample_weights is None:
        return None
    w = sample_weights.to(device=device, dtype=torch.float32)
    return w / w.mean()


def resolve_engine(engine: str, device: torch.device, net: nn.Module) -> str:
    """``"auto"``: vmap on CUDA, unrolled on the CPU and for BatchNorm networks (see module doc)."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; choose one of {', '.join(ENGINES)}.")
    has_bn = has_batchnorm(net)
    if engine == "vmap" and has_bn:
        raise ValueError("BatchNorm updates running statistics in place and cannot train under vmap; "
                         "use engine='unrolled' or norm='instancenorm'.")
    if engine == "auto":
        return "vmap" if device.type == "cuda" and not has_bn else "unrolled"
    return engine


# -- the stacked models ------------------------------------------------------

def _stacked_forward(base: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor],
                     x: Tensor, engine: str) -> Tensor:
    """Logits ``(K, b, classes)`` of the K models; ``x`` is ``(K, b, ...)`` or ``(b, ...)`` shared."""
    shared = x.dim() == 4
    if engine == "vmap":
        def one(p: dict[str, Tensor], b: dict[str, Tensor], xk: Tensor) -> Tensor:
            return functional_call(base, (p, b), (xk,))
        return vmap(one, in_dims=(0, 0, None if shared else 0))(params, buffers, x)
    n_models = next(iter(params.values())).shape[0]
    outs = []
    for k in range(n_models):
        state = {name: t[k] for name, t in params.items()} | {name: t[k] for name, t in buffers.items()}
        outs.append(functional_call(base, state, (x if shared else x[k],)))
    return torch.stack(outs)


def _stacked_grads(base: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor,
                   targets: Tensor, weights: Tensor | None, engine: str) -> list[Tensor]:
    """Gradients ``(K, ...)`` of every model's batch loss, in the order of ``params``.

    ``"vmap"``: one vmapped forward and one backward through it (autograd through
    vmap measured faster than ``vmap(torch.func.grad(...))`` here). ``"unrolled"``:
    forward and backward per model, so only one model's activations are alive
    at a time (cache-friendly on a CPU); BatchNorm buffers, views into the
    stacked buffers, are updated in place.
    """
    n_models = x.shape[0]
    if engine == "vmap":
        logits = _stacked_forward(base, params, buffers, x, engine)
        losses = [batch_loss(logits[k], targets[k], None if weights is None else weights[k])
                  for k in range(n_models)]
        return list(torch.autograd.grad(torch.stack(losses).sum(), list(params.values())))
    per_model = []
    for k in range(n_models):
        p_k = {name: t[k].detach().requires_grad_(True) for name, t in params.items()}
        b_k = {name: t[k] for name, t in buffers.items()}
        logits = functional_call(base, (p_k, b_k), (x[k],))
        loss = batch_loss(logits, targets[k], None if weights is None else weights[k])
        per_model.append(torch.autograd.grad(loss, list(p_k.values())))
    return [torch.stack(g) for g in zip(*per_model)]


@dataclass
class TrainedModels:
    """K trained networks as stacked parameters (every tensor has a leading model axis).

    ``trajectory`` (when recorded) lists checkpoints: the stacked parameters
    by name plus ``"step"`` (updates done) and ``"lr"`` (the step size of the
    update that follows; for the last checkpoint, that of the last update).
    The momentum restarts from zero at the learning-rate decay (``decay_epoch``).
    """

    net_cfg: NetConfig
    in_channels: int
    num_classes: int
    image_size: int
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    trajectory: list[dict[str, Tensor]] | None = None
    engine: str = "auto"
    _base: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def n_models(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def _template(self) -> nn.Module:
        if self._base is None:
            self._base = build_net(self.net_cfg, self.in_channels, self.num_classes, self.image_size,
                                   seed=0).to(self.device)
        return self._base

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 1024) -> Tensor:
        """Logits ``(K, N, num_classes)`` of every model on ``images``, in eval mode."""
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise ValueError("predict needs an (N, C, H, W) tensor.")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        base = self._template().eval()
        engine = resolve_engine(self.engine, self.device, base)
        params = {k: v.detach() for k, v in self.params.items()}
        chunks = [_stacked_forward(base, params, self.buffers, chunk.to(self.device), engine)
                  for chunk in images.split(batch_size)]
        return torch.cat(chunks, dim=1)

    def module(self, k: int) -> nn.Module:
        """Model ``k`` as an ordinary module (a copy, in eval mode)."""
        if not _is_int(k) or not 0 <= k < self.n_models:
            raise ValueError(f"model index {k!r} out of range; there are {self.n_models} models.")
        net = build_net(self.net_cfg, self.in_channels, self.num_classes, self.image_size, seed=0)
        state = {name: t[k].detach() for name, t in self.params.items()}
        state |= {name: t[k] for name, t in self.buffers.items()}
        net.load_state_dict(state)
        return net.to(self.device).eval()


def _init_stacked(net_cfg: NetConfig, in_channels: int, num_classes: int, image_size: int,
                  seed: int, model_ids: range, device: torch.device
                  ) -> tuple[nn.Module, dict[str, Tensor], dict[str, Tensor]]:
    nets = [build_net(net_cfg, in_channels, num_classes, image_size,
                      seed=derive_seed(seed, k, "init")).to(device) for k in model_ids]
    params, buffers = stack_module_state(nets)
    return nets[0], params, buffers


def _sample_aug(aug: DSA, batch: int, generators: list[torch.Generator]) -> AugParams:
    """DSA rows for every model's batch, each from that model's own stream.

    One op per model and batch, magnitudes per sample: the reference's
    DiffAugment mode 'S'. ``AugParams.cat`` keeps each block's op and
    ``DSA.apply`` runs every op on its own rows.
    """
    return AugParams.cat([aug.sample_params(batch, g) for g in generators])


def _checkpoint(params: dict[str, Tensor], step: int, lr: float) -> dict[str, Tensor]:
    snap = {name: p.detach().clone() for name, p in params.items()}
    snap["step"] = torch.tensor(step)
    snap["lr"] = torch.tensor(lr)
    return snap


def train_models(images: Tensor, labels: Tensor, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                 num_classes: int, n_models: int | None = None, seed: int = 0,
                 aug: DSA | None = None, sample_weights: Tensor | None = None,
                 record_every: int | None = None, first_model: int = 0, engine: str = "auto",
                 device: str | torch.device = "auto", quiet: bool | None = None) -> TrainedModels:
    """Train ``n_models`` fresh networks on ``(images, labels)`` together (module docstring).

    ``labels``: int64 ``(n,)`` (cross-entropy) or float ``(n, num_classes)``
    soft labels. ``aug`` is applied to every batch, one op per model and batch
    with per-sample magnitudes (None: no augmentation, whatever
    ``eval_cfg.dsa`` says). ``sample_weights`` ``(n,)`` weight each sample's
    loss (scaled to mean 1 over the set). Models are
    numbered ``first_model, first_model + 1, ...``: model k's run depends on
    ``(seed, k)`` only, so shards of a large ensemble can train apart.
    ``record_every`` stores a checkpoint at step 0 and every that many updates.
    """
    n_models = eval_cfg.n_models if n_models is None else n_models
    _check_training_inputs(images, labels, num_classes, n_models, seed, aug, sample_weights,
                           record_every)
    if not _is_int(first_model) or first_model < 0:
        raise ValueError(f"first_model must be an int >= 0, got {first_model!r}.")
    dev = resolve_device(device)
    n, in_channels, image_size = images.shape[0], images.shape[1], images.shape[2]
    model_ids = range(first_model, first_model + n_models)
    base, params, buffers = _init_stacked(net_cfg, in_channels, num_classes, image_size, seed,
                                          model_ids, dev)
    engine = resolve_engine(engine, dev, base)
    base.train()
    images, labels = images.to(dev), labels.to(dev)
    weights = _normalised_weights(sample_weights, dev)
    generators = [_data_generator(seed, k) for k in model_ids]
    names = list(params)
    leaves = [params[name] for name in names]
    momenta = [torch.zeros_like(p) for p in leaves]
    per_epoch = steps_per_epoch(n, eval_cfg.batch_size)
    trajectory = [_checkpoint(params, 0, lr_at(0, eval_cfg))] if record_every else None
    step = 0
    for epoch in progress(range(eval_cfg.epochs), desc=f"train {n_models} models",
                          quiet=is_quiet(quiet)):
        lr = lr_at(epoch, eval_cfg)
        if epoch == decay_epoch(eval_cfg):
            # The reference re-creates its SGD optimiser here, which restarts the momentum.
            for buf in momenta:
                buf.zero_()
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(dev)
        for start in range(0, n, eval_cfg.batch_size):
            idx = orders[:, start:start + eval_cfg.batch_size]           # (K, b)
            x = images[idx]                                               # (K, b, C, H, W)
            if aug is not None:
                rows = _sample_aug(aug, idx.shape[1], generators)
                x = aug.apply(x.flatten(0, 1), rows).reshape(x.shape)
            w = None if weights is None else weights[idx]
            grads = _stacked_grads(base, params, buffers, x, labels[idx], w, engine)
            sgd_step(leaves, grads, momenta, lr=lr, momentum=eval_cfg.momentum,
                     weight_decay=eval_cfg.weight_decay)
            step += 1
            if record_every and step % record_every == 0:
                next_epoch = min(step // per_epoch, eval_cfg.epochs - 1)
                trajectory.append(_checkpoint(params, step, lr_at(next_epoch, eval_cfg)))
    final = {name: p.detach() for name, p in params.items()}
    return TrainedModels(net_cfg, in_channels, num_classes, image_size, final, buffers,
                         trajectory, engine)


# -- the plain reference loop ------------------------------------------------

def _reference_sgd(net: nn.Module, lr: float, eval_cfg: EvalConfig) -> torch.optim.SGD:
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=eval_cfg.momentum,
                           weight_decay=eval_cfg.weight_decay)


def train_model_loop(images: Tensor, labels: Tensor, k: int, *, net_cfg: NetConfig,
                     eval_cfg: EvalConfig, num_classes: int, seed: int = 0, aug: DSA | None = None,
                     sample_weights: Tensor | None = None, device: str | torch.device = "auto",
                     quiet: bool | None = None) -> nn.Module:
    """Model ``k`` of :func:`train_models`, trained alone with ``torch.optim.SGD`` (the reference)."""
    _check_training_inputs(images, labels, num_classes, 1, seed, aug, sample_weights, None)
    dev = resolve_device(device)
    n = images.shape[0]
    net = build_net(net_cfg, images.shape[1], num_classes, images.shape[2],
                    seed=derive_seed(seed, k, "init")).to(dev).train()
    images, labels = images.to(dev), labels.to(dev)
    weights = _normalised_weights(sample_weights, dev)
    generator = _data_generator(seed, k)
    opt = _reference_sgd(net, lr_at(0, eval_cfg), eval_cfg)
    for epoch in progress(range(eval_cfg.epochs), desc=f"model {k}", quiet=is_quiet(quiet)):
        if epoch == decay_epoch(eval_cfg):
            # As the reference: a new optimiser at the decayed rate, so no momentum carries over.
            opt = _reference_sgd(net, lr_at(epoch, eval_cfg), eval_cfg)
        order = torch.randperm(n, generator=generator).to(dev)
        for idx in order.split(eval_cfg.batch_size):
            x = images[idx]
            if aug is not None:
                x = aug.apply(x, aug.sample_params(idx.numel(), generator))
            loss = batch_loss(net(x), labels[idx], None if weights is None else weights[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


# -- evaluation ----------------------------------------------------------------

@torch.no_grad()
def accuracy(models: TrainedModels, test: Any, batch_size: int = 1024) -> Tensor:
    """Test accuracy ``(K,)`` of every model on ``test`` (an ImageData or an (images, labels) pair)."""
    images, labels = test
    logits = models.predict(images, batch_size=batch_size)
    return (logits.argmax(2) == labels.to(logits.device)).float().mean(1).cpu()


@dataclass
class EvalResult:
    """Accuracies of K models; ``std`` is the population std over models (as the papers' tables)."""

    accs: Tensor
    mean: float
    std: float
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_accs(cls, accs: Tensor, seconds: float, meta: dict[str, Any]) -> "EvalResult":
        accs = accs.detach().float().cpu()
        return cls(accs, float(accs.mean()), float(accs.std(unbiased=False)), seconds, meta)

    def to_dict(self) -> dict[str, Any]:
        return {"accs": self.accs, "seconds": self.seconds, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalResult":
        return cls.from_accs(d["accs"], d["seconds"], d["meta"])

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} +- {100 * self.std:.2f} % ({len(self.accs)} models)"


def _eval_num_classes(syn: SyntheticSet, test: Any) -> int:
    num_classes = test.num_classes
    if syn.soft and syn.labels.shape[1] != num_classes:
        raise ValueError(f"soft labels have {syn.labels.shape[1]} classes but the test set has "
                         f"{num_classes}; condense and test on the same classes.")
    if tuple(syn.images.shape[1:]) != tuple(test.images.shape[1:]):
        raise ValueError(f"synthetic images {tuple(syn.images.shape[1:])} and test images "
                         f"{tuple(test.images.shape[1:])} differ in shape.")
    return num_classes


def _make_aug(eval_cfg: EvalConfig, flip: bool) -> DSA | None:
    return DSA(AugConfig(), flip=flip) if eval_cfg.dsa else None


def _eval_parts(kind: str, images: Tensor, labels: Tensor, test: Any, net_cfg: NetConfig,
                eval_cfg: EvalConfig, seed: int, flip: bool) -> dict[str, Any]:
    return {"kind": kind, "images": tensor_digest(images), "labels": tensor_digest(labels),
            "test": test.digest(), "net": net_cfg, "eval": eval_cfg, "aug": AugConfig(),
            "flip": flip, "seed": seed}


def _meta(kind: str, net_cfg: NetConfig, eval_cfg: EvalConfig, seed: int, flip: bool,
          dev: torch.device, n_train: int) -> dict[str, Any]:
    return {"kind": kind, "net": to_dict(net_cfg), "eval": to_dict(eval_cfg), "seed": seed,
            "flip": flip, "device": str(dev), "n_train": n_train}


def evaluate(syn: SyntheticSet, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
             seed: int = 0, flip: bool, device: str | torch.device = "auto",
             quiet: bool | None = None, cache: bool = True, engine: str = "auto") -> EvalResult:
    """Train ``eval_cfg.n_models`` networks on ``syn`` at once and test them on ``test``.

    DSA (``AugConfig()``, mirror only when ``flip``) when ``eval_cfg.dsa``.
    Cached over the synthetic tensors, the test set, the configs and the seed.
    """
    num_classes = _eval_num_classes(syn, test)
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        models = train_models(syn.images, syn.labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                              num_classes=num_classes, seed=seed, aug=_make_aug(eval_cfg, flip),
                              engine=engine, device=dev, quiet=quiet)
        accs = accuracy(models, test, batch_size=eval_cfg.test_batch_size)
        meta = _meta("batched", net_cfg, eval_cfg, seed, flip, dev, len(syn)) | {"engine": models.engine}
        return EvalResult.from_accs(accs, time.perf_counter() - start, meta).to_dict()

    parts = _eval_parts("evaluate", syn.images, syn.labels, test, net_cfg, eval_cfg, seed, flip)
    return EvalResult.from_dict(cached("eval", parts, compute, enabled=cache))


def evaluate_loop(syn: SyntheticSet, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                  seed: int = 0, flip: bool, device: str | torch.device = "auto",
                  quiet: bool | None = None, cache: bool = True) -> EvalResult:
    """:func:`evaluate` one model at a time with ``nn.Module`` + ``torch.optim.SGD`` (same numbers)."""
    num_classes = _eval_num_classes(syn, test)
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        aug = _make_aug(eval_cfg, flip)
        test_images, test_labels = test.images.to(dev), test.labels.to(dev)
        accs = []
        for k in range(eval_cfg.n_models):
            net = train_model_loop(syn.images, syn.labels, k, net_cfg=net_cfg, eval_cfg=eval_cfg,
                                   num_classes=num_classes, seed=seed, aug=aug, device=dev,
                                   quiet=quiet)
            with torch.no_grad():
                preds = torch.cat([net(x).argmax(1) for x in test_images.split(eval_cfg.test_batch_size)])
            accs.append((preds == test_labels).float().mean())
        meta = _meta("loop", net_cfg, eval_cfg, seed, flip, dev, len(syn))
        return EvalResult.from_accs(torch.stack(accs), time.perf_counter() - start, meta).to_dict()

    parts = _eval_parts("evaluate_loop", syn.images, syn.labels, test, net_cfg, eval_cfg, seed, flip)
    return EvalResult.from_dict(cached("eval", parts, compute, enabled=cache))


def arch_label(cfg: NetConfig) -> str:
    """A short name: the network plus every field that differs from ``NetConfig()``."""
    default = NetConfig()
    extras = [f"{name}{getattr(cfg, name)}" if name != "norm" else cfg.norm
              for name in ("width", "depth", "norm") if getattr(cfg, name) != getattr(default, name)]
    return "-".join([cfg.name, *extras])


def evaluate_across(syn: SyntheticSet, test: Any, archs: list[NetConfig], *, eval_cfg: EvalConfig,
                    seed: int = 0, flip: bool, device: str | torch.device = "auto",
                    quiet: bool | None = None, cache: bool = True) -> dict[str, EvalResult]:
    """:func:`evaluate` for every architecture in ``archs`` (cross-architecture generalisation)."""
    labels = [arch_label(cfg) for cfg in archs]
    if not archs or len(set(labels)) != len(labels):
        raise ValueError(f"archs must be a non-empty list of distinct NetConfigs, got {labels}.")
    return {label: evaluate(syn, test, net_cfg=cfg, eval_cfg=eval_cfg, seed=seed, flip=flip,
                            device=device, quiet=quiet, cache=cache)
            for label, cfg in zip(labels, archs)}


def train_full(real: Any, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig, seed: int = 0,
               flip: bool | None = None, device: str | torch.device = "auto",
               quiet: bool | None = None, cache: bool = True, engine: str = "auto") -> EvalResult:
    """The whole-data ceiling: the same loop on the real training set (``epochs`` full passes).

    ``flip`` defaults to ``real.flip_ok``. Only one minibatch per model is
    gathered at a time, so the data is held once whatever ``n_models`` is.
    """
    flip = real.flip_ok if flip is None else flip
    dev = resolve_device(device)
    if real.num_classes != test.num_classes:
        raise ValueError(f"train set has {real.num_classes} classes, test set {test.num_classes}.")

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        models = train_models(real.images, real.labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                              num_classes=real.num_classes, seed=seed,
                              aug=_make_aug(eval_cfg, flip), engine=engine, device=dev, quiet=quiet)
        accs = accuracy(models, test, batch_size=eval_cfg.test_batch_size)
        meta = _meta("full", net_cfg, eval_cfg, seed, flip, dev, len(real)) | {"engine": models.engine}
        return EvalResult.from_accs(accs, time.perf_counter() - start, meta).to_dict()

    parts = _eval_parts("train_full", real.images, real.labels, test, net_cfg, eval_cfg, seed, flip)
    return EvalResult.from_dict(cached("eval", parts, compute, enabled=cache))


__all__ = [
    "ENGINES", "EvalResult", "TrainedModels", "accuracy", "arch_label", "batch_loss",
    "decay_epoch", "derive_seed", "evaluate", "evaluate_across", "evaluate_loop", "lr_at",
    "per_sample_loss", "resolve_engine", "sgd_step", "steps_per_epoch", "train_full",
    "train_model_loop", "train_models",
]
