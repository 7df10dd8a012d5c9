"""The three run profiles, defined in this one place.

``smoke``  seconds per chapter: proves the code path (tests, CI), not the claim.
``cpu``    the default: real MNIST/Fashion-MNIST, small nets and few steps, so a
           chapter runs in minutes on 2 cores and each qualitative claim shows.
``paper``  the papers' own hyperparameters (the config defaults); for a GPU.

A chapter's ``parameters`` cell holds ``profile = "cpu"`` and an ``overrides``
dict of dotted keys, e.g. ``{"dm.steps": 500, "eval.n_models": 3}``;
:func:`get_profile` applies and validates them before any compute.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields
from typing import Any, Mapping

from .config import (
    AugConfig, DataConfig, DMConfig, EvalConfig, GMConfig, HerdingConfig,
    KIPConfig, MMDConfig, NetConfig, replace_checked,
)
from .privacy_config import CritiqueStudyConfig, GeneratorStudyConfig, PrivacyConfig
from .study_config import BiasConfig, BudgetConfig, EADConfig, MTTConfig, PoisonConfig, ToyConfig
from .tuning import StepSizeChoice

# Chapter 1's table, in its order; any registered condenser may be named instead.
BASICS_METHODS = ("random", "herding", "dc", "dsa", "dm", "mmd", "kip")


def condenser_names() -> list[str]:
    """The methods registered in :data:`ddrepro.condense.CONDENSERS` (the one list of methods)."""
    from .condense import CONDENSERS  # lazy: importing condensers loads torch

    return CONDENSERS.names()


@dataclass(frozen=True)
class Profile:
    """Everything a chapter run depends on, resolved and validated."""

    name: str
    data: DataConfig = DataConfig()
    net: NetConfig = NetConfig()
    aug: AugConfig = AugConfig()
    eval: EvalConfig = EvalConfig()
    # Training on the whole real set (the ceiling every table reports): far
    # more images, so far fewer epochs than training on a synthetic set.
    full: EvalConfig = EvalConfig(epochs=50, n_models=2)
    ipcs: tuple[int, ...] = (1, 10, 50)
    methods: tuple[str, ...] = BASICS_METHODS
    herding: HerdingConfig = HerdingConfig()
    dm: DMConfig = DMConfig()
    dc: GMConfig = GMConfig(dsa=False)
    dsa: GMConfig = GMConfig(dsa=True)
    mmd: MMDConfig = MMDConfig()
    kip: KIPConfig = KIPConfig()
    toy: ToyConfig = ToyConfig()
    budget: BudgetConfig = BudgetConfig()
    # the study chapters' sections (ddrepro/study_config.py)
    privacy: PrivacyConfig = PrivacyConfig()
    poison: PoisonConfig = PoisonConfig()
    bias: BiasConfig = BiasConfig()
    ead: EADConfig = EADConfig()
    critique: CritiqueStudyConfig = CritiqueStudyConfig()
    generators: GeneratorStudyConfig = GeneratorStudyConfig()  # Chapter 2, book/02_privacy/generators
    mtt: MTTConfig = MTTConfig()  # Chapter 5's trajectory-matching baseline, on EAD's expert buffer
    # MTT's image step per data set, chosen on its validation split (book/05_effect_alignment/
    # ead_ablations.md); the table runs mtt_lr_img.apply(mtt, data set), not mtt.lr_img alone
    mtt_lr_img: StepSizeChoice = StepSizeChoice()

    def __post_init__(self) -> None:
        if not self.ipcs or any(int(i) < 1 for i in self.ipcs):
            raise ValueError(f"Profile.ipcs = {self.ipcs!r}: every ipc must be >= 1.")
        known = condenser_names()
        unknown = sorted(set(self.methods) - set(known))
        if unknown:
            raise ValueError(
                f"Profile.methods names unknown method(s) {unknown}; known: {', '.join(known)}."
            )

    def condenser_config(self, method: str) -> Any:
        """The config ``method`` runs with under this profile: its section when the profile has
        one (``dm``, ``dc``, ...), else the method's registered default (None for ``random``)."""
        from .condense import CONDENSERS

        condenser = CONDENSERS.get(method)  # unknown names list the registered ones
        section = getattr(self, method, None)
        if condenser.config_cls is not None and isinstance(section, condenser.config_cls):
            return section
        if condenser.config_cls is None:
            return None
        return condenser.default_config if condenser.default_config is not None else condenser.config_cls()


