"""The project's one training loop: K networks, each on its own data, trained by SGD together.

The recipe is the evaluation protocol of DC (Zhao et al., ICLR 2021), DSA and
DM (``ddrepro.config.EvalConfig``): SGD with learning rate 0.01, momentum
0.9, weight decay 5e-4, minibatches of 256, the learning rate times 0.1 from
epoch ``epochs // 2`` on with the momentum reset to zero there (the reference
builds a new optimiser at the decay; ``EvalConfig.decay_epochs`` moves or adds
decays), 1000 epochs, DSA applied to every
training batch. Other callers pass their own :class:`Recipe` (DC's inner
network updates: plain SGD at a constant rate).

Augmentation follows the reference's ``DiffAugment`` in mode ``'S'`` (one
call per minibatch, fresh randomness): each model draws *one* op for its
whole minibatch and a magnitude per sample. DC's evaluation augmentation
(:class:`ddrepro.augment_dc.DCAugment`, the authors' ``augment``) draws an op
per image instead, and fills from each model's own minibatch.

Per-model data. Model ``k`` trains on the rows ``members[k]`` of a shared pool
(shadow models on random halves, leave-group-out retraining, sets of unequal
size), optionally with per-sample weights. A model's epoch is one pass over
its own rows, so models on smaller sets take fewer steps per epoch; a model
whose epoch is over waits (no update) until the others finish theirs.

Randomness. Model ``k``'s initial weights, shuffling and augmentation come
from seeds derived from its key ``(seed, k)`` alone, so it trains exactly as
it would alone: :func:`train_model_loop`, an ordinary ``nn.Module`` +
``torch.optim.SGD`` loop (:mod:`ddrepro.reference`), is what the tests compare against.
``coupled=True`` gives every model the *same* key, hence the same
initialisation, and one shared shuffle of the pool from which each model
keeps its own rows: two retrainings then differ only through the data
change, not through seed noise (leave-one-out studies).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .augment import DSA
from .augment_dc import DCAugment
from .config import EvalConfig, NetConfig
from .models import TrainedModels, init_stacked, resolve_engine, stacked_forward
from .runtime import is_quiet, progress, resolve_device


# What may augment the training batches: DSA's ops or DC's (EvalConfig.augment).
Augmentation = DSA | DCAugment

# -- seeds and schedule ------------------------------------------------------

def derive_seed(seed: int, k: int, purpose: str) -> int:
    """A 63-bit seed for model ``k`` of a run with ``seed``, one per ``purpose`` ("init", "data").

    It depends on (seed, k, purpose) only, never on how many models train together.
    """
    digest = hashlib.sha256(f"ddrepro.evaluate:{seed}:{k}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def decay_epochs(eval_cfg: EvalConfig) -> tuple[int, ...]:
    """The epochs at which the rate drops x0.1: ``eval_cfg.decay_epochs``, or by default
    ``(epochs // 2,)`` (none for a one-epoch run, which keeps ``lr``)."""
    if eval_cfg.decay_epochs is not None:
        return eval_cfg.decay_epochs
    return (eval_cfg.epochs // 2,) if eval_cfg.epochs > 1 else ()


def lr_at(epoch: int, eval_cfg: EvalConfig) -> float:
    """The step size of ``epoch``: ``lr`` times 0.1 per decay epoch reached (:func:`decay_epochs`).

    The reference (DatasetCondensation ``evaluate_synset``) is off by one: it
    runs ``Epoch + 1`` = 1001 epochs and decays after epoch ``Epoch // 2 + 1``;
    we keep the papers' 1000 epochs, halved.
    """
    return Recipe.from_eval(eval_cfg).lr_at(epoch)


@dataclass(frozen=True)
class Recipe:
    """How SGD runs: ``epochs`` passes in minibatches of ``batch_size``; at each epoch of
    ``decay_at`` the rate drops x0.1 and the momentum restarts from zero (empty: constant)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    decay_at: tuple[int, ...] = ()

    @classmethod
    def from_eval(cls, cfg: EvalConfig) -> "Recipe":
        """The papers' evaluation protocol (module docstring)."""
        return cls(cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay,
                   decay_epochs(cfg))

    def lr_at(self, epoch: int) -> float:
        return self.lr * 0.1 ** sum(epoch >= d for d in self.decay_at)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Minibatches in one pass over ``n`` samples (the last one may be smaller)."""
    return -(-n // batch_size)


def data_generator(seed: int, k: int) -> torch.Generator:
    """Model ``k``'s stream for shuffling and augmentation."""
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
             momentum: float, weight_decay: float, rows: Tensor | None = None) -> None:
    """In-place SGD with momentum, the arithmetic of ``torch.optim.SGD`` (dampening 0, no Nesterov).

    ``d = g + wd * p``; ``buf = momentum * buf + d``; ``p -= lr * buf``. Buffers
    start at zero, which gives ``buf = d`` on the first step as torch does.
    ``rows``: only these models (leading index) are updated; ``grads`` then hold their rows only.
    """
    for p, g, buf in zip(params, grads, momenta):
        p_rows, buf_rows = (p, buf) if rows is None else (p[rows], buf[rows])
        d_p = g.add(p_rows, alpha=weight_decay) if weight_decay != 0 else g
        buf_rows.mul_(momentum).add_(d_p)
        p_rows.add_(buf_rows, alpha=-lr)
        if rows is not None:
            p[rows], buf[rows] = p_rows, buf_rows


# -- validation --------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(x: Any) -> Any:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__


def check_training_inputs(images: Any, labels: Any, num_classes: Any) -> None:
    """Images, labels (hard or soft) and class count agree; clear errors before any compute."""
    if not isinstance(images, Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float (n, C, H, W) tensor, got {_shape(images)}.")
    n = images.shape[0]
    if n < 1:
        raise ValueError("images is empty; pass at least one training image.")
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be square, got {images.shape[2]}x{images.shape[3]}; crop or pad them.")
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}.")
    if not isinstance(labels, Tensor) or labels.shape[0:1] != (n,):
        raise ValueError(f"{n} images but labels of shape {_shape(labels)}; pass one label (row) per image.")
    if labels.dim() == 1:
        if labels.dtype != torch.int64:
            raise ValueError(f"hard labels must be int64, got {labels.dtype}; use labels.long().")
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                             f"[{int(labels.min())}, {int(labels.max())}]; check num_classes.")
    elif labels.dim() != 2 or not labels.is_floating_point() or labels.shape[1] != num_classes:
        raise ValueError(f"soft labels must be float (n, {num_classes}), got {labels.dtype} "
                         f"{tuple(labels.shape)}.")


