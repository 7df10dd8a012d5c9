"""Evaluate a (synthetic) set: train fresh networks on it, then ask them questions.

The question Chapter 1 asks is "how accurate is a network trained on S?":
:func:`evaluate` trains ``eval_cfg.n_models`` networks with the papers'
protocol (:mod:`ddrepro.train`) and reports their test accuracy, mean and
population std over models as the papers' tables do. The later chapters ask
per-example questions, so an evaluation also returns, on request:

* ``probes``: per model and example, on named probe sets, the logits, the
  loss and LiRA's logit-scaled confidence ``phi = z_y - logsumexp_{j != y} z_j``
  (Carlini et al. 2022, Eq. 4 in logit form: ``log(p_y / (1 - p_y))``),
  optionally also on the horizontally flipped copy of each image;
* ``groups``: the accuracy per value of a per-sample attribute of the test
  set (bias-aligned vs bias-conflicting images);
* ``models``: the trained networks themselves, kept as an artifact.

:func:`evaluate_many` evaluates many sets (LiRA's shadow syntheses) with one
batched training call; each set's result is exactly, and is cached as,
what :func:`evaluate` gives for it alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from .artifacts import ArtifactStore, artifact_key, cached, tensor_digest
from .augment import DSA
from .augment_dc import DCAugment
from .config import AugConfig, DCAugConfig, EvalConfig, NetConfig, to_dict
from .models import TrainedModels
from .runtime import resolve_device
from .synthetic import SyntheticSet
from .train import per_sample_loss, train_models

CODE = ("ddrepro.evaluate",)  # what the artifacts below depend on (its import closure)


# -- questions to trained models --------------------------------------------------

def logit_confidence(logits: Tensor, labels: Tensor) -> Tensor:
    """LiRA's ``phi = z_y - logsumexp_{j != y} z_j`` over the last axis (``labels`` broadcast)."""
    true = logits.gather(-1, labels.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    mask = torch.nn.functional.one_hot(labels, logits.shape[-1]).bool().expand(logits.shape)
    return true - logits.masked_fill(mask, float("-inf")).logsumexp(-1)


@torch.no_grad()
def probe(models: TrainedModels, images: Tensor, labels: Tensor, *, flip: bool = False,
          batch_size: int = 1024) -> dict[str, Tensor]:
    """Per model and example ``(K, n, ...)``: ``logits``, ``loss``, ``phi`` (and ``*_flip``)."""
    if labels.dim() != 1 or labels.dtype != torch.int64 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"probe labels must be int64 ({images.shape[0]},), got {labels.dtype} "
                         f"{tuple(labels.shape)}.")
    views = {"": images} | ({"_flip": images.flip(-1)} if flip else {})
    out = {}
    for suffix, x in views.items():
        logits = models.predict(x, batch_size=batch_size).cpu()
        k = logits.shape[0]
        targets = labels.cpu().expand(k, -1)
        out[f"logits{suffix}"] = logits
        out[f"loss{suffix}"] = per_sample_loss(logits.flatten(0, 1), targets.flatten()).view(k, -1)
        out[f"phi{suffix}"] = logit_confidence(logits, labels.cpu())
    return out


def correct(models: TrainedModels, test: Any, batch_size: int = 1024) -> Tensor:
    """``(K, n)`` bool: which test images each model classifies right (ImageData or a pair)."""
    images, labels = test
    logits = models.predict(images, batch_size=batch_size)
    return (logits.argmax(2) == labels.to(logits.device)).cpu()


def accuracy(models: TrainedModels, test: Any, batch_size: int = 1024) -> Tensor:
    """Test accuracy ``(K,)`` of every model on ``test`` (an ImageData or an (images, labels) pair)."""
    return correct(models, test, batch_size).float().mean(1)