_SMOKE = Profile(
    name="smoke",
    data=DataConfig(train_per_class=20, test_size=200),
    net=NetConfig(width=8, depth=2),
    eval=EvalConfig(epochs=2, n_models=2, batch_size=64),
    full=EvalConfig(epochs=1, n_models=1, batch_size=64, augment="none"),
    ipcs=(1, 2),
    herding=HerdingConfig(embed_epochs=1),
    dm=DMConfig(steps=2, batch_real=8),
    dc=GMConfig(steps=2, outer_loops=1, inner_loops=1, batch_real=8, batch_train=16),
    dsa=GMConfig(steps=2, outer_loops=1, inner_loops=1, batch_real=8, batch_train=16,
                 dsa=True),
    mmd=MMDConfig(steps=2, batch_real=8),
    kip=KIPConfig(steps=2, batch_real=40),
    toy=ToyConfig(n_points=200, steps=3, epochs=3),
    budget=BudgetConfig(steps=(1, 2), val_per_class=10),
    privacy=PrivacyConfig(members_per_class=20, r_ipcs=(0.05,), mia_preparations=1, mia_n=5,
                          shadows=2, kip_shadows=2, other_r_ipcs=(0.05,), dsa_steps=1,
                          lira_r_ipc=0.05, lira_targets=1, lira_probes_per_class=4,
                          control_per_class=4, control_epochs=1, theory_per_class=20,
                          theory_width=8, theory_steps=5),
    poison=PoisonConfig(dataset="fashion_mnist", ipc=2, targets=1, runs=1, attack_steps=2,
                        restarts=1, pretrained=1, pretrain_epochs=1, gm_targets=1, power_iterations=2,
                        dm_steps=2, batch_real=8,
                        direct_targets=1, defenses=("dm", "median", "rdm"), deviation_n=2000,
                        deviation_trials=2, baseline_targets=1, sweep_targets=1, sweep_eps=(16 / 255, 64 / 255),
                        sweep_steps=(1, 2), adaptive_targets=1, untargeted_rates=(0.05, 0.1),
                        untargeted_anchors=4),
    bias=BiasConfig(ratios=(0.0, 95.0, 100.0), severities=(3, 4), ipc=2, repeats=2,
                    dsa_ratios=(95.0,), dc_ratios=(), full_epochs=1, full_models=1,
                    full_ratios=(0.0, 95.0, 100.0), debias_ratios=(95.0,), debias_methods=("dm",)),
    ead=EADConfig(expert_epochs=1, checkpoint_every=1, t_m=1, steps=2, batch_real=8, pairs=6,
                  horizons=(1, 2), scatter_horizon=2, t_ms=(1,), alphas=(0.0,), val_per_class=10),
    critique=CritiqueStudyConfig(val_per_class=10, baseline_per_class=(1, 2), ci_repeats=3,
                                 dp_epsilons=(4.0,), dp_per_class=10, dp_epochs=1, dp_batch=20,
                                 canaries=6, canary_pool_per_class=10, canary_shadows=2,
                                 canary_targets=2, canary_ipc=1),
    generators=GeneratorStudyConfig(cgan_steps=20, cgan_batch=16, cgan_width=16, cgan_r_ipcs=(0.05, 0.1),
                                    merf_features=64, merf_steps=5, merf_batch=20, leak_samples=5,
                                    leak_queries=8, tsne_per_class=3, match_queries=2),
    mtt=MTTConfig(steps=2, syn_steps=2, expert_steps=1, max_start=1, expert_epochs=1, checkpoint_every=1),
    mtt_lr_img=StepSizeChoice(values=(10.0, 1000.0)),
)

