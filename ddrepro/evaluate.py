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

from .artifacts import cached, tensor_digest
from .augment import DSA
from .config import AugConfig, EvalConfig, NetConfig, to_dict
from .models import TrainedModels
from .runtime import resolve_device
from .synthetic import SyntheticSet
from .train import per_sample_loss, train_model_loop, train_models

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


def accuracy(models: TrainedModels, test: Any, batch_size: int = 1024) -> Tensor:
    """Test accuracy ``(K,)`` of every model on ``test`` (an ImageData or an (images, labels) pair)."""
    images, labels = test
    logits = models.predict(images, batch_size=batch_size)
    return (logits.argmax(2) == labels.to(logits.device)).float().mean(1).cpu()


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


def _make_aug(eval_cfg: EvalConfig, aug_cfg: AugConfig, flip: bool) -> DSA | None:
    return DSA(aug_cfg, flip=flip) if eval_cfg.dsa else None


def _probe_sets(probes: Mapping[str, Any] | None, group_by: str | None, test: Any
                ) -> dict[str, tuple[Tensor, Tensor]]:
    sets = {}
    for name, value in (probes or {}).items():
        images, labels = value
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1:] != test.images.shape[1:]:
            raise ValueError(f"probe {name!r} must hold images shaped like the test set's.")
        sets[name] = (images, labels)
    if group_by is not None and group_by not in getattr(test, "attrs", {}):
        raise ValueError(f"group_by={group_by!r} is not an attribute of the test set; it has "
                         f"{sorted(getattr(test, 'attrs', {}))}.")
    return sets


def _digest(data: Any) -> str:
    digest = getattr(data, "digest", None)
    return digest() if callable(digest) else tensor_digest(data[0]) + tensor_digest(data[1])[:16]


def _set_id(syn: SyntheticSet) -> str:
    return tensor_digest(syn.images) + tensor_digest(syn.labels)[:16]


def _train_parts(kind: str, data_id: str, net_cfg: NetConfig, eval_cfg: EvalConfig,
                 aug_cfg: AugConfig, seed: int, flip: bool) -> dict[str, Any]:
    """What a training run depends on; ``data_id`` identifies its training set."""
    return {"kind": kind, "data": data_id, "net": net_cfg, "eval": eval_cfg, "aug": aug_cfg if eval_cfg.dsa else None,
            "flip": flip, "seed": seed}


def _answers(models: TrainedModels, test: Any, probe_sets: dict[str, tuple[Tensor, Tensor]],
             probe_flip: bool, group_by: str | None, batch_size: int) -> dict[str, Any]:
    """Accuracy, probe outputs and group accuracies of trained ``models`` (plain data)."""
    logits = models.predict(test.images, batch_size=batch_size)
    correct = (logits.argmax(2) == test.labels.to(logits.device)).cpu()
    out = {"accs": correct.float().mean(1),
           "probes": {name: probe(models, x, y, flip=probe_flip, batch_size=batch_size)
                      for name, (x, y) in probe_sets.items()}, "groups": {}}
    if group_by is not None:
        out["groups"] = group_accuracy(correct, test.attrs[group_by].cpu())
    return out


def _meta(kind: str, net_cfg: NetConfig, eval_cfg: EvalConfig, aug_cfg: AugConfig, seed: int,
          flip: bool, dev: torch.device, n_train: int, engine: str) -> dict[str, Any]:
    return {"kind": kind, "net": to_dict(net_cfg), "eval": to_dict(eval_cfg), "aug": to_dict(aug_cfg),
            "seed": seed, "flip": flip, "device": str(dev), "n_train": n_train, "engine": engine}


def _evaluate(kind: str, images: Tensor, labels: Tensor, data_id: str, test: Any, *, net_cfg: NetConfig,
              eval_cfg: EvalConfig, aug_cfg: AugConfig, seed: int, flip: bool,
              probes: Mapping[str, Any] | None, probe_flip: bool, group_by: str | None,
              keep_models: bool, device: str | torch.device, quiet: bool | None, cache: bool,
              engine: str) -> EvalResult:
    """Train (or load kept models), then answer: the body of evaluate and train_full."""
    dev = resolve_device(device)
    probe_sets = _probe_sets(probes, group_by, test)
    train_parts = _train_parts(kind, data_id, net_cfg, eval_cfg, aug_cfg, seed, flip)

    def train() -> TrainedModels:
        return train_models(images, labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                            num_classes=test.num_classes, seed=seed,
                            aug=_make_aug(eval_cfg, aug_cfg, flip), engine=engine, device=dev,
                            quiet=quiet)

    def kept() -> TrainedModels:
        stored = cached("models", train_parts, lambda: train().to_dict(), code=CODE, enabled=cache)
        return TrainedModels.from_dict(stored, device=dev)

    models = kept() if keep_models else None

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        trained = models if models is not None else train()
        answers = _answers(trained, test, probe_sets, probe_flip, group_by, eval_cfg.test_batch_size)
        meta = _meta(kind, net_cfg, eval_cfg, aug_cfg, seed, flip, dev, images.shape[0], trained.engine)
        return {"seconds": time.perf_counter() - start, "meta": meta, **answers}

    parts = train_parts | {"test": test.digest(), "probe_flip": probe_flip, "group_by": group_by,
                           "probes": {name: _digest(s) for name, s in probe_sets.items()}}
    return EvalResult.from_dict(cached("eval", parts, compute, code=CODE, enabled=cache), models)


