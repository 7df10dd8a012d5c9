"""Chapter 4, Bias (``book/04_bias``): Lu et al., dataset bias in dataset distillation.

- :mod:`.config`, :mod:`.profile`, :mod:`.grids`: the ``bias`` section, its three profiles'
  values and the ``cmnist`` / ``shortcut`` / ``debiased`` grids;
- :mod:`.biased`, :mod:`.corruptions`: CMNIST-DD and CCIFAR10-DD as the authors' generator
  builds them;
- :mod:`.study`: the chapter's cells (biased splits and the validation split, distil and score,
  the selection baselines, the full-set control with the paper's schedule, group accuracies);
- :mod:`.debias`: the reweighting beyond the paper (inverse density in a bias feature space, as
  weighted means or a resampled set; the effective batch size);
- :mod:`.erm`: a bias feature that does not assume the bias (a briefly trained ERM network's
  embedding);
- :mod:`.measures`: the scorecard's per-seed values, the colour of synthetic digits, the
  recovered share of a gap.

Importing the package registers its profile section and grids.
"""

from . import grids, profile  # noqa: F401  (register the section and the grids)