def group_accuracy(correct: Tensor, groups: Tensor) -> dict[str, Tensor]:
    """``correct`` ``(K, n)`` bool -> accuracy ``(K,)`` per value of ``groups`` ``(n,)``."""
    return {str(int(g)): correct[:, groups == g].float().mean(1)
            for g in torch.unique(groups.long()).tolist()}


@dataclass
class EvalResult:
    """Accuracies of K models (``std`` is the population std over models, as the papers' tables),
    plus the probe outputs, group accuracies and models that were asked for."""

    accs: Tensor
    mean: float
    std: float
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    groups: dict[str, Tensor] = field(default_factory=dict)
    models: TrainedModels | None = field(default=None, repr=False)

    @classmethod
    def from_accs(cls, accs: Tensor, seconds: float, meta: dict[str, Any], **extra: Any) -> "EvalResult":
        accs = accs.detach().float().cpu()
        return cls(accs, float(accs.mean()), float(accs.std(unbiased=False)), seconds, meta, **extra)

    def to_dict(self) -> dict[str, Any]:
        return {"accs": self.accs, "seconds": self.seconds, "meta": self.meta,
                "probes": self.probes, "groups": self.groups}

    @classmethod
    def from_dict(cls, d: dict[str, Any], models: TrainedModels | None = None) -> "EvalResult":
        return cls.from_accs(d["accs"], d["seconds"], d["meta"], probes=d.get("probes", {}),
                             groups=d.get("groups", {}), models=models)

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} +- {100 * self.std:.2f} % ({len(self.accs)} models)"


# -- the evaluation protocol -------------------------------------------------------

def _num_classes(syn: SyntheticSet, test: Any) -> int:
    num_classes = test.num_classes
    if syn.soft and syn.labels.shape[1] != num_classes:
        raise ValueError(f"soft labels have {syn.labels.shape[1]} classes but the test set has "
                         f"{num_classes}; condense and test on the same classes.")
    if tuple(syn.images.shape[1:]) != tuple(test.images.shape[1:]):
        raise ValueError(f"synthetic images {tuple(syn.images.shape[1:])} and test images "
                         f"{tuple(test.images.shape[1:])} differ in shape.")
    return num_classes


def _digest(data: Any) -> str:
    """Identity of an ImageData (its lineage) or of an ``(images, labels)`` pair / SyntheticSet."""
    digest = getattr(data, "digest", None)
    if callable(digest):
        return digest()
    images, labels = (data.images, data.labels) if isinstance(data, SyntheticSet) else data
    return tensor_digest(images) + tensor_digest(labels)[:16]


