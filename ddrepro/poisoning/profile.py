"""Chapter 3's profile section: the poisoning study's sizes."""

from __future__ import annotations

from ..profiles import register_section
from .config import PoisonConfig

register_section(
    "poison", PoisonConfig, owner=__name__,
    smoke=PoisonConfig(dataset="fashion_mnist", ipc=2, targets=1, runs=1, attack_steps=2,
                       restarts=1, pretrained=1, pretrain_epochs=1, gm_targets=1, power_iterations=2,
                       dm_steps=2, batch_real=8,
                       direct_targets=1, defenses=("dm", "median", "rdm"), deviation_n=2000,
                       deviation_trials=2, deviation_seeds=2, baseline_targets=1, sweep_targets=1,
                       sweep_eps=(16 / 255, 64 / 255),
                       sweep_steps=(1, 2), adaptive_targets=1, untargeted_rates=(0.05, 0.1),
                       untargeted_anchors=4, val_targets=1, regime_rates=(0.01, 0.015),
                       regime_steps=(1, 2), regime_batch=(8,), misspec_targets=1),
    # Chapter 3: 300 DM steps from noise is where the synthetic images stop looking like
    # noise at batch_real 32 (150 do not); T = 100 attack steps of 1/255 can reach
    # 64/255; R = 2 restarts. Sized from one measured cell (target 0, `poison_cell`, 1 thread,
    # load ~3 on 2 cores): 70 s, of which crafting the poisons 6 s (cached, so a target's
    # defenses share it), DM's 300 steps 51 s, the victim ~13 s; an RDM-DC cell 58 s with the
    # poisons cached. The condensation dominates, so a page costs ~35 s per cell on 2
    # uncontended cores and holds <= 23 cells (<= 15 min):
    # At the paper's 1 % nothing flips at this scale, not even the direct attack (IPC 1 and 10,
    # noise or real init, 100-300 steps; book/03_poisoning/attack_and_defense.md's probe table);
    # at 3 % (30 % of the class) the direct attack flips a target, so the table runs there
    # (ours; 3 % is the largest rate whose k = ceil(3 eps_p 32) stays below batch_real):
    # attack_and_defense: 3 clean + 8 targets x direct {DM, RDM-DC} + Median on target 0 = 20
    # cells. With DM poisoning on 2 targets {DM, RDM-DC, Median} it was 25 cells, cold on 2 idle
    # cores 857 s with `--executor ray` (1 thread a job) before the notebook, and a cell takes
    # 36 s on 2 threads against 61 s on one (2026-12-04): over 15 minutes either way. Its DM
    # poisoning at table_rate runs on beyond (the "mean" cells, against DM and RDM-DC), at 1 % on
    # poison_sweep, so the table keeps the direct attack's 8 targets (2 of 8 flip);
    # poison_sweep (at 1 %): 1 clean + 2 targets x (eps {16, 64, 128}/255 at T = 100, T {30, 300} at
    # 64/255, direct vs DM and RDM-DC) = 15 cells (the attack at T = 300 adds ~20 s a target).
    # Cold on 2 idle cores (2026-12-04): attack_and_defense 12m19s with the local executor (two
    # torch threads), poison_sweep 7m45s and beyond 12m38s with "auto" (Ray, one thread a job;
    # beyond took 17m02s locally: its adaptive crafting gains little from a second thread), the
    # pages' default.
    # beyond (ours): 2 clean + 2 targets x (DM poisoning vs DM and RDM-DC, the "through" and "spread"
    # attacks vs RDM-DC) at table_rate + untargeted at 1 and 10 % vs DM and RDM-DC + RDM-DC's clean
    # reference at both rates = 16 cells, 6 of them attack_and_defense's (clean, DM poisoning).
    # Measured cells (1 thread, nice 19, load 5-6 on 2 cores, CPU seconds): clean DM 69, clean
    # RDM-DC 57, DM poisoning vs DM 82 (crafting 40) and vs RDM-DC 56, "through" vs RDM-DC 129
    # (crafting 99: the whole class of 500 goes through the network per step), "spread" 131 (75).
    # robust_means: each Gaussian slope at deviation_seeds = 5 seeds (one sweep of 20 trials each,
    # the calibrated mean only beyond the first): ~9 s a seed for the eps sweep, 45-60 s for the
    # small-eps one (N = 500,000), so ~4 extra minutes (measured 2026-12-07, load ~1.5 on 2 cores).
    # The regime search (issue 24; poison_regime, run with poison_sweep's grid): 2 validation
    # targets x victims (100, 300 DM steps at batch 32; batch 128 at 100 steps: 256 would cost 8x
    # a 32-batch cell of the same steps) x rates {1 %, 1.5 %} (1.5 %: RDM-DC keeps 17 of 32 and 70
    # of 128, the cap's limit) x (DM poisoning at 64/255 and 128/255, direct) + the clean victim
    # per (steps, batch): 39 jobs. In cells of (300 steps, batch 32), whose cost is ~69 CPU s
    # (attack_and_defense's 25 cells, 857 s on 2 cores with Ray above), the jobs weigh
    # 13 x (1/3 + 1 + 4/3) = 34.7 cells: ~20 min cold on 2 idle cores; ~11 min with
    # -p poison.regime_rates "[0.01]" (the paper's rate only; no fallback then).
    # beyond's third adaptive attack, "batches" (issue 24), adds 2 cells (one a target against
    # RDM-DC); its crafting embeds the whole class each step like "through" (~100 CPU s a target,
    # not measured for "batches" itself), so beyond's cold time grows by ~4-5 minutes.
    # The misspecified defender (misspec grid): RDM-DC's assumed rate x {0.5, 2, 4} and the factor
    # 3 of k -> {1, 2, 4}, DM poisoning at the chosen regime on 2 evaluated targets + RDM-DC's
    # clean victim per setting.
    # Gradient matching is not run in a page at cpu (gm_targets = 0: its 16 networks of 40 epochs
    # are the paper profile's); 4 networks of <= 8 epochs size benchmarks/bench_poison_attacks.py.
    cpu=PoisonConfig(dataset="fashion_mnist", ipc=10, targets=8, runs=1, attack_steps=100,
                     restarts=2, dm_steps=300, batch_real=32, victims=1,
                     defenses=("dm", "median", "rdm"), baseline_targets=1, direct_targets=8,
                     table_rate=0.03, dm_poison_targets=0, gm_targets=0,
                     sweep_targets=2, sweep_eps=(16 / 255, 64 / 255, 128 / 255),
                     sweep_steps=(30, 100, 300), adaptive_targets=2, untargeted_rates=(0.01, 0.1),
                     pretrained=4, pretrain_epochs=8, deviation_seeds=5, val_targets=2,
                     regime_rates=(0.01, 0.015), regime_steps=(100, 300), regime_batch=(32, 128),
                     misspec_targets=2),
    # paper: the paper's victim (20,000 DM steps at batch 256) beside batch 32, at its 1 % and
    # both eps, on 5 validation targets (PoisonConfig's defaults)
)
