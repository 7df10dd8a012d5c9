"""The three run profiles: the engine's values here, each chapter's in its study package.

``smoke``  seconds per chapter: proves the code path (tests, CI), not the claim.
``cpu``    the default: real MNIST/Fashion-MNIST, small nets and few steps, so a
           chapter runs in minutes on 2 cores and each qualitative claim shows.
``paper``  the papers' own hyperparameters (the config defaults); for a GPU.

A :class:`Profile` has the engine's sections as fields (``data``, ``net``,
``aug``, ``eval``, ``full``, one per condenser) and, beside them, the sections
that the chapters' study packages register with :func:`register_section`
(``privacy``, ``poison``, ``bias``, ...), each with its values for the three
profiles. This module imports no study package: :func:`get_profile` finds them
through :func:`ddrepro.studies.load_studies`. Either kind of section reads the
same way, ``prof.dm.steps`` or ``prof.poison.rate``.

A chapter's ``parameters`` cell holds ``profile = "cpu"`` and an ``overrides``
dict of dotted keys, e.g. ``{"dm.steps": 500, "poison.rate": 0.01}``;
:func:`get_profile` applies and validates them before any compute.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, fields
from typing import Any, Iterator, Mapping

from .condense.ead import EADConfig
from .condense.mtt import MTTConfig
from .config import (
    AugConfig, DataConfig, DMConfig, EvalConfig, GMConfig, HerdingConfig,
    KIPConfig, MMDConfig, NetConfig, replace_checked,
)
from .registry import Registry

PROFILE_NAMES = ("smoke", "cpu", "paper")

# Chapter 1's table, in its order; any registered condenser may be named instead.
BASICS_METHODS = ("random", "herding", "dc", "dsa", "dm", "mmd", "kip")


def condenser_names() -> list[str]:
    """The methods registered in :data:`ddrepro.condense.CONDENSERS` (the one list of methods)."""
    from .condense import CONDENSERS

    return CONDENSERS.names()


@dataclass(frozen=True)
class Section:
    """A study package's profile section: its config class and its value under each profile."""

    name: str
    config_cls: type
    values: Mapping[str, Any]
    owner: str


SECTIONS: Registry[Section] = Registry("profile section")


def register_section(name: str, config_cls: type, *, smoke: Any, cpu: Any, paper: Any = None,
                     owner: str = "", replace: bool = False) -> Section:
    """Add section ``name`` (``prof.<name>``, overrides ``-p <name>.<field> V``) to every profile.

    ``smoke``, ``cpu`` and ``paper`` are instances of the frozen dataclass
    ``config_cls`` (``paper`` defaults to ``config_cls()``: the papers' values
    are the class defaults). A study package calls this once, at import.
    """
    engine = {f.name for f in fields(Profile)}
    if name in engine:
        raise ValueError(f"profile section {name!r} is an engine field of Profile; choose another name.")
    if not (dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen):
        raise ValueError(f"section {name!r}: {config_cls!r} must be a frozen dataclass.")
    values = {"smoke": smoke, "cpu": cpu, "paper": config_cls() if paper is None else paper}
    for profile, value in values.items():
        if not isinstance(value, config_cls):
            raise ValueError(f"section {name!r}: the {profile} value is a {type(value).__name__}, "
                             f"not a {config_cls.__name__}.")
    section = Section(name, config_cls, values, owner)
    existing = SECTIONS._items.get(name)
    if existing is not None and not replace and existing.config_cls is config_cls:
        replace = True  # the same package imported again (a re-run notebook cell, importlib.reload)
    SECTIONS.register(name, replace=replace)(section)
    return section


