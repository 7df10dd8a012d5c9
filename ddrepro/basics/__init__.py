"""Chapter 1, Basics (``book/01_basics``): what DD is and whether it works.

Its study code is small: the settings of the 2-D toy and the budget study
(:mod:`.config`, profile sections ``toy`` and ``budget``) and the "does it
work?" grid (:mod:`.grids`). Everything else it runs is the engine.
Importing the package registers its profile sections and grid.
"""

from . import grids, profile  # noqa: F401  (register the sections and the grid)