def evaluate(syn: SyntheticSet, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
             aug_cfg: AugConfig = AugConfig(), seed: int = 0, flip: bool,
             probes: Mapping[str, Any] | None = None, probe_flip: bool = False,
             group_by: str | None = None, keep_models: bool = False,
             device: str | torch.device = "auto", quiet: bool | None = None, cache: bool = True,
             engine: str = "auto") -> EvalResult:
    """Train ``eval_cfg.n_models`` networks on ``syn`` at once and test them on ``test``.

    Augmentation: DSA with ``aug_cfg`` (the profile's, as for condensing;
    mirror only when ``flip``) when ``eval_cfg.dsa``. ``probes`` maps names to
    ImageData (or ``(images, labels)``) whose per-example outputs are returned
    (module docstring); ``group_by`` names a test-set attribute to split the
    accuracy by; ``keep_models`` caches and returns the trained networks.
    Cached over the synthetic tensors, the test and probe sets, configs and seed.
    """
    _num_classes(syn, test)
    return _evaluate("evaluate", syn.images, syn.labels, _set_id(syn), test, net_cfg=net_cfg, eval_cfg=eval_cfg,
                     aug_cfg=aug_cfg, seed=seed, flip=flip, probes=probes, probe_flip=probe_flip,
                     group_by=group_by, keep_models=keep_models, device=device, quiet=quiet,
                     cache=cache, engine=engine)


def evaluate_many(sets: Sequence[SyntheticSet], test: Any, *, net_cfg: NetConfig,
                  eval_cfg: EvalConfig, aug_cfg: AugConfig = AugConfig(),
                  seeds: Sequence[int] | None = None, flip: bool,
                  probes: Mapping[str, Any] | None = None, probe_flip: bool = False,
                  group_by: str | None = None, device: str | torch.device = "auto",
                  quiet: bool | None = None, cache: bool = True, engine: str = "auto"
                  ) -> list[EvalResult]:
    """:func:`evaluate` of every set (``seeds[i]`` for set i; default 0), trained in one batched call.

    The sets are pooled and model j of set i trains on set i's rows with the
    key ``(seeds[i], j)``, exactly as ``evaluate(sets[i], seed=seeds[i])``
    would train it, so the results are those of separate calls and are
    cached under their keys: a later :func:`evaluate` of one set is a cache hit.
    """
    seeds = [0] * len(sets) if seeds is None else list(seeds)
    if len(seeds) != len(sets) or not sets:
        raise ValueError(f"{len(sets)} sets but {len(seeds)} seeds; pass one seed per set.")
    for syn in sets:
        _num_classes(syn, test)
    common = dict(net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, flip=flip, probes=probes,
                  probe_flip=probe_flip, group_by=group_by, keep_models=False, device=device,
                  quiet=quiet, engine=engine)
    trained: dict[int, tuple[TrainedModels, float]] = {}
    if cache:
        missing = [i for i, (syn, s) in enumerate(zip(sets, seeds))
                   if not _is_cached(syn, test, s, common)]
    else:
        missing = list(range(len(sets)))
    for soft in (False, True):  # hard and soft labels train in separate pools (same arithmetic as alone)
        group = [i for i in missing if sets[i].soft == soft]
        if group:
            trained |= _train_pooled([sets[i] for i in group], group, [seeds[i] for i in group],
                                     test.num_classes, common)
    results = []
    for i, (syn, s) in enumerate(zip(sets, seeds)):
        results.append(_evaluate_trained(syn, test, s, trained.get(i), cache, common))
    return results


def _is_cached(syn: SyntheticSet, test: Any, seed: int, common: dict[str, Any]) -> bool:
    from .artifacts import ArtifactStore, artifact_key

    parts = _eval_key_parts(syn, test, seed, common)
    return ArtifactStore().path("eval", artifact_key("eval", parts, code=CODE)).is_file()


def _eval_key_parts(syn: SyntheticSet, test: Any, seed: int, common: dict[str, Any]) -> dict[str, Any]:
    probe_sets = _probe_sets(common["probes"], common["group_by"], test)
    return _train_parts("evaluate", _set_id(syn), common["net_cfg"], common["eval_cfg"],
                        common["aug_cfg"], seed, common["flip"]) | {
        "test": test.digest(), "probe_flip": common["probe_flip"], "group_by": common["group_by"],
        "probes": {name: _digest(s) for name, s in probe_sets.items()}}


