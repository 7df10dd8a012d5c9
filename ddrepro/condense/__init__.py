"""Condensers: one file per method, one interface (:func:`condense`).

Importing this package registers every method in :data:`CONDENSERS`.
"""

from . import random  # noqa: F401  (registers "random")
from . import dm  # noqa: F401  (registers "dm")
from . import rdm  # noqa: F401  (registers "rdm", DM with the calibrated mean)
from . import mmd  # noqa: F401  (registers "mmd")
from . import herding  # noqa: F401  (registers "herding")
from . import gm  # noqa: F401  (registers "dc", "dsa")
from . import kip  # noqa: F401  (registers "kip")
from . import ead  # noqa: F401  (registers "ead")
from . import mtt  # noqa: F401  (registers "mtt", on the expert buffer EAD reads)
from .base import CONDENSERS, Condenser, Context, condense, initial_synthetic, register
from .many import condense_many

__all__ = ["CONDENSERS", "Condenser", "Context", "condense", "condense_many", "initial_synthetic",
           "register"]
