"""Chapter 2's study settings (privacy): the membership study, the generator baselines and the
critique, each a frozen dataclass validated at construction (profile sections ``privacy``,
``generators``, ``critique``; the other chapters' sections are in :mod:`ddrepro.study_config`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import _check, _fractions, _positive


@dataclass(frozen=True)
class PrivacyConfig:
    """Chapter 2, Dong et al. (ICML 2022), "Privacy for Free?".

    The training set is split in two halves, members T and non-members
    (``members_per_class`` caps |T| per class; None keeps the half). ``r_ipcs``
    = |S| / |T| (paper: 0.002, 0.01, 0.02). Loss-based MIA: ``mia_preparations``
    repeated preparations (paper: 10), ``mia_n`` members + ``mia_n`` non-members
    to choose the threshold (paper: N = 1000). LiRA: ``shadows`` shadow
    preparations (paper: 256 for DM; its 64 for KIP are not run here), TPR read
    at ``fprs``. DP-MERF's epsilons are :class:`GeneratorStudyConfig`'s.

    Ours (the paper gives none of these): DSA and KIP run at ``other_r_ipcs``
    (paper: 0.002 and 0.01); ``dm_steps`` / ``dsa_steps`` (None: the profile's
    ``dm.steps`` / ``dsa.steps``) and ``eval_epochs`` (None: ``eval.epochs``)
    size the syntheses and their victim models f_S (one per preparation, as in
    the paper). LiRA attacks ``lira_targets`` independent target preparations at
    ``lira_r_ipc`` with ``shadows`` shadows, querying ``lira_probes_per_class``
    pool images per class (None: all). The real-data positive control trains
    ``shadows`` + ``lira_targets`` ConvNets directly on halves of
    ``control_per_class`` images per class, with the victims' recipe (the
    profile's evaluation, ``eval_epochs``). The propositions are measured with
    ``theory_per_class`` members per class (fewer than the d = 784 pixels of
    Fashion-MNIST, so span(T) is a proper subspace: Assumption 4.1), a random
    extractor of width ``theory_width`` (k < d) and ``theory_steps`` DM steps.
    """

    dataset: str = "fashion_mnist"
    members_per_class: int | None = None
    r_ipcs: tuple[float, ...] = (0.002, 0.01, 0.02)
    mia_preparations: int = 10
    mia_n: int = 1000
    shadows: int = 256
    fprs: tuple[float, ...] = (0.001, 0.01)
    other_r_ipcs: tuple[float, ...] = (0.002, 0.01)
    dm_steps: int | None = None
    dsa_steps: int | None = None
    eval_epochs: int | None = None
    lira_r_ipc: float = 0.01
    lira_targets: int = 4
    lira_probes_per_class: int | None = None
    control_per_class: int = 500
    theory_per_class: int = 500
    theory_width: int = 64
    theory_steps: int = 300

    def __post_init__(self) -> None:
        _check(self.members_per_class is None or self.members_per_class >= 1, self,
               "members_per_class", self.members_per_class, ">= 1 or None")
        _fractions(self, "other_r_ipcs", self.other_r_ipcs, 0.0, 1.0)
        _check(0.0 < self.lira_r_ipc < 1.0, self, "lira_r_ipc", self.lira_r_ipc, "in (0, 1)")
        for name in ("dm_steps", "dsa_steps", "eval_epochs", "lira_probes_per_class"):
            value = getattr(self, name)
            _check(value is None or value >= 1, self, name, value, ">= 1 or None")
        _positive(self, "lira_targets", "theory_width", "theory_steps")
        _check(self.control_per_class >= 2, self, "control_per_class", self.control_per_class,
               ">= 2 (split into members and non-members)")
        _check(self.theory_per_class >= 2, self, "theory_per_class", self.theory_per_class, ">= 2")
        _fractions(self, "r_ipcs", self.r_ipcs, 0.0, 1.0)
        _positive(self, "mia_preparations", "mia_n")
        _check(self.shadows >= 2, self, "shadows", self.shadows,
               ">= 2 (LiRA fits IN and OUT distributions)")
        _fractions(self, "fprs", self.fprs, 0.0, 1.0)

    def ipc_for(self, r_ipc: float, members_per_class: int) -> int:
        """Images per class for a ratio ``r_ipc`` of a member set with ``members_per_class``."""
        ipc = round(r_ipc * members_per_class)
        if ipc < 1:
            raise ValueError(f"r_ipc={r_ipc} of {members_per_class} members per class gives "
                             f"{r_ipc * members_per_class:.2f} < 1 image per class; raise r_ipc "
                             f"or use >= {int(1 / r_ipc + 0.5)} members per class.")
        return ipc


@dataclass(frozen=True)
class GeneratorStudyConfig:
    """Chapter 2's generator baselines (Dong et al. 2022, Sec. 5.3, Tables 3-4, Figs. 3-5, 9-10).

    A conditional GAN trained ``cgan_steps`` steps on the members T (MLP widths
    ``cgan_width``/2x, noise ``latent``, minibatch ``cgan_batch``), sampled at the
    study's r_ipcs and at ``cgan_r_ipcs`` for Fig. 4. DP-MERF at ``epsilons``
    (paper: 10 and 2) and ``delta`` with ``merf_features`` random Fourier features
    of bandwidth ``merf_bandwidth`` (pixels in [0, 1]), its generator fitted
    ``merf_steps`` steps on batches of ``merf_batch``. GAN-leaks draws
    ``leak_samples`` images per class and queries ``leak_queries`` members and as
    many non-members. Fig. 9 embeds ``tsne_per_class`` images per class of each
    set; Fig. 5 matches ``match_queries`` synthetic images per initialisation to the
    members. Table 3 is repeated on ``seeds`` preparations of the membership study (at most its
    ``mia_preparations``), each generator trained anew on that preparation's members. All ours
    (the paper gives none).
    """

    cgan_steps: int = 10000
    cgan_batch: int = 128
    cgan_width: int = 256
    latent: int = 32
    cgan_r_ipcs: tuple[float, ...] = (0.002, 0.01, 0.02, 0.05, 0.1)
    epsilons: tuple[float, ...] = (10.0, 2.0)
    delta: float = 1e-5
    merf_features: int = 2000
    merf_bandwidth: float = 5.0
    merf_steps: int = 2000
    merf_batch: int = 500
    leak_samples: int = 1000
    leak_queries: int = 1000
    tsne_per_class: int = 20
    match_queries: int = 10
    seeds: int = 3

    def __post_init__(self) -> None:
        _positive(self, "seeds", "cgan_steps", "cgan_batch", "cgan_width", "latent", "merf_features",
                  "merf_bandwidth", "merf_steps", "merf_batch", "leak_samples", "leak_queries",
                  "tsne_per_class", "match_queries")
        _fractions(self, "cgan_r_ipcs", self.cgan_r_ipcs, 0.0, 1.0)
        _check(len(self.epsilons) > 0 and all(math.isfinite(e) and e > 0 for e in self.epsilons),
               self, "epsilons", self.epsilons, "a non-empty tuple of finite numbers > 0")
        _check(0.0 < self.delta < 1.0, self, "delta", self.delta, "in (0, 1), e.g. 1e-5")
        _check(self.merf_features % 2 == 0, self, "merf_features", self.merf_features,
               "even (cos and sin pairs)")


@dataclass(frozen=True)
class CritiqueStudyConfig:
    """Chapter 2's critique (Carlini, Feldman & Nasr 2022, "No Free Lunch in 'Privacy for Free'").

    None of these sizes is given by either paper; all are ours. The
    accuracy-matched baseline trains on ``baseline_per_class`` real images per
    class of each LiRA model's half (candidates; the one whose accuracy on
    ``val_per_class`` validation images per class, held out from the training
    pool, is closest to DM's is attacked). ``ci_repeats`` subsamples of the
    scores measure how the AUC interval narrows with more targets. DP-SGD trains
    on ``dp_per_class`` members per class (None: all of T) for ``dp_epochs``
    epochs at each of ``dp_epsilons`` and ``dp_delta`` (expected batch
    ``dp_batch``, clipping norm ``dp_clip``, step ``dp_lr``, momentum
    ``dp_momentum``). The canary audit inserts ``canaries`` held-out images
    (a fraction ``canary_mislabelled`` with a wrong label) into a pool of
    ``canary_pool_per_class`` images per class (None: the study's pool), and
    attacks ``canary_targets`` models with ``canary_shadows`` shadows; DM
    distils ``canary_ipc`` images per class.

    LiRA's options (:mod:`ddrepro.privacy.options`) query each probe and its mirror shifted
    by up to ``query_shift`` pixels in steps of ``query_stride`` (the authors' code). LiRA on
    DP-SGD (:mod:`ddrepro.privacy.dp_lira`) trains ``dp_lira_models`` models at each of
    ``dp_epsilons``, each on an independent random half of ``2 * dp_per_class`` pool images per
    class, every model the target in turn with the others as its shadows.
    """

    val_per_class: int = 500
    baseline_per_class: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)
    ci_repeats: int = 50
    dp_epsilons: tuple[float, ...] = (1.0, 4.0, 10.0)
    dp_delta: float = 1e-5
    dp_per_class: int | None = None
    dp_epochs: int = 30
    dp_batch: int = 256
    dp_clip: float = 1.0
    dp_lr: float = 0.5
    dp_momentum: float = 0.5
    canaries: int = 500
    canary_mislabelled: float = 0.5
    canary_pool_per_class: int | None = None
    canary_shadows: int = 64
    canary_targets: int = 4
    canary_ipc: int = 30
    query_shift: int = 2
    query_stride: int = 1
    dp_lira_models: int = 64

    def __post_init__(self) -> None:
        _positive(self, "val_per_class", "ci_repeats", "dp_epochs", "dp_batch", "canary_targets",
                  "canary_ipc", "query_stride")
        _check(self.query_shift >= 0
               and (self.query_shift == 0 or (2 * self.query_shift) % self.query_stride == 0), self,
               "query_shift", self.query_shift, ">= 0, with query_stride dividing 2 * query_shift")
        _check(self.dp_lira_models >= 3, self, "dp_lira_models", self.dp_lira_models,
               ">= 3 (each model the target in turn, >= 2 shadows left)")
        _check(len(self.baseline_per_class) > 0 and all(s >= 1 for s in self.baseline_per_class)
               and list(self.baseline_per_class) == sorted(set(self.baseline_per_class)), self,
               "baseline_per_class", self.baseline_per_class, "a non-empty increasing tuple of ints >= 1")
        _check(len(self.dp_epsilons) > 0 and all(0 < e < math.inf for e in self.dp_epsilons), self,
               "dp_epsilons", self.dp_epsilons, "a non-empty tuple of finite numbers > 0")
        _check(0.0 < self.dp_delta < 1.0, self, "dp_delta", self.dp_delta, "in (0, 1)")
        for name in ("dp_per_class", "canary_pool_per_class"):
            value = getattr(self, name)
            _check(value is None or value >= 2, self, name, value, ">= 2 or None")
        for name in ("dp_clip", "dp_lr"):
            _check(getattr(self, name) > 0, self, name, getattr(self, name), "> 0")
        _check(0.0 <= self.dp_momentum < 1.0, self, "dp_momentum", self.dp_momentum, "in [0, 1)")
        _check(self.canaries >= 2, self, "canaries", self.canaries, ">= 2")
        _check(0.0 <= self.canary_mislabelled <= 1.0, self, "canary_mislabelled",
               self.canary_mislabelled, "in [0, 1]")
        _check(self.canary_shadows >= 2, self, "canary_shadows", self.canary_shadows,
               ">= 2 (LiRA fits IN and OUT distributions)")


__all__ = ["CritiqueStudyConfig", "GeneratorStudyConfig", "PrivacyConfig"]
