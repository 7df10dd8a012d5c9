"""The cross-chapter page (``book/06_across``): questions that take two chapters' code at once.

- :mod:`.config`, :mod:`.profile`, :mod:`.grids`: the ``across`` section, its three profiles'
  values and the ``across`` grid;
- :mod:`.study`: what the page measures with the chapters' packages: RDM-DC's calibrated mean
  (Chapter 3) under Chapter 2's LiRA and on Chapter 4's CMNIST-DD, Chapter 4's debiased DM under
  LiRA, and Chapter 5's EAD privacy rows read from the build.

Importing the package registers its profile section and its grid.
"""

from . import grids, profile  # noqa: F401  (register the section and the grid)
