"""Chapter 3's study settings (profile section ``poison``), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import _check, _fractions, _positive


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
    (:data:`ddrepro.poisoning.study.DEFENSES`), the baselines (all but ``dm`` and ``rdm``)
    on the first ``baseline_targets`` targets only; ``direct_targets`` of the targets
    also get the direct attack (Table 5). Attacks: signed Adam with step
    ``attack_lr`` (paper: 1/255); the paper gives no iteration or restart
    counts, so ``attack_steps`` and ``restarts`` are ours (the values of
    Geiping et al.'s Witches' Brew, which the paper's gradient-matching attack
    follows); gradient matching uses ``pretrained`` clean models (paper: 16), trained for up
    to ``pretrain_epochs`` (staggered; the paper gives no count: Witches' Brew's 40).
    Mean calibration: ``power_iterations`` of the power method (Alg. 5; "a few").
    Lemma 4.1 measured (ours): ``deviation_n`` planted Gaussian representations,
    averaged over ``deviation_trials`` draws, each slope measured at ``deviation_seeds``
    independent seeds (the unit its interval resamples). The sweep (ours; the paper gives no T and
    remarks that a small eps leaves DM safe, Sec. 4.3): the first ``sweep_targets``
    targets against plain DM at every ``sweep_eps`` (with T = ``attack_steps``) and every
    ``sweep_steps`` (with the first ``eps``). ``init``: the victim's synthetic images start
    from Gaussian "noise" (the paper's protocol) or from "real" images of the poisoned set
    (Sec. 5.1 calls that vulnerable). The attack-and-defense table (ours, where ``rate`` does
    not bite): ``table_rate`` replaces ``rate`` there (None: ``rate``), DM poisoning runs on the
    first ``dm_poison_targets`` targets (None: all), gradient matching on the first ``gm_targets``
    (None: all), and the baselines join the attacks on the first ``baseline_targets`` too. Beyond the paper (book/03_poisoning/beyond.md): the
    first ``adaptive_targets`` targets get the adaptive attacks ``adaptive_losses`` ("through"
    RDM-DC's calibrated mean of the whole class, "spread" with penalty weight ``spread_weight``,
    "batches" through the calibrated means of the victim's own batches of ``batch_real``) at
    ``table_rate``;
    untargeted DM poisoning at every rate of ``untargeted_rates`` (of every class), its anchors
    ``untargeted_anchors`` clean images of the next class.

    The victim's regime (ours, issue 24; :mod:`ddrepro.poisoning.regime`): ``val_targets``
    validation targets drawn from seeds ``val_seed``, ... (:mod:`ddrepro.poisoning.targets`,
    disjoint in images and class pairs from the evaluated ``targets``) are attacked, DM poisoning at
    every ``regime_eps`` and the direct attack, against plain DM at every ``regime_steps`` (DM
    iterations, at the smallest batch) and every ``regime_batch`` (real batch per class, at the
    fewest steps), at every ``regime_rates`` and at ``rate`` (the paper's; any other rate is a
    labelled deviation, capped so that RDM-DC keeps at least half of each real batch). The
    cheapest point where DM poisoning flips at least ``regime_threshold`` of the validation
    targets is chosen, and with ``use_regime`` the attack-and-defense grid and the misspecified
    defender run there (its DM steps, batch, eps and rate replace ``dm_steps``, ``batch_real``,
    ``eps[0]`` and ``table_rate``). The misspecified defender (ours): RDM-DC told
    ``misspec_scales`` times the true eps_p, or dropping ``k = ceil(f eps_p N)`` for every factor
    ``f`` of ``misspec_factors`` instead of the paper's 3 (the same as telling it ``f/3`` times
    eps_p: ``k`` depends on the product only), on the first ``misspec_targets`` targets.
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
    deviation_seeds: int = 10
    sweep_targets: int = 5
    sweep_eps: tuple[float, ...] = (16 / 255, 64 / 255, 128 / 255)
    sweep_steps: tuple[int, ...] = (60, 240, 480)
    init: str = "noise"
    table_rate: float | None = None
    dm_poison_targets: int | None = None
    gm_targets: int | None = None
    adaptive_targets: int = 5
    adaptive_losses: tuple[str, ...] = ("through", "spread", "batches")
    spread_weight: float = 1.0
    untargeted_rates: tuple[float, ...] = (0.01, 0.1)
    untargeted_anchors: int = 32
    val_targets: int = 5
    val_seed: int = 1000
    regime_rates: tuple[float, ...] = (0.01,)
    regime_steps: tuple[int, ...] = (20_000,)
    regime_batch: tuple[int, ...] = (32, 256)
    regime_eps: tuple[float, ...] = (64 / 255, 128 / 255)
    regime_threshold: float = 0.5
    use_regime: bool = True
    misspec_scales: tuple[float, ...] = (0.5, 2.0, 4.0)
    misspec_factors: tuple[float, ...] = (1.0, 2.0, 4.0)
    misspec_targets: int = 5

    @property
    def search_rates(self) -> tuple[float, ...]:
        """The rates the regime search tries: ``rate`` and ``regime_rates``, ascending."""
        return tuple(sorted({self.rate, *self.regime_rates}))

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
                  "deviation_n", "deviation_trials", "deviation_seeds")
        known = ("dm", "rdm", "median", "trimmed", "truncated")  # ddrepro.poisoning.study.DEFENSES
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
        losses = ("through", "spread", "batches")  # ddrepro.poisoning.poison.POISON_LOSSES, the adaptive ones
        _check(len(self.adaptive_losses) > 0 and set(self.adaptive_losses) <= set(losses)
               and len(set(self.adaptive_losses)) == len(self.adaptive_losses), self, "adaptive_losses",
               self.adaptive_losses, f"a non-empty tuple of distinct names from {losses}")
        _check(isinstance(self.spread_weight, (int, float)) and not isinstance(self.spread_weight, bool)
               and self.spread_weight >= 0, self, "spread_weight", self.spread_weight, ">= 0")
        _fractions(self, "untargeted_rates", self.untargeted_rates, 0.0, 0.5)
        _positive(self, "untargeted_anchors", "val_targets")
        _check(isinstance(self.val_seed, int) and not isinstance(self.val_seed, bool) and self.val_seed >= 0,
               self, "val_seed", self.val_seed, "an integer >= 0")
        _fractions(self, "regime_rates", self.regime_rates, 0.0, 0.5)
        _check(len(set(self.regime_rates)) == len(self.regime_rates), self, "regime_rates",
               self.regime_rates, "distinct rates (the search adds ``rate`` if it is missing)")
        for name in ("regime_steps", "regime_batch"):
            value = getattr(self, name)
            _check(len(value) > 0 and len(set(value)) == len(value)
                   and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in value),
                   self, name, value, "a non-empty tuple of distinct integers >= 1")
        _fractions(self, "regime_eps", self.regime_eps, 0.0, 1.0, closed_high=True)
        _check(isinstance(self.regime_threshold, (int, float)) and not isinstance(self.regime_threshold, bool)
               and 0.0 < self.regime_threshold <= 1.0, self, "regime_threshold", self.regime_threshold,
               "in (0, 1]: the share of validation targets DM poisoning must flip")
        _check(isinstance(self.use_regime, bool), self, "use_regime", self.use_regime, "True or False")
        for name in ("misspec_scales", "misspec_factors"):
            value = getattr(self, name)
            _check(all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value),
                   self, name, value, "a tuple of numbers > 0")
        _check(isinstance(self.misspec_targets, int) and not isinstance(self.misspec_targets, bool)
               and 0 <= self.misspec_targets <= self.targets, self, "misspec_targets",
               self.misspec_targets, "an integer in [0, targets]")


__all__ = ["PoisonConfig"]
