"""Chapter 1's profile sections: the 2-D toy and the gradient-matching budget study."""

from __future__ import annotations

from ..profiles import register_section
from .config import BudgetConfig, ToyConfig

register_section(
    "toy", ToyConfig, owner=__name__,
    smoke=ToyConfig(n_points=200, steps=3, epochs=3),
    cpu=ToyConfig(),
)

register_section(
    "budget", BudgetConfig, owner=__name__,
    smoke=BudgetConfig(steps=(1, 2), val_per_class=10),
    cpu=BudgetConfig(steps=(40, 100, 200, 400), val_per_class=100),
)
