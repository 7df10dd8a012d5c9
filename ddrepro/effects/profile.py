"""Chapter 5's profile sections: the studies around EAD and MTT's image step per data set.

EAD's and MTT's own settings are the engine sections ``ead`` and ``mtt``
(``ddrepro/profiles.py``); these are what the chapter's pages add.
"""

from __future__ import annotations

from ..profiles import register_section
from ..tuning import StepSizeChoice
from .config import EffectsConfig

register_section(
    "effects", EffectsConfig, owner=__name__,
    smoke=EffectsConfig(pairs=20, horizons=(1, 2), scatter_horizon=2, t_ms=(1,), alphas=(0.0,),
                        val_per_class=10, seeds=2, long_factor=2, cost_steps=2),
    # The estimator study on 200 (G, A) pairs of 8x8 digits; the ablations over t_m and alpha
    # scored on 100 validation images per class (book/05_effect_alignment/ead_ablations.md).
    # Three distillation seeds and five evaluation networks per set (issue 26: intervals over
    # seeds for every EAD/MTT/DM row): ead.md reads its cells from the `ead` grid and
    # ead_ablations.md from the staged `ead_ablations` grid (ddrepro/effects/grids.py;
    # `ddrepro precompute ead_ablations`, then `ead`): in one kernel ead_ablations took ~27 min
    # cold at three seeds, about 3x the one-seed time measured below.
    # The cpu grid: 156 jobs. Its slowest kind, DSA at IPC 10 with 5 evaluation networks
    # (mnist/s0/ipc10/dsa, cold cache, one thread, niced beside a 2-core Ray job, 2026-12-08):
    # 326 s wall, 175 s CPU (condense 202 s, evaluation 124 s wall); MTT at IPC 10 after its
    # buffer (mnist/s0/expert-mtt, 213 s wall): 198 s wall (condense 100 s, evaluation 96 s).
    # smoke runs two seeds (the paired path) and the profile's two evaluation networks.
    # t_ms: the default grid (1, 2, 5, 10, 20) up to 5 (a step's cost grows with t_m; the cpu
    # expert has 10 checkpoints); the page runs exactly these, or stops. The 10x-steps EAD run
    # (long_factor): 800 steps, ~0.5 s each at t_m = 3 (estimated from the ead comment in
    # ddrepro/profiles.py, not yet timed), ~7 min of one core on top of the page's earlier 545 s.
    cpu=EffectsConfig(pairs=200, t_ms=(1, 2, 5), alphas=(0.0, 1.0), val_per_class=100, seeds=3,
                      eval_models=5),
)

# MTT's image step per data set: the best of `values` on each data set's validation split at
# IPC 1 (book/05_effect_alignment/ead_ablations.md, whose scorecard checks these against its
# sweep); the table runs mtt_lr_img.apply(mtt, data set), not mtt.lr_img alone.
register_section(
    "mtt_lr_img", StepSizeChoice, owner=__name__,
    smoke=StepSizeChoice(values=(10.0, 1000.0)),
    # Measured with the earlier MTT (one decayed expert shared with EAD, evaluation at 0.01), so
    # to be re-swept: ead_ablations reports a stale choice. Validation accuracy at 1 / 3 / 10 / 30
    # (one thread, seed 0): MNIST 66.3 / 72.6 /
    # 74.2 / 71.2 % (100: 61.8, 1000: 50.9, an earlier session's); Fashion-MNIST 57.6 / 58.4 /
    # 50.9 / 40.7 % (0.3: 56.4, 100: 41.3; 100 validation images per class). MNIST's 10 is also
    # `mtt.lr_img`, so its MTT runs keep their cache keys. An MTT run at IPC 1 with its
    # evaluation on the validation images: ~25-40 s of one core, so the 8 runs ~4 min.
    cpu=StepSizeChoice(values=(1.0, 3.0, 10.0, 30.0),
                       chosen=(("mnist", 10.0), ("fashion_mnist", 3.0))),
)
