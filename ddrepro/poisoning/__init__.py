"""Chapter 3, Poisoning and defense (``book/03_poisoning``): Zheng & Li, RDM-DC.

- :mod:`.config`, :mod:`.profile`, :mod:`.grids`: the ``poison`` section, its three
  profiles' values and the ``attack_and_defense`` / ``poison_sweep`` / ``beyond`` grids;
- :mod:`.poison` (DM poisoning, Alg. 2, and the direct attack), :mod:`.gradient_matching`
  (Alg. 1), :mod:`.adaptive` and :mod:`.untargeted` (beyond the paper): the attacks;
- :mod:`.study`: one cell of the grids (poison, condense with a defense, evaluate);
- :mod:`.deviation`: Lemma 4.1, measured;
- :mod:`.scoring`: the scorecard's inputs, one value per target (a target's runs share its poisons).

The defense itself, RDM-DC's calibrated mean (Alg. 3-5) and the robust baselines, is engine
(:mod:`ddrepro.robust`, DM's configured class mean). Importing the package registers its
profile section and grids.
"""

from . import grids, profile  # noqa: F401  (register the section and the grids)
