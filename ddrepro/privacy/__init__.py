"""Chapter 2, Privacy (``book/02_privacy``): Dong, Zhao & Lyu (ICML 2022), "Privacy for Free?",
and its critique (Carlini, Feldman & Nasr 2022).

- :mod:`.config`, :mod:`.profile`, :mod:`.grids`: the settings (``privacy``, ``critique``,
  ``generators``), their three profiles' values and the ``claims`` / ``critique`` grids;
- :mod:`.theory`: Props. 4.3-4.4 and Eq. 35, measured;
- :mod:`.mia` (loss threshold, Eq. 7) and :mod:`.lira` (LiRA): the attacks;
- :mod:`.membership`: the preparations, shadows and victims the attacks read;
- :mod:`.table1`: Table 1's attack on the initialisation images (class-matched comparison
  members, the placebo);
- :mod:`.direct`: the attack on the released set S itself (nearest synthetic image);
- :mod:`.critique`, :mod:`.dpsgd`: the accuracy-matched baseline, DP-SGD, the canary audit;
- :mod:`.queries`, :mod:`.options`: LiRA's shifted-crop queries and its options (fits,
  variance, queries) measured against the default; :mod:`.dp_lira`: LiRA on DP-SGD;
  :mod:`.arms`: LiRA's other arms on DM's halves (DM real init, KIP, the full half);
  :mod:`.dp_bound`: the (eps, delta) bound on an attack's TPR as a scorecard quantity;
- :mod:`.generators`, :mod:`.generator_study`, :mod:`.gan_leak`, :mod:`.matching`: the cGAN and
  DP-MERF baselines and the visual-privacy measures (Fig. 5).

Importing the package registers its profile sections and grids; the other modules are
imported by name.
"""

from . import grids, profile  # noqa: F401  (register the sections and the grids)