def _member_rows(members: Tensor | None, n_models: int, n: int) -> list[Tensor]:
    """Each model's row indices into the pool (every row when ``members`` is None)."""
    if members is None:
        return [torch.arange(n)] * n_models
    if not isinstance(members, Tensor) or members.dtype != torch.bool or members.shape != (n_models, n):
        raise ValueError(f"members must be a bool ({n_models}, {n}) mask (one row per model over "
                         f"the pool), got {members.dtype if isinstance(members, Tensor) else ''} "
                         f"{_shape(members)}.")
    rows = [torch.nonzero(m).flatten() for m in members.cpu()]
    if any(r.numel() == 0 for r in rows):
        raise ValueError("every model needs at least one training row; a members row is empty.")
    return rows


def model_weights(sample_weights: Tensor | None, rows: list[Tensor], n: int,
                  device: torch.device) -> Tensor | None:
    """``(K, n)`` per-model weights, each scaled to mean 1 over that model's rows (None: unweighted).

    A batch's mean of weighted losses then estimates the model's weighted risk.
    """
    if sample_weights is None:
        return None
    k = len(rows)
    if not isinstance(sample_weights, Tensor) or sample_weights.shape not in ((n,), (k, n)):
        raise ValueError(f"sample_weights must be a ({n},) or ({k}, {n}) tensor, got {_shape(sample_weights)}.")
    w = sample_weights.double().expand(k, n)
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weights must be finite and >= 0.")
    means = torch.stack([w[j, r].mean() for j, r in enumerate(rows)])
    if (means <= 0).any():
        raise ValueError("sample_weights are all zero on some model's rows.")
    return (w / means[:, None]).to(device=device, dtype=torch.float32)


# -- the loop ------------------------------------------------------------------

def _epoch_orders(rows: list[Tensor], masks: Tensor | None, generators: list[torch.Generator],
                  n: int) -> list[Tensor]:
    """This epoch's visiting order of each model's rows (a coupled run shuffles the pool once)."""
    if masks is None:
        return [r[torch.randperm(r.numel(), generator=g)] for r, g in zip(rows, generators)]
    orders = []
    for mask, g in zip(masks, generators):
        perm = torch.randperm(n, generator=g)
        orders.append(perm[mask[perm]])
    return orders


