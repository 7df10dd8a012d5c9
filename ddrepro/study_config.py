"""Typed settings of the chapters' studies, one frozen dataclass each (profile sections).

Like :mod:`ddrepro.config`, every default is the paper's value where the paper
gives one (cited), and ours, marked so, where it does not; values are checked
at construction, so ``-p privacy.shadows 1`` fails before any compute. The
chapters' notebooks read these sections of the resolved profile
(``prof.privacy``, ``prof.poison``, ``prof.bias``, ``prof.ead``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import _check, _positive


@dataclass(frozen=True)
class ToyConfig:
    """The 2-D illustration of Chapter 1: ``n_points`` real points distilled to ``ipc`` per class."""

    n_points: int = 2000
    noise: float = 0.15
    ipc: int = 5
    steps: int = 500
    epochs: int = 300
    width: int = 64

    def __post_init__(self) -> None:
        _positive(self, "n_points", "ipc", "steps", "epochs", "width")
        _check(self.noise >= 0.0, self, "noise", self.noise, ">= 0")


@dataclass(frozen=True)
class BudgetConfig:
    """Chapter 1's budget study: gradient matching at ``ipc`` on ``dataset`` after each of
    ``steps`` outer iterations, scored on ``val_per_class`` validation images per class held
    out from the training set (never the test set), beside random selection and herding."""

    dataset: str = "mnist"
    methods: tuple[str, ...] = ("dc", "dsa")
    ipc: int = 1
    steps: tuple[int, ...] = (100, 300, 1000)
    val_per_class: int = 500

    def __post_init__(self) -> None:
        _positive(self, "ipc", "val_per_class")
        _check(len(self.steps) > 0 and all(s >= 1 for s in self.steps)
               and list(self.steps) == sorted(set(self.steps)), self, "steps", self.steps,
               "a non-empty increasing tuple of step counts >= 1")
        _check(len(self.methods) > 0, self, "methods", self.methods, "non-empty")


def _fractions(owner: object, name: str, values: tuple[float, ...], low: float, high: float,
               closed_high: bool = False) -> None:
    ok = len(values) > 0 and all(low < v < high or (closed_high and v == high) for v in values)
    interval = f"({low}, {high}{']' if closed_high else ')'}"
    _check(ok, owner, name, values, f"a non-empty tuple of numbers in {interval}")


@dataclass(frozen=True)
class PoisonConfig:
    """Chapter 3, Zheng & Li (UAI 2023), RDM-DC: targeted clean-label poisoning of DM.

    ``rate`` of the training set (paper: 1%) drawn from the adversarial class
    gets an L-infinity perturbation of at most ``eps`` in pixels (paper: 64/255
    and 128/255); ``targets`` target images (seeds 0-4) x ``runs`` victim runs
    (paper: 5 x 5); DM at ``ipc`` 50 with noise initialisation, ``dm_steps``
    iterations (paper: 20,000) on real batches of ``batch_real`` per class
    (paper: 256); ``victims`` networks trained per synthetic set (ours: the
    paper trains one per run). ``defenses``: DM and its class-mean estimators
    (:data:`ddrepro.attacks.study.DEFENSES`), the baselines (all but ``dm`` and ``rdm``)
    on the first ``baseline_targets`` targets only; ``direct_targets`` of the targets
    also get the direct attack (Table 5). Attacks: signed Adam with step
    ``attack_lr`` (paper: 1/255); the paper gives no iteration or restart
    counts, so ``attack_steps`` and ``restarts`` are ours (the values of
    Geiping et al.'s Witches' Brew, which the paper's gradient-matching attack
    follows); gradient matching uses ``pretrained`` clean models (paper: 16), trained for up
    to ``pretrain_epochs`` (staggered; the paper gives no count: Witches' Brew's 40).
    Mean calibration: ``power_iterations`` of the power method (Alg. 5; "a few").
    Lemma 4.1 measured (ours): ``deviation_n`` planted Gaussian representations,
    averaged over ``deviation_trials`` draws. The sweep (ours; the paper gives no T and
    remarks that a small eps leaves DM safe, Sec. 4.3): the first ``sweep_targets``
    targets against plain DM at every ``sweep_eps`` (with T = ``attack_steps``) and every
    ``sweep_steps`` (with the first ``eps``). ``init``: the victim's synthetic images start
    from Gaussian "noise" (the paper's protocol) or from "real" images of the poisoned set
    (Sec. 5.1 calls that vulnerable). The attack-and-defense table (ours, where ``rate`` does
    not bite): ``table_rate`` replaces ``rate`` there (None: ``rate``), DM poisoning runs on the
    first ``dm_poison_targets`` targets (None: all), gradient matching on the first ``gm_targets``
    (None: all), and the baselines join the attacks on the first ``baseline_targets`` too. Beyond the paper (book/03_poisoning/beyond.md): the
    first ``adaptive_targets`` targets get the adaptive attacks ``adaptive_losses`` ("through"
    RDM-DC's calibrated mean, "spread" with penalty weight ``spread_weight``) at ``table_rate``;
    untargeted DM poisoning at every rate of ``untargeted_rates`` (of every class), its anchors
    ``untargeted_anchors`` clean images of the next class.
    """

    dataset: str = "cifar10"
    ipc: int = 50
    eps: tuple[float, ...] = (64 / 255, 128 / 255)
    rate: float = 0.01
    targets: int = 5
    runs: int = 5
    attack_steps: int = 240
    restarts: int = 8
    attack_lr: float = 1 / 255
    pretrained: int = 16
    pretrain_epochs: int = 40
    power_iterations: int = 10
    dm_steps: int = 20_000
    batch_real: int = 256
    victims: int = 1
    defenses: tuple[str, ...] = ("dm", "median", "trimmed", "truncated", "rdm")
    direct_targets: int = 5
    baseline_targets: int = 5
    deviation_n: int = 20_000
    deviation_trials: int = 20
    sweep_targets: int = 5
    sweep_eps: tuple[float, ...] = (16 / 255, 64 / 255, 128 / 255)
    sweep_steps: tuple[int, ...] = (60, 240, 480)
    init: str = "noise"
    table_rate: float | None = None
    dm_poison_targets: int | None = None
    gm_targets: int | None = None
    adaptive_targets: int = 5
    adaptive_losses: tuple[str, ...] = ("through", "spread")
    spread_weight: float = 1.0
    untargeted_rates: tuple[float, ...] = (0.01, 0.1)
    untargeted_anchors: int = 32

    def __post_init__(self) -> None:
        _check(self.init in ("noise", "real"), self, "init", self.init, '"noise" or "real"')
        _check(self.table_rate is None or 0.0 < self.table_rate < 0.5, self, "table_rate", self.table_rate,
               "None (use rate) or in (0, 0.5)")
        for name in ("dm_poison_targets", "gm_targets"):
            value = getattr(self, name)
            _check(value is None or 0 <= value <= self.targets, self, name, value,
                   "None (every target) or in [0, targets]")
        _fractions(self, "eps", self.eps, 0.0, 1.0, closed_high=True)
        _fractions(self, "sweep_eps", self.sweep_eps, 0.0, 1.0, closed_high=True)
        _check(len(self.sweep_steps) > 0 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                                 for s in self.sweep_steps),
               self, "sweep_steps", self.sweep_steps, "a non-empty tuple of integers >= 1")
        _check(0.0 < self.rate < 0.5, self, "rate", self.rate, "in (0, 0.5)")
        _positive(self, "ipc", "targets", "runs", "attack_steps", "restarts", "attack_lr",
                  "pretrained", "pretrain_epochs", "power_iterations", "dm_steps", "batch_real", "victims",
                  "deviation_n", "deviation_trials")
        known = ("dm", "rdm", "median", "trimmed", "truncated")  # ddrepro.attacks.study.DEFENSES
        _check(len(self.defenses) > 0 and set(self.defenses) <= set(known), self, "defenses",
               self.defenses, f"a non-empty tuple of {known}")
        _check(0 <= self.direct_targets <= self.targets, self, "direct_targets", self.direct_targets,
               "in [0, targets]")
        _check(0 <= self.baseline_targets <= self.targets, self, "baseline_targets",
               self.baseline_targets, "in [0, targets]")
        _check(0 <= self.sweep_targets <= self.targets, self, "sweep_targets", self.sweep_targets,
               "in [0, targets]")
        _check(not isinstance(self.adaptive_targets, bool) and isinstance(self.adaptive_targets, int)
               and 1 <= self.adaptive_targets <= self.targets, self, "adaptive_targets",
               self.adaptive_targets, "an integer in [1, targets]")
        losses = ("through", "spread")  # ddrepro.attacks.poison.POISON_LOSSES, the adaptive ones
        _check(len(self.adaptive_losses) > 0 and set(self.adaptive_losses) <= set(losses)
               and len(set(self.adaptive_losses)) == len(self.adaptive_losses), self, "adaptive_losses",
               self.adaptive_losses, f"a non-empty tuple of distinct names from {losses}")
        _check(isinstance(self.spread_weight, (int, float)) and not isinstance(self.spread_weight, bool)
               and self.spread_weight >= 0, self, "spread_weight", self.spread_weight, ">= 0")
        _fractions(self, "untargeted_rates", self.untargeted_rates, 0.0, 0.5)
        _positive(self, "untargeted_anchors")


@dataclass(frozen=True)
class BiasConfig:
    """Chapter 4, Lu et al., dataset bias in DD: CMNIST-DD and CCIFAR10-DD.

    ``ratios``: percentages of bias-aligned training images (paper: 0, 10, 50, 80, 95,
    100); ``severity`` of the colour/corruption shortcut (1-4; paper's Table 1: 4) and
    ``severities`` for Table 2 (at ratios 0 and 100); DC/DSA/DM at ``ipc`` 50; ``repeats``
    runs per cell (paper: 3, mean +- std; here the seeds of the debiasing study).
    Ours: ``dsa_ratios`` and ``dc_ratios`` where DSA and DC run beside DM;
    ``colour_ratio`` where DM and DSA also run without DSA's colour op; ``test_aligned``
    % aligned images in the evaluation test split (its conflicting part is the paper's
    test set); the full-set control's ``full_epochs`` (paper: 150), ``full_models``
    (paper: 3 repeats) and ``full_ratios`` (where it runs in Table 1); ``debias_ratios``
    the condensers reweighted there, ``debias_methods`` (any that honours per-sample
    weights: DM, DSA, DC), and the reweighting's KDE ``debias_bandwidth`` (ours, a number or ``"cv"``: chosen per
    class by cross-validated likelihood) and ``debias_power`` (``ddrepro.debias``).
    """

    dataset: str = "cmnist_dd"
    ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    severity: int = 4
    severities: tuple[int, ...] = (1, 2, 3, 4)
    ipc: int = 50
    repeats: int = 3
    dsa_ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    dc_ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    colour_ratio: float = 95.0
    test_aligned: float = 50.0
    full_epochs: int = 150
    full_models: int = 3
    full_ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    debias_ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    debias_methods: tuple[str, ...] = ("dm", "dsa")
    debias_bandwidth: float | str = 0.05
    debias_power: float = 1.0

    def __post_init__(self) -> None:
        _check(self.dataset in ("cmnist_dd", "ccifar10_dd"), self, "dataset", self.dataset,
               "'cmnist_dd' or 'ccifar10_dd'")
        for name in ("ratios", "dsa_ratios", "dc_ratios", "full_ratios", "debias_ratios"):
            values = getattr(self, name)
            _check(all(0.0 <= r <= 100.0 for r in values), self, name, values,
                   "a tuple of percentages in [0, 100]")
        _check(len(self.ratios) > 0, self, "ratios", self.ratios, "non-empty")
        _check(0.0 <= self.colour_ratio <= 100.0, self, "colour_ratio", self.colour_ratio,
               "a percentage in [0, 100]")
        _check(0.0 < self.test_aligned < 100.0, self, "test_aligned", self.test_aligned,
               "in (0, 100): the test split needs aligned and conflicting images")
        _check(self.severity in (1, 2, 3, 4), self, "severity", self.severity, "one of 1, 2, 3, 4")
        _check(len(self.severities) > 0 and all(s in (1, 2, 3, 4) for s in self.severities), self,
               "severities", self.severities, "a non-empty tuple of values in 1-4")
        _positive(self, "ipc", "repeats", "full_epochs", "full_models")
        _check(len(self.debias_methods) > 0 and all(m in ("dm", "dsa", "dc") for m in self.debias_methods),
               self, "debias_methods", self.debias_methods,
               "a non-empty tuple of 'dm', 'dsa', 'dc' (condensers with per-sample weights)")
        _check(self.debias_bandwidth == "cv" if isinstance(self.debias_bandwidth, str)
               else self.debias_bandwidth > 0, self, "debias_bandwidth", self.debias_bandwidth,
               "> 0 or 'cv' (cross-validated likelihood, ddrepro.debias.select_bandwidth)")
        _check(0.0 < self.debias_power <= 1.0, self, "debias_power", self.debias_power, "in (0, 1]")


@dataclass(frozen=True)
class EADConfig:
    """Chapter 5, effect alignment (EAD, Alg. 1): expert trajectory, sampled checkpoints.

    The paper gives no learning rates, iteration counts, ``t_m``, network or
    expert epochs: every default here is ours, to be tuned on a validation
    split. The expert: ``expert_epochs`` of plain SGD (``expert_lr``, batches of
    ``expert_batch``) on the real data with a checkpoint every
    ``checkpoint_every`` updates; each EAD step samples ``t_m`` checkpoints,
    ``batch_real`` images for D_p and for D_t and ``batch_syn`` synthetic ones,
    and updates images (Adam, ``lr_img``) and label logits (``lr_label``).
    ``alpha``: the coefficient of Eq. 7, ``(1 - alpha) <gP, gD_t>``; 0 is what
    the first-order derivation gives for any batch sizes (the paper's
    ``(|D| - |S|) / |S|`` is about 500 at our MNIST IPC 10). ``soft_labels``
    False keeps hard one-hot labels fixed (the ablation).
    The estimator study (estimator.md): ``pairs`` random (G, A) pairs retrained
    at each of the full-batch ``horizons`` (steps T, ``study_lr``), shown in
    detail at ``scatter_horizon``; the ablations (ead_ablations.md, scored on
    ``val_per_class`` validation images per class held out from the training
    set): ``t_ms`` and ``alphas``.
    """

    expert_epochs: int = 50
    checkpoint_every: int = 10
    t_m: int = 10
    steps: int = 1000
    lr_img: float = 0.1
    lr_label: float = 0.01
    batch_real: int = 256
    batch_syn: int = 256
    alpha: float = 0.0
    expert_lr: float = 0.01
    expert_batch: int = 256
    soft_labels: bool = True
    pairs: int = 200
    horizons: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200)
    scatter_horizon: int = 20
    study_lr: float = 0.05
    t_ms: tuple[int, ...] = (1, 2, 5, 10, 20)
    alphas: tuple[float, ...] = (0.0, 0.5, 1.0)
    val_per_class: int = 500

    def __post_init__(self) -> None:
        _positive(self, "expert_epochs", "checkpoint_every", "t_m", "steps", "lr_img",
                  "lr_label", "batch_real", "batch_syn", "expert_lr", "expert_batch", "pairs",
                  "study_lr", "val_per_class")
        _check(math.isfinite(self.alpha), self, "alpha", self.alpha, "a finite number")
        _check(len(self.horizons) > 0 and all(h >= 1 for h in self.horizons)
               and list(self.horizons) == sorted(set(self.horizons)), self, "horizons",
               self.horizons, "a non-empty increasing tuple of step counts >= 1")
        _check(self.scatter_horizon in self.horizons, self, "scatter_horizon", self.scatter_horizon,
               f"one of horizons {self.horizons}")
        _check(len(self.t_ms) > 0 and all(t >= 1 for t in self.t_ms), self, "t_ms", self.t_ms,
               "a non-empty tuple of ints >= 1")
        _check(len(self.alphas) > 0 and all(math.isfinite(a) for a in self.alphas), self,
               "alphas", self.alphas, "a non-empty tuple of finite numbers")


@dataclass(frozen=True)
class MTTConfig:
    """Matching training trajectories, MTT (Cazenavette et al. 2022), Algorithm 1.

    Each step starts a student at a checkpoint ``t < max_start`` of the expert
    buffer, takes ``syn_steps`` (N) SGD steps on synthetic batches of
    ``batch_syn`` (None: the whole set) with a learnable step size, and
    matches the checkpoint ``t + expert_steps`` (M). Images: SGD, ``lr_img``,
    ``momentum`` (the authors' 0.5). The student step size starts at
    ``lr_init`` (None: the expert's, as in MTT) and is learned as its
    *logarithm* with SGD at ``lr_lr`` (ours: MTT learns the raw rate, at
    1e-5 to 1e-7). Defaults: MTT's CIFAR-10 IPC 10 row (N = 30, M = 2,
    5,000 iterations); the book has no ZCA, so ``lr_img`` is the IPC 1/50 value 1,000.

    The expert is the one buffer :mod:`ddrepro.trajectory` caches for EAD too
    (``expert_epochs``, ``expert_lr``, ``expert_batch``, ``checkpoint_every``:
    the same fields and defaults as ``EADConfig``, so equal values share one
    artifact). MTT records a checkpoint per epoch; here M and ``max_start``
    count checkpoints of the shared buffer, one every ``checkpoint_every``
    updates, which equals MTT's unit only when that is an epoch.
    """

    steps: int = 5000
    syn_steps: int = 30
    expert_steps: int = 2
    max_start: int = 20
    batch_syn: int | None = None
    lr_img: float = 1000.0
    lr_lr: float = 0.01
    lr_init: float | None = None
    momentum: float = 0.5
    expert_epochs: int = 50
    expert_lr: float = 0.01
    expert_batch: int = 256
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        _positive(self, "steps", "syn_steps", "expert_steps", "max_start", "lr_img", "lr_lr",
                  "expert_epochs", "expert_lr", "expert_batch", "checkpoint_every")
        _check(self.batch_syn is None or self.batch_syn > 0, self, "batch_syn", self.batch_syn, "> 0 or None")
        _check(self.lr_init is None or self.lr_init > 0, self, "lr_init", self.lr_init, "> 0 or None")
        _check(0.0 <= self.momentum < 1.0, self, "momentum", self.momentum, "in [0, 1)")


__all__ = ["BiasConfig", "BudgetConfig", "EADConfig", "MTTConfig", "PoisonConfig", "ToyConfig"]