@dataclass(frozen=True)
class _Protocol:
    """How every set of one call is trained and what is asked of its models."""

    net_cfg: NetConfig
    eval_cfg: EvalConfig
    aug_cfg: AugConfig
    flip: bool
    test: Any
    probes: Mapping[str, Any] | None
    probe_flip: bool
    group_by: str | None
    device: torch.device
    quiet: bool | None
    engine: str
    record_every: int | None = None

    def __post_init__(self) -> None:
        for name, value in (self.probes or {}).items():
            images, _ = value
            if not isinstance(images, Tensor) or images.dim() != 4 \
                    or images.shape[1:] != self.test.images.shape[1:]:
                raise ValueError(f"probe {name!r} must hold images shaped like the test set's.")
        attrs = getattr(self.test, "attrs", {})
        if self.group_by is not None and self.group_by not in attrs:
            raise ValueError(f"group_by={self.group_by!r} is not an attribute of the test set; it "
                             f"has {sorted(attrs)}.")

    def train_parts(self, kind: str, data_id: str, seed: int) -> dict[str, Any]:
        """What a training run depends on; ``data_id`` identifies its training set."""
        parts = {"kind": kind, "data": data_id, "net": self.net_cfg, "eval": self.eval_cfg,
                 "aug": self.aug_config(), "flip": self.flip, "seed": seed}
        return parts | ({"record_every": self.record_every} if self.record_every else {})

    def parts(self, kind: str, data_id: str, seed: int) -> dict[str, Any]:
        """What an evaluation's answers depend on: the training run and the questions."""
        return self.train_parts(kind, data_id, seed) | {
            "test": self.test.digest(), "probe_flip": self.probe_flip, "group_by": self.group_by,
            "probes": {name: _digest(s) for name, s in (self.probes or {}).items()}}

    def aug_config(self) -> AugConfig | DCAugConfig | None:
        """The magnitudes of ``eval_cfg.augment``: the run's DSA config, DC's, or None."""
        return {"dsa": self.aug_cfg, "dc": DCAugConfig(), "none": None}[self.eval_cfg.augment]

    def aug(self) -> DSA | DCAugment | None:
        cfg = self.aug_config()
        if isinstance(cfg, AugConfig):
            return DSA(cfg, flip=self.flip)
        return None if cfg is None else DCAugment(cfg)

    def train(self, images: Tensor, labels: Tensor, **keys: Any) -> TrainedModels:
        return train_models(images, labels, net_cfg=self.net_cfg, eval_cfg=self.eval_cfg,
                            num_classes=self.test.num_classes, aug=self.aug(), engine=self.engine,
                            record_every=self.record_every, device=self.device, quiet=self.quiet,
                            **keys)

    def answers(self, models: TrainedModels, kind: str, seed: int, n_train: int,
                seconds: float) -> dict[str, Any]:
        """Accuracy, probe outputs, group accuracies and meta of trained ``models`` (plain data)."""
        start = time.perf_counter()
        batch = self.eval_cfg.test_batch_size
        right = correct(models, self.test, batch)
        aug_cfg = self.aug_config()
        meta = {"kind": kind, "net": to_dict(self.net_cfg), "eval": to_dict(self.eval_cfg),
                "aug": None if aug_cfg is None else to_dict(aug_cfg), "seed": seed, "flip": self.flip,
                "device": str(self.device), "n_train": n_train, "engine": models.engine}
        return {"accs": right.float().mean(1), "meta": meta,
                "probes": {name: probe(models, x, y, flip=self.probe_flip, batch_size=batch)
                           for name, (x, y) in (self.probes or {}).items()},
                "groups": {} if self.group_by is None else
                group_accuracy(right, self.test.attrs[self.group_by].cpu()),
                "seconds": seconds + time.perf_counter() - start}


