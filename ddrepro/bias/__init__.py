"""Chapter 4, Bias (``book/04_bias``): Lu et al., dataset bias in dataset distillation.

- :mod:`.config`, :mod:`.profile`, :mod:`.grids`: the ``bias`` section, its three profiles'
  values and the ``cmnist`` / ``shortcut`` / ``debiased`` grids;
- :mod:`.biased`, :mod:`.corruptions`: CMNIST-DD and CCIFAR10-DD as the authors' generator
  builds them;
- :mod:`.study`: the chapter's cells (biased splits, distil and score, the full-set control);
- :mod:`.debias`: the reweighting beyond the paper (inverse density in a bias feature space).

Importing the package registers its profile section and grids.
"""

from . import grids, profile  # noqa: F401  (register the section and the grids)
