"""The cross-chapter page's profile section ``across``."""

from __future__ import annotations

from ..profiles import register_section
from .config import AcrossConfig

register_section(
    "across", AcrossConfig, owner=__name__,
    smoke=AcrossConfig(power_iterations=3, drop_draws=2, lira_per_class=10, lira_models=4,
                       lira_ipc=1),
    # book/06_across at `cpu`: planned, not yet run (estimates from the chapters' measured jobs).
    # The DM arms are Chapter 2's 16 + 2 LiRA syntheses (claims) and Chapter 4's 2 x 3 DM cells
    # at 80 and 95 % (debiased): cache hits once those pages ran (tests/across/test_grid.py).
    # New work, cold: 18 RDM-DC LiRA syntheses + victims (Chapter 2 measured 20-35 s per DM one
    # at load 9-10; the calibrated mean adds a 10-step power method per class on batches of 32):
    # ~18 x 25 = 450 s; 6 RDM-DC CMNIST-DD cells (Chapter 4: a DM cell ~50 s + its evaluation
    # ~33 s): ~500 s; 2 x 8 CMNIST-DD LiRA syntheses at 5 images per class from ~50 members per
    # class, 40 DM steps, Chapter 2's victim recipe: ~16 x 22 = 350 s. About 1,300 s = 22 min of
    # one core; with the grid's jobs two at a time on 2 cores (`ddrepro precompute across
    # --executor auto`) about 11 min, plus ~1 min for the notebook (drop counting: 3 seeds x 2
    # ratios x 20 networks x 10 classes x 32 images; the attacks). If Chapters 2 and 4 have not
    # run, their DM jobs add ~450 s + ~500 s.
    cpu=AcrossConfig(drop_draws=20, lira_per_class=100, lira_models=8, lira_ipc=5, lira_steps=40),
)