@dataclass(frozen=True)
class Profile:
    """Everything a chapter run depends on, resolved and validated.

    The engine's sections are fields; the study packages' sections are the
    ``(name, config)`` pairs of ``sections``, read as attributes
    (``prof.poison``).
    """

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
    ead: EADConfig = EADConfig()
    mtt: MTTConfig = MTTConfig()  # MTT, Chapter 5's baseline, with its authors' expert buffer
    sections: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.ipcs or any(int(i) < 1 for i in self.ipcs):
            raise ValueError(f"Profile.ipcs = {self.ipcs!r}: every ipc must be >= 1.")
        known = condenser_names()
        unknown = sorted(set(self.methods) - set(known))
        if unknown:
            raise ValueError(
                f"Profile.methods names unknown method(s) {unknown}; known: {', '.join(known)}."
            )

    def __getattr__(self, key: str) -> Any:
        # Only called when ``key`` is no field: look it up among the study sections.
        for name, value in self.__dict__.get("sections", ()):
            if name == key:
                return value
        if key.startswith("__"):
            raise AttributeError(key)
        names = [name for name, _ in self.__dict__.get("sections", ())]
        raise AttributeError(f"Profile has no section {key!r}; study sections: {', '.join(names) or 'none'}.")

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
    ead=EADConfig(expert_epochs=1, checkpoint_every=1, t_m=1, steps=2, batch_real=8),
    mtt=MTTConfig(steps=2, syn_steps=2, expert_steps=1, max_start=1, expert_epochs=1, n_experts=2),
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
    # EAD (Chapter 5): a 2-epoch expert (40 updates, 10 checkpoints), 80 steps on batches of 32
    # real and 20 synthetic images at 3 checkpoints (a step's double backward through the
    # synthetic batch dominates: ~0.5 s for 20 images at t_m=3, 9 s for 100 at t_m=5 on a
    # loaded 2-core CPU). Measured cold with Chapter 1's cache warm, one thread (2026-12-04, CPU
    # s): ead 386 and ead_ablations 545 (run side by side on one cache), estimator 124,
    # ead_privacy 210. lr_img = lr_label = 0.003: the best of (0.003, 0.01, 0.03) on the
    # validation split of book/05_effect_alignment/ead_ablations.md (MNIST IPC 1: 62.9, 61.4,
    # 57.1 %).
    ead=EADConfig(expert_epochs=2, checkpoint_every=4, t_m=3, steps=80, lr_img=0.003,
                  lr_label=0.003, batch_real=32, batch_syn=20, expert_lr=0.05),
    # MTT with its authors' buffer (buffer.py): 3 experts trained with DSA at a constant rate
    # (EAD's expert_lr), 5 epochs each, a checkpoint per epoch; 100 iterations of N = 10 student
    # steps (DSA on each) on batches of 20 (EAD's batch_syn), M = 2 epochs, starts at epochs 0-2.
    # lr_img = 10 is MNIST's choice under the earlier single decayed expert; each data set runs
    # its own (the effects section's `mtt_lr_img`, re-checked on ead_ablations). A step: ~0.8-1.9 s
    # at IPC 1 on a loaded 2-core CPU before the student's DSA; the buffer: 15 expert-epochs with
    # DSA per data set and seed, ~10 s each on one thread (5000 MNIST images, measured
    # 2026-12-07), so ~2.6 min per buffer.
    mtt=MTTConfig(steps=100, syn_steps=10, expert_steps=2, max_start=3, batch_syn=20, lr_img=10.0,
                  expert_epochs=5, expert_lr=0.05, n_experts=3),
)

_PAPER = Profile(name="paper")

_ENGINE: dict[str, Profile] = {p.name: p for p in (_SMOKE, _CPU, _PAPER)}


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


def _with_sections(profile: Profile) -> Profile:
    """``profile`` (the engine's values) with every registered study section's value for it."""
    from .studies import load_studies

    load_studies()
    pairs = tuple((name, SECTIONS.get(name).values[profile.name]) for name in SECTIONS.names())
    return dataclasses.replace(profile, sections=pairs)


def section_names() -> list[str]:
    """Every section a dotted override may name: the engine's fields, then the studies'."""
    from .studies import load_studies

    load_studies()
    return [f.name for f in fields(Profile) if f.name not in ("name", "sections")] + SECTIONS.names()


def get_profile(name: str = "cpu", overrides: Mapping[str, Any] | None = None) -> Profile:
    """Return profile ``name`` with dotted-key ``overrides`` applied and validated.

    >>> get_profile("cpu", {"dm.steps": 100}).dm.steps
    100
    """
    if name not in _ENGINE:
        raise ValueError(f"Unknown profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}.")
    profile = _with_sections(_ENGINE[name])
    studies = dict(profile.sections)
    by_section: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    top_fields = {f.name: f for f in fields(Profile) if f.name != "sections"}
    for key, value in (overrides or {}).items():
        section, _, leaf = key.partition(".")
        if (section not in top_fields and section not in studies) or section == "name":
            raise ValueError(
                f"Unknown profile field {key!r}; valid sections: {', '.join(section_names())}."
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
        elif section in studies:
            raise ValueError(f"Profile field {section!r} is a section: override its fields "
                             f"({section}.FIELD), not the whole section.")
        else:
            top[section] = _coerce(value, top_fields[section].type, key)
    changes = dict(top)
    for section, leaves in by_section.items():
        current = changes.get(section, getattr(profile, section))
        if section in studies:
            studies[section] = replace_checked(current, **leaves)
        else:
            changes[section] = replace_checked(current, **leaves)
    if studies != dict(profile.sections):
        changes["sections"] = tuple(studies.items())
    return dataclasses.replace(profile, **changes) if changes else profile


class _Profiles(MappingABC):
    """``PROFILES[name]``: the resolved profile, study sections included (read-only)."""

    def __getitem__(self, name: str) -> Profile:
        if name not in _ENGINE:
            raise KeyError(name)
        return get_profile(name)

    def __iter__(self) -> Iterator[str]:
        return iter(PROFILE_NAMES)

    def __len__(self) -> int:
        return len(PROFILE_NAMES)


PROFILES: Mapping[str, Profile] = _Profiles()


__all__ = ["Profile", "PROFILES", "PROFILE_NAMES", "BASICS_METHODS", "SECTIONS", "Section",
           "condenser_names", "get_profile", "register_section", "section_names"]