def _checkpoint(params: dict[str, Tensor], buffers: dict[str, Tensor], step: int,
                updates: Tensor, lr: float) -> dict[str, Tensor]:
    snap = {name: p.detach().clone() for name, p in (params | buffers).items()}
    snap |= {"step": torch.tensor(step), "updates": updates.clone(), "lr": torch.tensor(lr)}
    return snap


def _model_grads(base: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor],
                 active: list[int], xs: list[Tensor], ys: list[Tensor], ws: list[Tensor | None],
                 engine: str) -> list[Tensor]:
    """Gradients ``(len(active), ...)`` of each active model's batch loss, in the order of ``params``.

    ``"vmap"`` (every model active, equal batches): one vmapped forward and one
    backward through it. Otherwise model by model, so only one model's
    activations are alive at a time; BatchNorm buffers (views into the
    stacked buffers) are updated in place.
    """
    names = list(params)
    same_size = len({x.shape[0] for x in xs}) == 1
    if engine == "vmap" and same_size and len(active) == next(iter(params.values())).shape[0]:
        logits = stacked_forward(base, params, buffers, torch.stack(xs), engine)
        losses = [batch_loss(logits[j], ys[j], ws[j]) for j in range(len(active))]
        return list(torch.autograd.grad(torch.stack(losses).sum(), [params[n] for n in names]))
    per_model = []
    for j, k in enumerate(active):
        p_k = {name: params[name][k].detach().requires_grad_(True) for name in names}
        b_k = {name: t[k] for name, t in buffers.items()}
        loss = batch_loss(functional_call(base, (p_k, b_k), (xs[j],)), ys[j], ws[j])
        per_model.append(torch.autograd.grad(loss, list(p_k.values())))
    return [torch.stack(g) for g in zip(*per_model)]


def sgd_train(base: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor],
              images: Tensor, labels: Tensor, *, recipe: Recipe, generators: list[torch.Generator],
              engine: str, members: Tensor | None = None, coupled: bool = False,
              sample_weights: Tensor | None = None, aug: Augmentation | None = None,
              record_every: int | None = None, quiet: bool | None = None,
              desc: str = "train") -> list[dict[str, Tensor]] | None:
    """Train the stacked ``params`` in place (module docstring); returns the trajectory if recorded.

    ``generators[k]`` drives model k's shuffling and augmentation. ``members``
    ``(K, N)`` bool selects each model's rows of the pool ``images``;
    ``coupled`` shuffles the pool with each model's generator and keeps that
    model's rows (identical generators give one shared order).
    """
    n, n_models, dev = images.shape[0], len(generators), images.device
    rows = _member_rows(members, n_models, n)
    masks = None if not coupled else (
        torch.ones(n_models, n, dtype=torch.bool) if members is None else members.cpu())
    weights = model_weights(sample_weights, rows, n, dev)
    names = list(params)
    leaves = [params[name] for name in names]
    momenta = [torch.zeros_like(p) for p in leaves]
    steps = [steps_per_epoch(r.numel(), recipe.batch_size) for r in rows]
    updates = torch.zeros(n_models, dtype=torch.int64)
    trajectory = [_checkpoint(params, buffers, 0, updates, recipe.lr_at(0))] if record_every else None
    it = 0
    for epoch in progress(range(recipe.epochs), desc=desc, quiet=is_quiet(quiet)):
        lr = recipe.lr_at(epoch)
        if epoch in recipe.decay_at:
            for buf in momenta:  # the reference re-creates its SGD optimiser here
                buf.zero_()
        orders = _epoch_orders(rows, masks, generators, n)
        for s in range(max(steps)):
            active = [k for k in range(n_models) if s < steps[k]]
            batches = [orders[k][s * recipe.batch_size:(s + 1) * recipe.batch_size].to(dev)
                       for k in active]
            sizes = [b.numel() for b in batches]
            x = images[torch.cat(batches)]
            if aug is not None:
                draws = [aug.sample_params(size, generators[k]) for k, size in zip(active, sizes)]
                x = aug.apply(x, type(draws[0]).cat(draws))  # AugParams.cat / DCParams.cat
            ys = [labels[b] for b in batches]
            ws = [None if weights is None else weights[k, b] for k, b in zip(active, batches)]
            grads = _model_grads(base, params, buffers, active, list(x.split(sizes)), ys, ws, engine)
            sgd_step(leaves, grads, momenta, lr=lr, momentum=recipe.momentum,
                     weight_decay=recipe.weight_decay,
                     rows=None if len(active) == n_models else torch.tensor(active, device=dev))
            updates[active] += 1
            it += 1
            if record_every and it % record_every == 0:
                next_epoch = min(epoch + (s == max(steps) - 1), recipe.epochs - 1)
                trajectory.append(_checkpoint(params, buffers, it, updates, recipe.lr_at(next_epoch)))
    return trajectory


