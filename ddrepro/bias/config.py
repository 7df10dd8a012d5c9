"""Chapter 4's study settings (profile section ``bias``), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import _check, _positive


@dataclass(frozen=True)
class BiasConfig:
    """Chapter 4, Lu et al., dataset bias in DD: CMNIST-DD and CCIFAR10-DD.

    ``ratios``: percentages of bias-aligned training images (paper: 0, 10, 50, 80, 95,
    100; 10 % is the colour-independent set, every colour 10 % of a class, and 0 % the
    anti-correlated one, a digit never in its own colour); ``severity`` of the colour/corruption
    shortcut (1-4; paper's Table 1: 4) and ``severities`` for Table 2 (at ratios 0 and 100); DC/DSA/DM
    at ``ipc`` 50; ``repeats`` distillation seeds per cell, of Tables 1 and 2 and of the debiasing
    study (paper Sec. 4.1: "we repeat each experiment 3 times", mean +- std), each seed redrawing the
    biased training set. Ours: ``dsa_ratios`` and ``dc_ratios`` where DSA and DC
    run beside DM; ``colour_ratio`` where DM and DSA also run without DSA's colour op;
    ``test_aligned`` % aligned images in the evaluation test split (its conflicting part is the
    paper's test set).

    The full-set control (paper Sec. 4.2: SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch
    256, 150 epochs, x0.1 at epochs 50 and 100): ``full_epochs`` (paper: 150; the decays at a third
    and two thirds, :func:`ddrepro.bias.study.paper_decay_epochs`), ``full_seeds`` independent runs
    (paper: 3; each seed redraws the biased set), ``full_ratios`` (where it runs in Table 1),
    ``full_augment`` (``"dsa"``: the synthetic sets' evaluation protocol, colour op included;
    ``"none"``: the paper's plain training). ``full_epoch_candidates``: when non-empty, a reduced
    epoch count chosen per seed among these on a validation split of ``val_per_class`` training
    images per class (disjoint from the training subset, ``test_aligned`` % aligned, scored on its
    conflicting images), never on the test set; empty: ``full_epochs`` as given.

    The debiasing study: ``debias_ratios`` where the condensers are reweighted (and the baselines
    run), ``debias_methods`` (any that honours per-sample weights: DM, DSA, DC), the reweighting's
    KDE ``debias_bandwidth`` (ours, a number or ``"cv"``: chosen per class by cross-validated
    likelihood), ``debias_power`` and ``debias_samplings`` (``"weights"``: a uniform batch, weighted
    class mean; ``"resample"``: the real set redrawn by weight, uniform mean;
    ``ddrepro.bias.debias``). ``baselines``: whether the debiasing grid also runs the selection
    baselines (random and weighted real subsets, DM with the true group weights, the full set
    resampled to balanced groups).
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
    full_seeds: int = 3
    full_ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    full_augment: str = "dsa"
    full_epoch_candidates: tuple[int, ...] = ()
    val_per_class: int = 100
    debias_ratios: tuple[float, ...] = (0.0, 10.0, 50.0, 80.0, 95.0, 100.0)
    debias_methods: tuple[str, ...] = ("dm", "dsa")
    debias_bandwidth: float | str = 0.05
    debias_power: float = 1.0
    debias_samplings: tuple[str, ...] = ("weights", "resample")
    baselines: bool = True

    def __post_init__(self) -> None:
        _check(self.dataset in ("cmnist_dd", "ccifar10_dd"), self, "dataset", self.dataset,
               "'cmnist_dd' or 'ccifar10_dd'")
        for name in ("ratios", "dsa_ratios", "dc_ratios", "full_ratios", "debias_ratios"):
            values = getattr(self, name)
            _check(all(0.0 <= r <= 100.0 for r in values), self, name, values,
                   "a tuple of percentages in [0, 100]")
        _check(len(self.ratios) > 0, self, "ratios", self.ratios, "non-empty")
        # the pages look these cells up among Table 1's: each must be one of `ratios`
        for name in ("dsa_ratios", "dc_ratios", "full_ratios", "debias_ratios"):
            values = getattr(self, name)
            _check(set(values) <= set(self.ratios), self, name, values,
                   f"a subset of ratios {self.ratios} (set both, e.g. -p bias.{name} [...])")
        _check(0.0 <= self.colour_ratio <= 100.0, self, "colour_ratio", self.colour_ratio,
               "a percentage in [0, 100]")
        _check(0.0 < self.test_aligned < 100.0, self, "test_aligned", self.test_aligned,
               "in (0, 100): the test split needs aligned and conflicting images")
        _check(self.severity in (1, 2, 3, 4), self, "severity", self.severity, "one of 1, 2, 3, 4")
        _check(len(self.severities) > 0 and all(s in (1, 2, 3, 4) for s in self.severities), self,
               "severities", self.severities, "a non-empty tuple of values in 1-4")
        _positive(self, "ipc", "repeats", "full_epochs", "full_seeds", "val_per_class")
        _check(self.full_augment in ("dsa", "none"), self, "full_augment", self.full_augment,
               "'dsa' (the synthetic sets' protocol) or 'none' (the paper's plain training)")
        _check(all(isinstance(e, int) and e >= 1 for e in self.full_epoch_candidates)
               and list(self.full_epoch_candidates) == sorted(set(self.full_epoch_candidates)),
               self, "full_epoch_candidates", self.full_epoch_candidates,
               "() or increasing epoch counts >= 1 (chosen on the validation split)")
        _check(len(self.debias_samplings) > 0
               and set(self.debias_samplings) <= {"weights", "resample"}, self, "debias_samplings",
               self.debias_samplings, "a non-empty tuple of 'weights', 'resample'")
        _check(len(self.debias_methods) > 0 and all(m in ("dm", "dsa", "dc") for m in self.debias_methods),
               self, "debias_methods", self.debias_methods,
               "a non-empty tuple of 'dm', 'dsa', 'dc' (condensers with per-sample weights)")
        _check(self.debias_bandwidth == "cv" if isinstance(self.debias_bandwidth, str)
               else self.debias_bandwidth > 0, self, "debias_bandwidth", self.debias_bandwidth,
               "> 0 or 'cv' (cross-validated likelihood, ddrepro.bias.debias.select_bandwidth)")
        _check(0.0 < self.debias_power <= 1.0, self, "debias_power", self.debias_power, "in (0, 1]")


__all__ = ["BiasConfig"]
