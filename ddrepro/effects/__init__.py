"""Chapter 5, Effect alignment (``book/05_effect_alignment``): learning compact data sets by
matching effects (EAD).

- :mod:`.config`, :mod:`.profile`: the ``effects`` section (the estimator study, the
  ablations) and ``mtt_lr_img`` (MTT's image step per data set, chosen on validation);
- :mod:`.influence`: the replacement effect (Def. 3.1), its estimators (Prop. 3.2 derived,
  Eq. 4/5 as printed) and the exact first-order response through the unroll (forward mode),
  checked against coupled retraining, and the error bound (Prop. 3.3);
- :mod:`.units`: per-unit values for intervals, and the trained horizon read from training;
- :mod:`.cells`, :mod:`.grids`: the EAD page's jobs (experts, condense-and-evaluate cells over
  seeds, MTT at EAD's gradient evaluations, time and peak memory at equal batch sizes) and the
  ``ead`` grid that ``ddrepro precompute ead`` fills;
- :mod:`.ablations`: the ablation page's sweep, the choice made on it, its variants and their
  cell, for the staged ``ead_ablations`` grid (:mod:`.grids`, :func:`ddrepro.staged.run_grid`).

EAD and MTT themselves are condensers of the engine (:mod:`ddrepro.condense.ead`,
:mod:`ddrepro.condense.mtt`). The membership cross-check (``ead_privacy``) reads Chapter 2's
attacks (:mod:`ddrepro.privacy`) from its page: a one-way dependency of the book, not of this
package. Importing the package registers its profile sections and its grid.
"""

from . import grids, profile  # noqa: F401  (register the sections and the grid)