def train_models(images: Tensor, labels: Tensor, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                 num_classes: int, n_models: int | None = None, seed: int = 0,
                 aug: Augmentation | None = None, sample_weights: Tensor | None = None,
                 members: Tensor | None = None, coupled: bool = False,
                 model_keys: Sequence[tuple[int, int]] | None = None,
                 record_every: int | None = None, first_model: int = 0, engine: str = "auto",
                 device: str | torch.device = "auto", quiet: bool | None = None) -> TrainedModels:
    """Train fresh networks on ``(images, labels)`` together with :class:`Recipe` ``from_eval(eval_cfg)``.

    ``labels``: int64 ``(n,)`` or float ``(n, num_classes)`` soft labels.
    ``aug`` (DSA or DC's augmentation) is applied to every batch (None: no
    augmentation, whatever ``eval_cfg.augment`` says). ``sample_weights`` ``(n,)`` or ``(K, n)`` weight
    each sample's loss. ``members`` ``(K, n)`` bool: model k trains on its
    rows only (``n_models`` then defaults to K). ``coupled``: one
    initialisation and one shuffle for all models (module docstring). Models
    are numbered ``first_model, first_model + 1, ...`` and model k's run
    depends on its key ``(seed, k)`` only, so shards of a large ensemble can
    train apart; ``model_keys`` sets every model's key explicitly (several
    seeds in one call). ``record_every`` stores a checkpoint at step 0 and
    every that many training iterations.
    """
    check_training_inputs(images, labels, num_classes)
    if model_keys is None:
        n_models = (members.shape[0] if isinstance(members, Tensor) and members.dim() == 2
                    else eval_cfg.n_models) if n_models is None else n_models
        if not _is_int(n_models) or n_models < 1:
            raise ValueError(f"n_models must be an int >= 1, got {n_models!r}.")
        if not _is_int(seed) or not _is_int(first_model) or first_model < 0:
            raise ValueError(f"seed must be an int and first_model an int >= 0, got {seed!r}, "
                             f"{first_model!r}.")
        model_keys = [(seed, 0 if coupled else first_model + j) for j in range(n_models)]
    elif coupled and len(set(model_keys)) > 1:
        raise ValueError("coupled=True trains every model from one key; pass one distinct model_key.")
    if aug is not None and not isinstance(aug, (DSA, DCAugment)):
        raise ValueError(f"aug must be a ddrepro.augment.DSA, a ddrepro.augment_dc.DCAugment or "
                         f"None, got {type(aug).__name__}.")
    if record_every is not None and (not _is_int(record_every) or record_every < 1):
        raise ValueError(f"record_every must be an int >= 1 or None, got {record_every!r}.")
    # members and weights are checked here, before any network is built
    model_weights(sample_weights, _member_rows(members, len(model_keys), images.shape[0]),
                  images.shape[0], torch.device("cpu"))
    dev = resolve_device(device)
    in_channels, image_size = images.shape[1], images.shape[2]
    base, params, buffers = init_stacked(net_cfg, in_channels, num_classes, image_size,
                                         [derive_seed(s, k, "init") for s, k in model_keys], dev)
    engine = resolve_engine(engine, dev, base)
    base.train()
    trajectory = sgd_train(
        base, params, buffers, images.to(dev), labels.to(dev), recipe=Recipe.from_eval(eval_cfg),
        generators=[data_generator(s, k) for s, k in model_keys], engine=engine, members=members,
        coupled=coupled, sample_weights=sample_weights, aug=aug, record_every=record_every,
        quiet=quiet, desc=f"train {len(model_keys)} models")
    final = {name: p.detach() for name, p in params.items()}
    return TrainedModels(net_cfg, in_channels, num_classes, image_size, final, buffers,
                         trajectory, engine)


__all__ = [
    "Recipe", "TrainedModels", "batch_loss", "check_training_inputs", "data_generator",
    "decay_epochs", "derive_seed", "lr_at", "model_weights", "per_sample_loss", "sgd_step",
    "sgd_train", "steps_per_epoch", "train_models",
]
