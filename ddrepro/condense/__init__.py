"""Condensers: one file per method, one interface (:func:`condense`).

Importing this package registers every method in :data:`CONDENSERS`.
"""

from . import random  # noqa: F401  (registers "random")
from .base import CONDENSERS, Condenser, Context, condense, initial_synthetic, register

__all__ = ["CONDENSERS", "Condenser", "Context", "condense", "initial_synthetic", "register"]