# Sized so that Chapter 1 runs in <= 15 min on 2 cores (measured per method
# with a calibration run; see the engine issue's notes): width-32 ConvNets,
# 500 real images per class, 2 evaluation networks of 100 epochs.
_CPU = Profile(
    name="cpu",
    data=DataConfig(train_per_class=500, test_size=2000),
    net=NetConfig(width=32, depth=3),
    eval=EvalConfig(epochs=100, n_models=2),
    full=EvalConfig(epochs=5, n_models=1, augment="none"),
    ipcs=(1, 10),
    herding=HerdingConfig(embed_epochs=2),
    dm=DMConfig(steps=150, batch_real=32),
    # Gradient matching is the costliest family: two matching points per
    # network instead of the papers' 1-50, and 100 networks instead of 1000.
    # 100 is the smallest budget of book/01_basics/budget.md at which both DC and
    # DSA come within 3 points of herding at MNIST IPC 1 on the *validation* split
    # (DC 79.4 vs 80.1, DSA 82.8; at 40: 72.5 and 78.0), and it keeps Chapter 1
    # within 15 minutes on 2 cores.
    dc=GMConfig(steps=100, outer_loops=2, inner_loops=5, batch_real=32, batch_train=64),
    dsa=GMConfig(steps=100, outer_loops=2, inner_loops=5, batch_real=32, batch_train=64,
                 dsa=True),
    mmd=MMDConfig(steps=150, batch_real=32),
    kip=KIPConfig(steps=100, batch_real=1000),
    budget=BudgetConfig(steps=(40, 100, 200, 400), val_per_class=100),
    # Sizes the study chapters' issues state for this profile; each chapter
    # calibrates the rest of its section when it is written.
    # Chapter 2 (book/02_privacy/claims.md): |T| = 500 per class as the issue states; the
    # syntheses and victims shortened so the notebook stays within 15 minutes on 2 cores.
    # Measured cold, one thread (2026-12-04): grid 542 s + notebook 94 s of CPU, 10.6 min.
    privacy=PrivacyConfig(members_per_class=500, mia_preparations=3, mia_n=500, shadows=16,
                          kip_shadows=16, other_r_ipcs=(0.01,), dm_steps=40, dsa_steps=10,
                          eval_epochs=30, lira_targets=2, lira_probes_per_class=100,
                          control_per_class=50, control_epochs=30, theory_per_class=100),
    # Chapter 3: 300 DM steps from noise is where the synthetic images stop looking like
    # noise at batch_real 32 (150 do not); T = 100 attack steps of 1/255 can reach
    # 64/255; R = 2 restarts. Sized from one measured cell (target 0, `poison_cell`, 1 thread,
    # load ~3 on 2 cores): 70 s, of which crafting the poisons 6 s (cached, so a target's
    # defenses share it), DM's 300 steps 51 s, the victim ~13 s; an RDM-DC cell 58 s with the
    # poisons cached. The condensation dominates, so a page costs ~35 s per cell on 2
    # uncontended cores and holds <= 23 cells (<= 15 min):
    # At the paper's 1 % nothing flips at this scale, not even the direct attack (IPC 1 and 10,
    # noise or real init, 100-300 steps; book/03_poisoning/attack_and_defense.md's probe table);
    # at 3 % (30 % of the class) the direct attack flips a target, so the table runs there
    # (ours; 3 % is the largest rate whose k = ceil(3 eps_p 32) stays below batch_real):
    # attack_and_defense: 3 clean + 8 targets x direct {DM, RDM-DC} + Median on target 0 = 20
    # cells. With DM poisoning on 2 targets {DM, RDM-DC, Median} it was 25 cells, cold on 2 idle
    # cores 857 s with `--executor ray` (1 thread a job) before the notebook, and a cell takes
    # 36 s on 2 threads against 61 s on one (2026-12-04): over 15 minutes either way. Its DM
    # poisoning at table_rate runs on beyond (the "mean" cells, against DM and RDM-DC), at 1 % on
    # poison_sweep, so the table keeps the direct attack's 8 targets (2 of 8 flip);
    # poison_sweep (at 1 %): 1 clean + 2 targets x (eps {16, 64, 128}/255 at T = 100, T {30, 300} at
    # 64/255, direct vs DM and RDM-DC) = 15 cells (the attack at T = 300 adds ~20 s a target).
    # Cold on 2 idle cores (2026-12-04): attack_and_defense 12m19s with the local executor (two
    # torch threads), poison_sweep 7m45s and beyond 12m38s with "auto" (Ray, one thread a job;
    # beyond took 17m02s locally: its adaptive crafting gains little from a second thread), the
    # pages' default.
    # beyond (ours): 2 clean + 2 targets x (DM poisoning vs DM and RDM-DC, the "through" and "spread"
    # attacks vs RDM-DC) at table_rate + untargeted at 1 and 10 % vs DM and RDM-DC + RDM-DC's clean
    # reference at both rates = 16 cells, 6 of them attack_and_defense's (clean, DM poisoning).
    # Measured cells (1 thread, nice 19, load 5-6 on 2 cores, CPU seconds): clean DM 69, clean
    # RDM-DC 57, DM poisoning vs DM 82 (crafting 40) and vs RDM-DC 56, "through" vs RDM-DC 129
    # (crafting 99: the whole class of 500 goes through the network per step), "spread" 131 (75).
    # Gradient matching is not run in a page at cpu (gm_targets = 0: its 16 networks of 40 epochs
    # are the paper profile's); 4 networks of <= 8 epochs size benchmarks/bench_poison_attacks.py.
    poison=PoisonConfig(dataset="fashion_mnist", ipc=10, targets=8, runs=1, attack_steps=100,
                        restarts=2, dm_steps=300, batch_real=32, victims=1,
                        defenses=("dm", "median", "rdm"), baseline_targets=1, direct_targets=8,
                        table_rate=0.03, dm_poison_targets=0, gm_targets=0,
                        sweep_targets=2, sweep_eps=(16 / 255, 64 / 255, 128 / 255),
                        sweep_steps=(30, 100, 300), adaptive_targets=2, untargeted_rates=(0.01, 0.1),
                        pretrained=4, pretrain_epochs=8),
    # Chapter 4: the full-set control needs 50 epochs on 500 images per class to learn the
    # digits' shape at 95 % aligned (conflicting-digit accuracy 17.5 % at 5 epochs, 60.2 % at
    # 20, 78.9 % at 50; book/04_bias/cmnist), so it runs at 95 and 100 % only, the two ratios
    # the paper's claims are about. Cold, one thread, load ~4.5: a DM cell ~50 s + its
    # evaluation ~33 s, a DSA cell ~220 s, a full-set control ~280 s; with the control at 0 %
    # too the cmnist page took > 20 min of one core, over the budget. Without it, cold on 2 idle
    # cores (2 threads, 2026-12-04): 13m02s wall; then, one thread, shortcut 319 s and debiased
    # 682 s of CPU.
    bias=BiasConfig(ipc=10, severities=(3, 4), repeats=3, dsa_ratios=(80.0, 95.0), dc_ratios=(),
                    full_epochs=50, full_models=1, full_ratios=(95.0, 100.0),
                    debias_ratios=(80.0, 95.0), debias_methods=("dm",)),
    # Chapter 5: a 2-epoch expert (40 updates, 10 checkpoints), 80 EAD steps on batches of 32
    # real and 20 synthetic images at 3 checkpoints (a step's double backward through the
    # synthetic batch dominates: ~0.5 s for 20 images at t_m=3, 9 s for 100 at t_m=5 on a
    # loaded 2-core CPU), the estimator study on 200 (G, A) pairs of 8x8 digits. Measured cold
    # with Chapter 1's cache warm, one thread (2026-12-04, CPU s): ead 386 and ead_ablations 545
    # (run side by side on one cache), estimator 124, ead_privacy 210.
    # lr_img = lr_label = 0.003: the best of (0.003, 0.01, 0.03) on the validation split of
    # book/05_effect_alignment/ead_ablations.md (MNIST IPC 1: 62.9, 61.4, 57.1 %).
    ead=EADConfig(expert_epochs=2, checkpoint_every=4, t_m=3, steps=80, lr_img=0.003,
                  lr_label=0.003, batch_real=32, batch_syn=20, expert_lr=0.05, pairs=200,
                  t_ms=(1, 3, 5), alphas=(0.0, 1.0), val_per_class=100),
    # Chapter 2's critique (book/02_privacy/critique.md): the LiRA study of `privacy` reused
    # (16 shadows, 2 targets); DP-SGD on 100 members per class; 40 canaries in a pool of 100
    # images per class, 8 shadows and 2 targets. Cold, 1 thread, load 9-10 on 2 cores: a DM
    # LiRA synthesis 20-35 s (shared with `claims`), a baseline size 75-190 s (20 per class:
    # 290 s, dropped: it only brackets DM's accuracy from above, as 10 already does), a DP-SGD
    # run ~40 s, a canary synthesis ~19 s, the canary models on T 216 s; the notebook on a
    # warm cache 140 s. Measured cold, one thread (2026-12-04): grid 619 s + notebook 92 s of
    # CPU, 11.9 min (in a book build its LiRA syntheses come from claims' cache).
    critique=CritiqueStudyConfig(val_per_class=100, baseline_per_class=(1, 2, 5, 10),
                                 ci_repeats=10, dp_per_class=100, dp_epochs=10, dp_batch=128,
                                 canaries=40, canary_pool_per_class=100, canary_shadows=8,
                                 canary_targets=2, canary_ipc=5),
    # Chapter 2, generators: an MLP cGAN of 3,000 steps (59.8 % at 10 images per class in the
    # page's cpu run; a first version without batch norm and a projection critic gave 28 % at
    # the same size), DP-MERF with 1,000 features fitted 1,000 steps; the whole page took
    # 285-315 s of CPU on one thread, cold (book/02_privacy/generators).
    generators=GeneratorStudyConfig(cgan_steps=3000, merf_features=1000, merf_steps=1000,
                                    merf_batch=200, leak_samples=500, leak_queries=500),
    # MTT on the same expert buffer as EAD (same four expert fields: one cached artifact), 100
    # iterations of N = 10 student steps on batches of 20 (EAD's batch_syn), M = 2 checkpoints.
    # lr_img = 10 is MNIST's choice; each data set runs its own (`mtt_lr_img` below). A step:
    # ~0.8-1.9 s at IPC 1 on a loaded 2-core CPU.
    mtt=MTTConfig(steps=100, syn_steps=10, expert_steps=2, max_start=8, batch_syn=20, lr_img=10.0,
                  expert_epochs=2, checkpoint_every=4, expert_lr=0.05),
    # MTT's image step per data set: the best of `values` on each data set's validation split at
    # IPC 1 (book/05_effect_alignment/ead_ablations.md, whose scorecard checks these against its
    # sweep). Validation accuracy at 1 / 3 / 10 / 30 (one thread, seed 0): MNIST 66.3 / 72.6 /
    # 74.2 / 71.2 % (100: 61.8, 1000: 50.9, an earlier session's); Fashion-MNIST 57.6 / 58.4 /
    # 50.9 / 40.7 % (0.3: 56.4, 100: 41.3; 100 validation images per class). MNIST's 10 is also
    # `mtt.lr_img`, so its MTT runs keep their cache keys. An MTT run at IPC 1 with its
    # evaluation on the validation images: ~25-40 s of one core, so the 8 runs ~4 min.
    mtt_lr_img=StepSizeChoice(values=(1.0, 3.0, 10.0, 30.0),
                              chosen=(("mnist", 10.0), ("fashion_mnist", 3.0))),
)