def _train_pooled(sets: list[SyntheticSet], ids: list[int], seeds: list[int], num_classes: int,
                  common: dict[str, Any]) -> dict[int, tuple[TrainedModels, float]]:
    """One :func:`train_models` call for all ``sets``: pooled rows, a members mask, per-set keys.

    Returns each set's models and its share of the training time.
    """
    start = time.perf_counter()
    eval_cfg: EvalConfig = common["eval_cfg"]
    sizes = [len(syn) for syn in sets]
    images = torch.cat([syn.images for syn in sets])
    labels = torch.cat([syn.labels for syn in sets])
    owner = torch.arange(len(sets)).repeat_interleave(torch.tensor(sizes))
    m = eval_cfg.n_models
    members = (owner[None, :] == torch.arange(len(sets)).repeat_interleave(m)[:, None])
    keys = [(s, j) for s in seeds for j in range(m)]
    models = train_models(images, labels, net_cfg=common["net_cfg"], eval_cfg=eval_cfg,
                          num_classes=num_classes, members=members, model_keys=keys,
                          aug=_make_aug(eval_cfg, common["aug_cfg"], common["flip"]),
                          engine=common["engine"], device=resolve_device(common["device"]),
                          quiet=common["quiet"])
    share = (time.perf_counter() - start) / len(sets)
    return {i: (models.select(list(range(j * m, (j + 1) * m))), share) for j, i in enumerate(ids)}


def _evaluate_trained(syn: SyntheticSet, test: Any, seed: int,
                      trained: tuple[TrainedModels, float] | None, cache: bool,
                      common: dict[str, Any]) -> EvalResult:
    """The cached evaluate() result of ``syn``, computed from already trained models if given."""
    if trained is None:
        return evaluate(syn, test, seed=seed, cache=cache, **common)
    models, train_seconds = trained
    eval_cfg: EvalConfig = common["eval_cfg"]
    probe_sets = _probe_sets(common["probes"], common["group_by"], test)
    dev = resolve_device(common["device"])

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        answers = _answers(models, test, probe_sets, common["probe_flip"], common["group_by"],
                           eval_cfg.test_batch_size)
        meta = _meta("evaluate", common["net_cfg"], eval_cfg, common["aug_cfg"], seed,
                     common["flip"], dev, len(syn), models.engine) | {"pooled": True}
        return {"seconds": train_seconds + time.perf_counter() - start, "meta": meta, **answers}

    parts = _eval_key_parts(syn, test, seed, common)
    return EvalResult.from_dict(cached("eval", parts, compute, code=CODE, enabled=cache))


def evaluate_loop(syn: SyntheticSet, test: Any, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                  aug_cfg: AugConfig = AugConfig(), seed: int = 0, flip: bool,
                  device: str | torch.device = "auto", quiet: bool | None = None,
                  cache: bool = True) -> EvalResult:
    """:func:`evaluate` one model at a time with ``nn.Module`` + ``torch.optim.SGD`` (same numbers)."""
    num_classes = _num_classes(syn, test)
    dev = resolve_device(device)

    def compute() -> dict[str, Any]:
        start = time.perf_counter()
        aug = _make_aug(eval_cfg, aug_cfg, flip)
        test_images, test_labels = test.images.to(dev), test.labels.to(dev)
        accs = []
        for k in range(eval_cfg.n_models):
            net = train_model_loop(syn.images, syn.labels, k, net_cfg=net_cfg, eval_cfg=eval_cfg,
                                   num_classes=num_classes, seed=seed, aug=aug, device=dev,
                                   quiet=quiet)
            with torch.no_grad():
                preds = torch.cat([net(x).argmax(1) for x in test_images.split(eval_cfg.test_batch_size)])
            accs.append((preds == test_labels).float().mean())
        meta = _meta("loop", net_cfg, eval_cfg, aug_cfg, seed, flip, dev, len(syn), "loop")
        return {"accs": torch.stack(accs), "seconds": time.perf_counter() - start, "meta": meta}

    parts = _train_parts("evaluate_loop", _set_id(syn), net_cfg, eval_cfg, aug_cfg, seed,
                         flip) | {"test": test.digest()}
    return EvalResult.from_dict(cached("eval", parts, compute, code=CODE, enabled=cache))


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
    ``questions``: ``probes``, ``probe_flip``, ``group_by``, ``keep_models`` as for :func:`evaluate`.
    """
    flip = real.flip_ok if flip is None else flip
    if real.num_classes != test.num_classes:
        raise ValueError(f"train set has {real.num_classes} classes, test set {test.num_classes}.")
    options = {"probes": None, "probe_flip": False, "group_by": None, "keep_models": False}
    unknown = set(questions) - set(options)
    if unknown:
        raise ValueError(f"train_full got unknown arguments {sorted(unknown)}; it takes {sorted(options)}.")
    return _evaluate("train_full", real.images, real.labels, real.digest(), test, net_cfg=net_cfg,
                     eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed, flip=flip, device=device,
                     quiet=quiet, cache=cache, engine=engine, **(options | questions))


__all__ = [
    "EvalResult", "accuracy", "arch_label", "evaluate", "evaluate_across",
    "evaluate_loop", "evaluate_many", "group_accuracy", "logit_confidence", "probe", "train_full",
]
