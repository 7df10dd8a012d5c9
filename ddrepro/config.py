"""Typed, frozen configuration for every stage of the pipeline.

Each dataclass holds the *paper's* values as its defaults, so ``DMConfig()`` is
Zhao & Bilen's DM setting and the ``paper`` profile is little more than the
defaults. Values are checked when the object is built, so a bad setting fails
before any compute, with a message that names the field and the allowed range.

Glossary (used across the package and the book):
``ipc`` images per class; ``syn_images``/``syn_labels`` the synthetic set;
``real_images``/``real_labels`` the training set it is distilled from;
``batch_real`` real images drawn per class per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any


def _check(cond: bool, owner: object, name: str, value: Any, what: str) -> None:
    if not cond:
        raise ValueError(
            f"{type(owner).__name__}.{name} = {value!r} is invalid: it must be {what}."
        )


def _positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        _check(value is not None and value > 0, owner, name, value, "> 0")


def _optional_positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        _check(value is None or value > 0, owner, name, value, "> 0 or None")


def _momentum(owner: object) -> None:
    _check(0.0 <= owner.momentum < 1.0, owner, "momentum", owner.momentum, "in [0, 1)")


def _fraction(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        _check(0.0 <= value < 1.0, owner, name, value, "in [0, 1)")


def _fractions(owner: object, name: str, values: tuple[float, ...], low: float, high: float,
               closed_high: bool = False) -> None:
    ok = len(values) > 0 and all(low < v < high or (closed_high and v == high) for v in values)
    interval = f"({low}, {high}{']' if closed_high else ')'}"
    _check(ok, owner, name, values, f"a non-empty tuple of numbers in {interval}")


@dataclass(frozen=True)
class DataConfig:
    """Which real data a chapter uses and how much of it.

    ``train_per_class``/``test_size`` subsample the real sets (None keeps all),
    the knob that lets the ``cpu`` profile run on 2 cores.
    """

    datasets: tuple[str, ...] = ("mnist", "fashion_mnist")
    train_per_class: int | None = None
    test_size: int | None = None

    def __post_init__(self) -> None:
        _check(len(self.datasets) > 0, self, "datasets", self.datasets, "non-empty")
        _optional_positive(self, "train_per_class", "test_size")


@dataclass(frozen=True)
class NetConfig:
    """The network used for condensing and for evaluation.

    ConvNet-3, width 128, instance norm, ReLU, average pooling: the
    architecture of DC (Zhao et al. 2021), DSA and DM.
    """

    name: str = "convnet"
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"

    def __post_init__(self) -> None:
        _positive(self, "width", "depth")


@dataclass(frozen=True)
class AugConfig:
    """Differentiable Siamese augmentation (Zhao & Bilen 2021, DSA).

    The magnitudes are the DSA paper's; ``strategy`` lists the ops, one of
    which is drawn per call. Flip is dropped for digit data by the caller.
    """

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    scale: float = 1.2
    rotate: float = 15.0
    crop: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        _positive(self, "scale", "brightness", "saturation", "contrast")
        _check(self.scale >= 1.0, self, "scale", self.scale, ">= 1")
        _check(0.0 <= self.rotate <= 180.0, self, "rotate", self.rotate, "in [0, 180]")
        _fraction(self, "crop", "cutout")


# What augments every training batch of an evaluation (EvalConfig.augment).
EVAL_AUGMENTATIONS = ("dsa", "dc", "none")
# The ops of DC's evaluation augmentation (DCAugConfig.strategy).
DC_AUG_OPS = ("crop", "scale", "rotate", "noise")


@dataclass(frozen=True)
class DCAugConfig:
    """DC's evaluation augmentation (Zhao et al. 2021; the authors' ``get_daparam``/``augment``).

    One op per image, drawn from ``strategy``: ``crop`` shifts by up to
    ``crop`` pixels, ``scale`` resizes each axis by ``U(1 - scale, 1 + scale)``,
    ``rotate`` turns by an integer angle in ``[-rotate, rotate)`` degrees,
    ``noise`` adds ``noise`` x N(0, 1). The defaults are the authors' MNIST
    setting (``crop_scale_rotate``; ``noise`` is unused there); their
    batch-norm ConvNet uses ``crop_noise``. Implemented in :mod:`ddrepro.augment_dc`.
    """

    strategy: str = "crop_scale_rotate"
    crop: int = 4
    scale: float = 0.2
    rotate: int = 45
    noise: float = 0.001

    def __post_init__(self) -> None:
        ops = self.strategy.split("_") if self.strategy else []
        _check(bool(ops) and all(op in DC_AUG_OPS for op in ops) and len(set(ops)) == len(ops),
               self, "strategy", self.strategy, f"'_'-joined distinct ops from {DC_AUG_OPS}")
        _check(isinstance(self.crop, int) and self.crop >= 0, self, "crop", self.crop, "an int >= 0")
        _check(isinstance(self.rotate, int) and 0 <= self.rotate <= 180, self, "rotate",
               self.rotate, "an int in [0, 180]")
        _fraction(self, "scale")
        _check(self.noise >= 0.0, self, "noise", self.noise, ">= 0")


@dataclass(frozen=True)
class EvalConfig:
    """Training a fresh network on a (synthetic) set and testing it.

    The recipe of DC/DSA/DM: SGD lr 0.01, momentum 0.9, weight decay 5e-4,
    batch 256, learning rate x0.1 at half the epochs (momentum reset there, as
    the reference re-creates its optimiser), 1000 epochs, DSA on.
    ``decay_epochs`` moves the decay: ``None`` is the papers' single decay at
    ``epochs // 2``; a tuple lists every epoch at which the rate drops x0.1
    (e.g. ``(50, 100)`` of 150, the bias paper's full-set schedule); ``()`` keeps
    the rate constant (MTT's experts). ``n_models`` networks are trained at once (the papers report 20). The
    reference code trains 1001 epochs, decaying after epoch 501; see
    :func:`ddrepro.evaluate.lr_at`.

    ``augment``: what augments each training batch: ``"dsa"`` (DSA's
    differentiable ops with the run's ``AugConfig``, the DSA and DM papers'
    protocol), ``"dc"`` (DC's crop/scale/rotate, :class:`DCAugConfig`, the DC
    paper's protocol on MNIST) or ``"none"``. :func:`dc_protocol` gives the
    DC paper's evaluation of a data set.
    """

    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    n_models: int = 20
    augment: str = "dsa"
    test_batch_size: int = 1024
    decay_epochs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _positive(self, "epochs", "batch_size", "lr", "n_models", "test_batch_size")
        if self.decay_epochs is not None:
            object.__setattr__(self, "decay_epochs", tuple(self.decay_epochs))
            ok = all(isinstance(e, int) and 1 <= e < self.epochs for e in self.decay_epochs) and \
                list(self.decay_epochs) == sorted(set(self.decay_epochs))
            _check(ok, self, "decay_epochs", self.decay_epochs,
                   f"None, or increasing epochs in [1, {self.epochs})")
        _momentum(self)
        _check(self.weight_decay >= 0.0, self, "weight_decay", self.weight_decay, ">= 0")
        _check(self.augment in EVAL_AUGMENTATIONS, self, "augment", self.augment,
               f"one of {EVAL_AUGMENTATIONS}")


# DC's evaluation (the authors' main.py): 1000 epochs when the data set is augmented
# (MNIST), 300 without augmentation (every other data set).
DC_EPOCHS_AUGMENTED = 1000
DC_EPOCHS_PLAIN = 300


def dc_protocol(eval_cfg: EvalConfig, dataset_name: str) -> EvalConfig:
    """The DC paper's evaluation of ``dataset_name``, at ``eval_cfg``'s scale.

    The DC paper's numbers (and its random and herding rows) were measured
    with the authors' ``evaluate_synset``: MNIST with DC's crop/scale/rotate
    augmentation for 1000 epochs, every other data set without augmentation
    for 300 epochs. So MNIST gets ``augment="dc"`` and keeps ``eval_cfg``'s
    epochs; other data sets get ``augment="none"`` and ``0.3 x`` the epochs
    (300 of 1000 at paper scale; a smaller config is scaled proportionally,
    ``round(300 * epochs / 1000)``, at least 1; 1000 or more give 300).
    Everything else (optimiser, schedule, ``n_models``) is ``eval_cfg``'s.
    (The authors' batch-norm ConvNet uses ``crop_noise`` on every data set;
    not covered here.)
    """
    from .data.catalog import canonical_name  # lazy: ddrepro.data imports torch

    if canonical_name(dataset_name) == "mnist":
        return replace_checked(eval_cfg, augment="dc")
    scaled = round(DC_EPOCHS_PLAIN * min(eval_cfg.epochs, DC_EPOCHS_AUGMENTED) / DC_EPOCHS_AUGMENTED)
    return replace_checked(eval_cfg, augment="none", epochs=max(1, scaled))


@dataclass(frozen=True)
class HerdingConfig:
    """Herding (Welling 2009) in the embedding of a ConvNet trained briefly on real data."""

    embed_epochs: int = 10
    batch_size: int = 256
    lr: float = 0.01

    def __post_init__(self) -> None:
        _check(self.embed_epochs >= 0, self, "embed_epochs", self.embed_epochs, ">= 0")
        _positive(self, "batch_size", "lr")


# Precisions the real side of distribution matching may run in (DMConfig.real_dtype).
REAL_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class DMConfig:
    """Distribution matching (Zhao & Bilen 2023): 20,000 steps, batch_real 256, SGD lr 1, momentum 0.5.

    ``mean_estimator`` is the real-side class-mean estimator: ``"mean"`` (DM's)
    or a :class:`ddrepro.robust.MeanEstimatorConfig` (RDM-DC's calibrated mean
    and the robust baselines; its name, rate and iterations enter the cache key).
    ``real_dtype`` "bfloat16" runs the real images' forward pass (90 % of a
    step's arithmetic) under autocast: opt-in, since it changes the numbers
    (class means move by ~0.2 %, 25x less than between two real batches; see
    ``tests/condense/test_dm.py``). ``compile``: ``torch.compile`` the
    embedding (None: when ``steps >= 2000``, where its one-off cost is repaid
    within the run; True also pays off for many shorter runs in one process,
    e.g. ``condense_many``, since the compiled code is reused). Compiled and
    eager steps agree to rounding (~1e-5 relative), not bitwise, so the choice
    is part of the config and of the cache key.
    """

    steps: int = 20_000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum: float = 0.5
    dsa: bool = True
    mean_estimator: Any = "mean"  # "mean" | robust.MeanEstimatorConfig
    real_dtype: str = "float32"
    compile: bool | None = None

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_real", "lr_img")
        _momentum(self)
        _check(self.real_dtype in REAL_DTYPES, self, "real_dtype", self.real_dtype,
               f"one of {REAL_DTYPES}")
        from .robust import MEAN_ESTIMATORS, as_config  # lazy: robust.py imports torch

        try:
            as_config(self.mean_estimator)
        except ValueError as err:
            raise ValueError(f"DMConfig.mean_estimator = {self.mean_estimator!r} is invalid: it must be "
                             f"'mean' or a MeanEstimatorConfig with a name in {MEAN_ESTIMATORS.names()} "
                             f"({err})") from None


@dataclass(frozen=True)
class GMConfig:
    """Gradient matching, DC (Zhao et al. 2021) and DSA (Zhao & Bilen 2021).

    ``steps`` is the papers' number of outer iterations K (a fresh network
    each), named as in every condenser config. ``outer_loops``/``inner_loops``
    None take the authors' table by IPC
    (:data:`ddrepro.condense.gm.LOOPS_BY_IPC`): 1 -> (1, 1), 10 -> (10, 50),
    20 -> (20, 25), 30 -> (30, 20), 40 -> (40, 15), 50 -> (50, 10).
    """

    steps: int = 1000
    outer_loops: int | None = None
    inner_loops: int | None = None
    batch_real: int = 256
    batch_train: int = 256
    lr_img: float = 0.1
    lr_net: float = 0.01
    momentum: float = 0.5
    dsa: bool = False

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_real", "batch_train", "lr_img", "lr_net")
        _optional_positive(self, "outer_loops")
        _check(self.inner_loops is None or self.inner_loops >= 0, self,
               "inner_loops", self.inner_loops, ">= 0 or None")
        _momentum(self)


@dataclass(frozen=True)
class MMDConfig:
    """Maximum mean discrepancy with a sum of Gaussian kernels on random ConvNet embeddings.

    DM's loop and hyperparameters (20,000 steps, batch_real 256, SGD lr 1.0,
    momentum 0.5, DSA). ``bandwidths`` are multiples of the median real-real
    embedding distance; each kernel's MMD^2 is weighted by its squared width
    and averaged over kernels, so the loss tends to DM's for wide kernels and
    DM's ``lr_img`` fits it: DM's image gradient is 1.4-1.8x MMD's (MNIST,
    width 32 and 128), against 22-273x with unweighted kernels, where MMD
    moved its images a third as far as DM. See :mod:`ddrepro.condense.mmd`.
    """

    steps: int = 20_000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum: float = 0.5
    bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    dsa: bool = True
    compile: bool | None = None  # as DMConfig.compile

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_real", "lr_img")
        _check(len(self.bandwidths) > 0 and all(b > 0 for b in self.bandwidths),
               self, "bandwidths", self.bandwidths, "a non-empty tuple of positive numbers")
        _momentum(self)


@dataclass(frozen=True)
class KIPConfig:
    """Kernel inducing points (Nguyen et al. 2021) with an infinite-width FC ReLU NTK.

    Unlike the other methods, ``batch_real`` is the *total* target batch (the
    paper's 5000), drawn class-balanced, so it is rounded down to a multiple of
    the class count. ``sigma_w2``/``sigma_b2`` are the kernel's weight and bias
    variances, the paper's 2 and 1e-4. The paper uses Adam with lr 0.01 for
    MNIST and 0.04 for CIFAR-10 (``lr_img``, also the learned labels' rate);
    the default is the MNIST value, since the book distils MNIST-style data.
    ``dsa``: Siamese DSA on the target batch and the support set, one draw per class
    shared by both sides, as DM uses it (Privacy for Free, App. E.1: "we also apply
    differentiable siamese augmentations ... for both DM and KIP"); off by default, as in
    the KIP paper.
    """

    steps: int = 1000
    batch_real: int = 5000
    lr_img: float = 0.01
    reg: float = 1e-6
    depth: int = 1
    sigma_w2: float = 2.0
    sigma_b2: float = 1e-4
    learn_labels: bool = True
    dsa: bool = False

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_real", "lr_img", "reg", "depth", "sigma_w2")
        _check(self.sigma_b2 >= 0.0, self, "sigma_b2", self.sigma_b2, ">= 0")


def replace_checked(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names the valid fields when one is unknown."""
    valid = {f.name for f in fields(cfg)}
    unknown = sorted(set(changes) - valid)
    if unknown:
        raise ValueError(
            f"{type(cfg).__name__} has no field {', '.join(unknown)}; "
            f"valid fields: {', '.join(sorted(valid))}."
        )
    return dataclasses.replace(cfg, **changes)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of a (nested) config, for hashing and for saving beside results."""
    return dataclasses.asdict(cfg)


__all__ = [
    "DataConfig", "NetConfig", "AugConfig", "DCAugConfig", "EvalConfig", "HerdingConfig",
    "DMConfig", "GMConfig", "MMDConfig", "KIPConfig", "REAL_DTYPES", "DC_AUG_OPS",
    "EVAL_AUGMENTATIONS", "dc_protocol", "replace_checked", "to_dict",
]
