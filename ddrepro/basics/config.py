"""Chapter 1's study settings (profile sections ``toy`` and ``budget``), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import _check, _positive


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


__all__ = ["BudgetConfig", "ToyConfig"]