def _evaluate(kind: str, images: Tensor, labels: Tensor, data_id: str, seed: int,
              proto: _Protocol, keep_models: bool, cache: bool) -> EvalResult:
    """Train (or load kept models), then answer: the body of evaluate and train_full."""
    if proto.record_every and not keep_models:
        raise ValueError("record_every records checkpoints of kept models; pass keep_models=True.")

    def train() -> TrainedModels:
        return proto.train(images, labels, seed=seed)

    models = None
    if keep_models:
        stored = cached("models", proto.train_parts(kind, data_id, seed), lambda: train().to_dict(),
                        code=CODE, enabled=cache)
        models = TrainedModels.from_dict(stored, device=proto.device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        trained = models if models is not None else train()
        return proto.answers(trained, kind, seed, images.shape[0], time.perf_counter() - start)

    stored = cached("eval", proto.parts(kind, data_id, seed), compute, code=CODE, enabled=cache)
    return EvalResult.from_dict(stored, models)


def _protocol(test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
              aug_cfg: AugConfig = AugConfig(), flip: bool, probes: Mapping[str, Any] | None = None, probe_flip: bool = False,
              group_by: str | None = None, device: str | torch.device = "auto",
              quiet: bool | None = None, engine: str = "auto",
              record_every: int | None = None) -> _Protocol:
    return _Protocol(net_cfg, eval_cfg, aug_cfg, flip, test, probes, probe_flip, group_by,
                     resolve_device(device), quiet, engine, record_every)


def evaluate(syn: SyntheticSet, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
             aug_cfg: AugConfig = AugConfig(), seed: int = 0, flip: bool,
             probes: Mapping[str, Any] | None = None, probe_flip: bool = False,
             group_by: str | None = None, keep_models: bool = False,
             record_every: int | None = None, device: str | torch.device = "auto",
             quiet: bool | None = None, cache: bool = True, engine: str = "auto") -> EvalResult:
    """Train ``eval_cfg.n_models`` networks on ``syn`` at once and test them on ``test``.

    Augmentation (``eval_cfg.augment``): ``"dsa"``, DSA with ``aug_cfg`` (the
    profile's, as for condensing; mirror only when ``flip``); ``"dc"``, DC's
    crop/scale/rotate with the authors' :class:`~ddrepro.config.DCAugConfig`
    (:func:`ddrepro.config.dc_protocol` gives the DC paper's protocol per data
    set); ``"none"``. ``probes`` maps names to
    ImageData (or ``(images, labels)``) whose per-example outputs are returned
    (module docstring); ``group_by`` names a test-set attribute to split the
    accuracy by; ``keep_models`` caches and returns the trained networks, with
    a checkpoint every ``record_every`` steps (``models.trajectory``).
    Cached over the synthetic tensors, the test and probe sets, configs and seed.
    """
    _num_classes(syn, test)
    proto = _protocol(test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, flip=flip,
                      probes=probes, probe_flip=probe_flip, group_by=group_by, device=device,
                      quiet=quiet, engine=engine, record_every=record_every)
    return _evaluate("evaluate", syn.images, syn.labels, _digest(syn), seed, proto, keep_models, cache)


def evaluate_many(sets: Sequence[SyntheticSet], test: Any, *, seeds: Sequence[int] | None = None,
                  cache: bool = True, **protocol: Any) -> list[EvalResult]:
    """:func:`evaluate` of every set (``seeds[i]`` for set i; default 0), trained in one batched call.

    ``protocol``: :func:`evaluate`'s keyword arguments (``net_cfg``,
    ``eval_cfg``, ``aug_cfg``, ``flip``, ``probes``, ...; not ``keep_models``).
    The sets are pooled and model j of set i trains on set i's rows with the
    key ``(seeds[i], j)``, exactly as ``evaluate(sets[i], seed=seeds[i])``
    would train it (hard and soft labels in separate pools, so the arithmetic
    is the same too): the results are those of separate calls and are cached
    under their keys, so a later :func:`evaluate` of one set is a cache hit.
    """
    seeds = [0] * len(sets) if seeds is None else list(seeds)
    if len(seeds) != len(sets) or not sets:
        raise ValueError(f"{len(sets)} sets but {len(seeds)} seeds; pass one seed per set.")
    for syn in sets:
        _num_classes(syn, test)
    if protocol.get("record_every") or protocol.get("keep_models"):
        raise ValueError("evaluate_many keeps no models; use evaluate(..., keep_models=True).")
    proto = _protocol(test, **protocol)
    keys = [proto.parts("evaluate", _digest(syn), seed) for syn, seed in zip(sets, seeds)]
    store = ArtifactStore()
    done = {i: store.load("eval", artifact_key("eval", key, code=CODE)) if cache else None
            for i, key in enumerate(keys)}
    results: dict[int, EvalResult] = {i: EvalResult.from_dict(d) for i, d in done.items() if d}
    for soft in (False, True):
        todo = [i for i in range(len(sets)) if i not in results and sets[i].soft == soft]
        if not todo:
            continue
        start = time.perf_counter()
        models = _train_pooled([sets[i] for i in todo], [seeds[i] for i in todo], proto)
        share = (time.perf_counter() - start) / len(todo)
        for j, i in enumerate(todo):
            answers = proto.answers(models[j], "evaluate", seeds[i], len(sets[i]), share)
            answers["meta"]["pooled"] = True
            if cache:
                store.save("eval", artifact_key("eval", keys[i], code=CODE), answers)
            results[i] = EvalResult.from_dict(answers)
    return [results[i] for i in range(len(sets))]


def _train_pooled(sets: list[SyntheticSet], seeds: list[int], proto: _Protocol) -> list[TrainedModels]:
    """One :func:`train_models` call for all ``sets``: pooled rows, a members mask, per-set keys."""
    sizes = torch.tensor([len(syn) for syn in sets])
    owner = torch.arange(len(sets)).repeat_interleave(sizes)
    m = proto.eval_cfg.n_models
    members = owner[None, :] == torch.arange(len(sets)).repeat_interleave(m)[:, None]
    models = proto.train(torch.cat([syn.images for syn in sets]),
                         torch.cat([syn.labels for syn in sets]), members=members,
                         model_keys=[(s, j) for s in seeds for j in range(m)])
    return [models.select(list(range(j * m, (j + 1) * m))) for j in range(len(sets))]


def arch_label(cfg: NetConfig) -> str:
    """A short name: the network plus every field that differs from ``NetConfig()``."""
    default = NetConfig()
    extras = [f"{name}{getattr(cfg, name)}" if name != "norm" else cfg.norm
              for name in ("width", "depth", "norm") if getattr(cfg, name) != getattr(default, name)]
    return "-".join([cfg.name, *extras])


def evaluate_across(syn: SyntheticSet, test: Any, archs: list[NetConfig], *, eval_cfg: EvalConfig,
                    aug_cfg: AugConfig = AugConfig(), seed: int = 0, flip: bool,
                    device: str | torch.device = "auto", quiet: bool | None = None,
                    cache: bool = True) -> dict[str, EvalResult]:
    """:func:`evaluate` for every architecture in ``archs`` (cross-architecture generalisation)."""
    labels = [arch_label(cfg) for cfg in archs]
    if not archs or len(set(labels)) != len(labels):
        raise ValueError(f"archs must be a non-empty list of distinct NetConfigs, got {labels}.")
    return {label: evaluate(syn, test, net_cfg=cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                            flip=flip, device=device, quiet=quiet, cache=cache)
            for label, cfg in zip(labels, archs)}


def train_full(real: Any, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
               aug_cfg: AugConfig = AugConfig(), seed: int = 0, flip: bool | None = None,
               device: str | torch.device = "auto", quiet: bool | None = None, cache: bool = True,
               engine: str = "auto", **questions: Any) -> EvalResult:
    """The whole-data ceiling: the same protocol on the real training set (``epochs`` full passes).

    ``flip`` defaults to ``real.flip_ok``. Only one minibatch per model is
    gathered at a time, so the data is held once whatever ``n_models`` is.
    ``questions``: ``probes``, ``probe_flip``, ``group_by``, ``keep_models``, ``record_every``
    as for :func:`evaluate` (``keep_models=True, record_every=k``: an expert trajectory, cached).
    """
    flip = real.flip_ok if flip is None else flip
    if real.num_classes != test.num_classes:
        raise ValueError(f"train set has {real.num_classes} classes, test set {test.num_classes}.")
    options = {"probes": None, "probe_flip": False, "group_by": None, "keep_models": False,
               "record_every": None}
    unknown = set(questions) - set(options)
    if unknown:
        raise ValueError(f"train_full got unknown arguments {sorted(unknown)}; it takes {sorted(options)}.")
    options |= questions
    keep_models = options.pop("keep_models")
    proto = _protocol(test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, flip=flip,
                      device=device, quiet=quiet, engine=engine, **options)
    return _evaluate("train_full", real.images, real.labels, real.digest(), seed, proto,
                     keep_models, cache)


__all__ = [
    "EvalResult", "accuracy", "arch_label", "correct", "evaluate", "evaluate_across",
    "evaluate_many", "group_accuracy", "logit_confidence", "probe", "train_full",
]