_PAPER = Profile(name="paper")

PROFILES: dict[str, Profile] = {p.name: p for p in (_SMOKE, _CPU, _PAPER)}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check an override's type against the field's annotation (papermill passes strings)."""
    hint = annotation if not isinstance(annotation, str) else eval(annotation, vars(typing))  # noqa: S307
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:  # e.g. float | str: the first type the value converts to
            for option in options:
                try:
                    return _coerce(value, option, key)
                except ValueError:
                    continue
            raise ValueError(f"Override {key!r} expects one of {options}, got {value!r}.")
        hint = options[0]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(value)
        raise ValueError(f"Override {key!r} expects a list/tuple, got {value!r}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"Override {key!r} expects true/false, got {value!r}.")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"Override {key!r} expects a number, got {value!r}.")
        kind = "an integer" if hint is int else "a number"
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Override {key!r} expects {kind}, got {value!r}.") from None
        if hint is int:
            if not number.is_integer():
                raise ValueError(f"Override {key!r} expects {kind}, got {value!r}.")
            return int(number)
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"Override {key!r} expects a string, got {value!r}.")
        return value
    return value


def get_profile(name: str = "cpu", overrides: Mapping[str, Any] | None = None) -> Profile:
    """Return profile ``name`` with dotted-key ``overrides`` applied and validated.

    >>> get_profile("cpu", {"dm.steps": 100}).dm.steps
    100
    """
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose one of: {', '.join(PROFILES)}.")
    profile = PROFILES[name]
    by_section: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    top_fields = {f.name: f for f in fields(Profile)}
    for key, value in (overrides or {}).items():
        section, _, leaf = key.partition(".")
        if section not in top_fields or section == "name":
            raise ValueError(
                f"Unknown profile field {key!r}; valid sections: "
                f"{', '.join(n for n in top_fields if n != 'name')}."
            )
        if leaf:
            sub = getattr(profile, section)
            if not dataclasses.is_dataclass(sub):
                raise ValueError(f"Profile field {section!r} has no sub-field {leaf!r}.")
            sub_fields = {f.name: f for f in fields(sub)}
            if leaf not in sub_fields:
                raise ValueError(
                    f"Unknown profile field {key!r}; {section} has: {', '.join(sub_fields)}."
                )
            by_section.setdefault(section, {})[leaf] = _coerce(
                value, sub_fields[leaf].type, key
            )
        else:
            top[section] = _coerce(value, top_fields[section].type, key)
    changes = dict(top)
    for section, leaves in by_section.items():
        changes[section] = replace_checked(changes.get(section, getattr(profile, section)), **leaves)
    return dataclasses.replace(profile, **changes) if changes else profile


__all__ = ["Profile", "PROFILES", "BASICS_METHODS", "condenser_names", "get_profile"]
