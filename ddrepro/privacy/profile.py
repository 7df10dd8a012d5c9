"""Chapter 2's profile sections: the membership study, the critique and the generator baselines."""

from __future__ import annotations

from ..profiles import register_section
from .config import CritiqueStudyConfig, GeneratorStudyConfig, PrivacyConfig

register_section(
    "privacy", PrivacyConfig, owner=__name__,
    smoke=PrivacyConfig(members_per_class=20, r_ipcs=(0.05,), mia_preparations=1, mia_n=5,
                        shadows=2, other_r_ipcs=(0.05,), dsa_steps=1,
                        lira_r_ipc=0.05, lira_targets=1, lira_probes_per_class=4,
                        control_per_class=4, theory_per_class=20,
                        theory_width=8, theory_steps=5),
    # Chapter 2 (book/02_privacy/claims.md): |T| = 500 per class as the issue states; the
    # syntheses and victims shortened so the notebook stays within 15 minutes on 2 cores.
    # Measured cold, one thread (2026-12-04): grid 542 s + notebook 94 s of CPU, 10.6 min.
    cpu=PrivacyConfig(members_per_class=500, mia_preparations=3, mia_n=500, shadows=16,
                      other_r_ipcs=(0.01,), dm_steps=40, dsa_steps=10,
                      eval_epochs=30, lira_targets=2, lira_probes_per_class=100,
                      control_per_class=50, theory_per_class=100),
)

register_section(
    "critique", CritiqueStudyConfig, owner=__name__,
    smoke=CritiqueStudyConfig(val_per_class=10, baseline_per_class=(1, 2), ci_repeats=3,
                              dp_epsilons=(4.0, 16.0), dp_per_class=10, dp_epochs=1, dp_batch=20,
                              canaries=6, canary_pool_per_class=10, canary_shadows=2,
                              canary_targets=2, canary_ipc=1, dp_lira_models=3),
    # Chapter 2's critique (book/02_privacy/critique.md): the LiRA study of `privacy` reused
    # (16 shadows, 2 targets); DP-SGD on 100 members per class; 40 canaries in a pool of 100
    # images per class, 8 shadows and 2 targets. Cold, 1 thread, load 9-10 on 2 cores: a DM
    # LiRA synthesis 20-35 s (shared with `claims`), a baseline size 75-190 s (20 per class:
    # 290 s, dropped: it only brackets DM's accuracy from above, as 10 already does), a DP-SGD
    # run ~40 s, a canary synthesis ~19 s, the canary models on T 216 s; the notebook on a
    # warm cache 140 s. Measured cold, one thread (2026-12-04): grid 619 s + notebook 92 s of
    # CPU, 11.9 min (in a book build its LiRA syntheses come from claims' cache).
    cpu=CritiqueStudyConfig(val_per_class=100, baseline_per_class=(1, 2, 5, 10),
                            ci_repeats=10, dp_per_class=100, dp_epochs=10, dp_batch=128,
                            canaries=40, canary_pool_per_class=100, canary_shadows=8,
                            canary_targets=2, canary_ipc=5, dp_lira_models=8),
)

register_section(
    "generators", GeneratorStudyConfig, owner=__name__,
    smoke=GeneratorStudyConfig(cgan_steps=20, cgan_batch=16, cgan_width=16, cgan_r_ipcs=(0.05, 0.1),
                               merf_features=64, merf_steps=5, merf_batch=20, leak_samples=5,
                               leak_queries=8, tsne_per_class=3, match_queries=2),
    # Chapter 2, generators: an MLP cGAN of 3,000 steps (59.8 % at 10 images per class in the
    # page's cpu run; a first version without batch norm and a projection critic gave 28 % at
    # the same size), DP-MERF with 1,000 features fitted 1,000 steps; the whole page took
    # 285-315 s of CPU on one thread, cold (book/02_privacy/generators).
    cpu=GeneratorStudyConfig(cgan_steps=3000, merf_features=1000, merf_steps=1000,
                             merf_batch=200, leak_samples=500, leak_queries=500),
)
