"""Chapter 2's membership experiments (Dong et al., ICML 2022, Sec. 5; Carlini et al. 2022).

The data plumbing of every attack in the chapter: member / non-member halves,
the paper's DM / KIP learning rates per r_ipc (App. E.1), one loss-MIA
"preparation of a synthetic set" (Sec. 5.1) and its queries, one LiRA shadow
synthesis, the real-data shadow models of LiRA's positive control, and the
chapter's study (its data draws, configs and the ``claims`` grid's jobs), shared by
the notebook and its grid. The attacks themselves are in :mod:`ddrepro.attacks`;
the barycentre theory in :mod:`ddrepro.privacy.theory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..artifacts import cached
from ..augment import DSA
from ..condense import condense
from ..config import AugConfig, EvalConfig, NetConfig, replace_checked
from .lira import balanced_membership
# Table 1's attack on the initialisation images, with the probes it reads (re-exported: the
# pages call it as membership.init_attack beside prepare)
from .table1 import (class_matched, comparison_members, init_attack, placebo_indices,
                     probe_losses)
from ..data import ImageData, derive, load
from ..evaluate import EvalResult, evaluate, probe
from ..executor import Job
from ..synthetic import SyntheticSet
from ..train import train_models


# App. E.1: DM's image learning rate 10 / 50 / 100 and KIP's 0.04 / 0.1 at r_ipc 0.002 / 0.01 / 0.02.
PAPER_DM_LR = {0.002: 10.0, 0.01: 50.0, 0.02: 100.0}
PAPER_KIP_LR = {0.002: 0.04, 0.01: 0.1}


def paper_lr(table: dict[float, float], r_ipc: float) -> float:
    """The paper's rate for the nearest r_ipc it reports (App. E.1)."""
    if not 0.0 < r_ipc < 1.0:
        raise ValueError(f"r_ipc = {r_ipc!r} must lie in (0, 1).")
    return table[min(table, key=lambda r: abs(r - r_ipc))]


def condenser_config(prof: Any, method: str, r_ipc: float) -> Any:
    """The profile's config for ``method`` with the paper's learning rate at ``r_ipc`` (DM, KIP);
    KIP with Siamese DSA, as the paper runs it (App. E.1; the KIP paper itself does not augment)."""
    cfg = prof.condenser_config(method)
    if method == "dm":
        return replace_checked(cfg, lr_img=paper_lr(PAPER_DM_LR, r_ipc))
    if method == "kip":
        return replace_checked(cfg, lr_img=paper_lr(PAPER_KIP_LR, r_ipc), dsa=True)
    return cfg


# -- membership experiments --------------------------------------------------------------

def half_mask(pool: ImageData, seed: int) -> Tensor:
    """``(len(pool),)`` bool: a random half of every class of ``pool`` (the members, Sec. 5.1)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(pool), dtype=torch.bool)
    for idx in pool.indices_by_class():
        if idx.numel() < 2:
            raise ValueError("every class needs >= 2 images to split into members and non-members.")
        mask[idx[torch.randperm(idx.numel(), generator=gen)[: idx.numel() // 2]]] = True
    return mask


def halves(pool: ImageData, seed: int) -> tuple[ImageData, ImageData]:
    """Split ``pool`` per class into two random halves: members T and non-members (Sec. 5.1)."""
    mask = half_mask(pool, seed)
    return pool.take(mask), pool.take(~mask)


def probe_rows(members: ImageData, syn: SyntheticSet, n: int, seed: int,
               also: Tensor | None = None) -> Tensor:
    """Rows of ``members`` to query (sorted, each once): every initialisation image, the members
    whose root indices are in ``also`` (e.g. another set's initialisation images, to attack them
    as a placebo where nothing was copied), as many other members of the same classes drawn at
    random (Table 1's comparison members, :func:`class_matched`) and ``2n`` random others."""
    used = syn.meta.get("init_indices")
    singled = torch.zeros(len(members), dtype=torch.bool) if used is None \
        else torch.isin(members.source_index, used)
    others = torch.nonzero(~singled).flatten()
    gen = torch.Generator().manual_seed(seed)
    pick = others[torch.randperm(others.numel(), generator=gen)[: 2 * n]]
    if also is not None:
        singled |= torch.isin(members.source_index, also)
    rest = torch.nonzero(~singled).flatten()
    matched = class_matched(members.labels, torch.nonzero(singled).flatten(), rest, seed + 1,
                            strict=False)
    return torch.unique(torch.cat([torch.nonzero(singled).flatten(), matched, pick]))


def prepare(*, method: str, members: ImageData, nonmembers: ImageData, test: ImageData, ipc: int,
            init: str, config: Any, seed: int, net_cfg: NetConfig, aug_cfg: AugConfig,
            eval_cfg: EvalConfig, n: int, record_every: int | None = None, device: Any = "auto",
            quiet: bool | None = None, also_probe: Tensor | None = None
            ) -> tuple[SyntheticSet, EvalResult, Tensor]:
    """One "preparation of a synthetic set" (Sec. 5.1): condense T, train f_S, query it.

    Returns the set (with per-step records when ``record_every``), the
    evaluation on ``test`` with ``probes["members"]`` on the rows of
    ``members`` returned third (every initialisation image and ``2n`` other
    members, plus those whose root indices are in ``also_probe``) and
    ``probes["nonmembers"]`` on ``2n`` non-members; all cached.
    """
    syn = condense(method, members, ipc, config=config, init=init, seed=seed, net_cfg=net_cfg,
                   aug_cfg=aug_cfg, record_every=record_every, device=device, quiet=quiet)
    rows = probe_rows(members, syn, n, seed, also=also_probe)
    outside = nonmembers.subset(2 * n, seed=seed)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=members.flip_ok, probes={"members": members.take(rows),
                                                     "nonmembers": outside},
                      device=device, quiet=quiet)
    return syn, result, rows


def shadow(*, method: str, pool: ImageData, subset: Tensor, ipc: int, seed: int,
           test: ImageData, probes: dict[str, Any], probe_flip: bool, eval_cfg: EvalConfig,
           net_cfg: NetConfig, aug_cfg: AugConfig, device: Any = "auto", quiet: bool | None = None,
           **condense_kwargs: Any) -> tuple[SyntheticSet, EvalResult]:
    """One LiRA shadow (or target): condense ``pool.take(subset)``, train f_S, query ``probes``.

    Argument for argument what ``condense_many`` + ``evaluate_many`` do for one
    subset, so a grid of these jobs fills the cache those calls read.
    """
    syn = condense(method, pool.take(subset), ipc, seed=seed, net_cfg=net_cfg, aug_cfg=aug_cfg,
                   device=device, quiet=True if quiet is None else quiet, **condense_kwargs)
    result = evaluate(syn, test, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed,
                      flip=pool.flip_ok, probes=probes, probe_flip=probe_flip, device=device,
                      quiet=quiet)
    return syn, result


def train_on_masks(pool: ImageData, member: Tensor, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                   aug_cfg: AugConfig, seed: int, device: Any = "auto",
                   quiet: bool | None = None) -> Any:
    """K networks trained directly on real data at once: network k on ``pool``'s rows
    ``member[k]`` (one batched :func:`~ddrepro.train.train_models` call); not cached."""
    if member.dtype != torch.bool or member.dim() != 2 or member.shape[1] != len(pool) \
            or member.shape[0] < 2:
        raise ValueError(f"member must be a (K >= 2, {len(pool)}) bool mask over the pool.")
    if eval_cfg.augment not in ("dsa", "none"):
        raise ValueError(f"eval_cfg.augment = {eval_cfg.augment!r}: use 'dsa' or 'none' here.")
    aug = DSA(aug_cfg, flip=pool.flip_ok) if eval_cfg.augment == "dsa" else None
    return train_models(pool.images, pool.labels, net_cfg=net_cfg, eval_cfg=eval_cfg,
                        num_classes=pool.num_classes, seed=seed, aug=aug, members=member,
                        device=device, quiet=quiet)


def lira_phi(out: dict[str, Tensor], probe_flip: bool) -> Tensor:
    """LiRA's scores from :func:`~ddrepro.evaluate.probe`'s outputs: ``(K, n)``, or
    ``(K, n, 2)`` with the mirror image as the second query when ``probe_flip``."""
    return torch.stack([out["phi"], out["phi_flip"]], -1) if probe_flip else out["phi"]


def train_on_halves(pool: ImageData, member: Tensor, *, net_cfg: NetConfig, eval_cfg: EvalConfig,
                    aug_cfg: AugConfig, seed: int, probe_flip: bool, device: Any = "auto",
                    quiet: bool | None = None, cache: bool = True) -> dict[str, Tensor]:
    """LiRA on real data: :func:`train_on_masks`, each model queried on the whole pool.

    Returns ``phi`` ``(K, n[, 2])`` (with the mirror as a second query when
    ``probe_flip``), ``loss`` ``(K, n)`` and ``train_acc``; cached.
    """
    kwargs = dict(net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg, seed=seed)
    parts = {"pool": pool.digest(), "member": member, "net": net_cfg, "eval": eval_cfg,
             "aug": aug_cfg, "seed": seed, "probe_flip": probe_flip}

    def compute() -> dict[str, Tensor]:
        models = train_on_masks(pool, member, device=device, quiet=quiet, **kwargs)
        out = probe(models, pool.images, pool.labels, flip=probe_flip)
        return {"phi": lira_phi(out, probe_flip), "loss": out["loss"],
                "train_acc": (out["logits"].argmax(-1) == pool.labels).float()}

    # keyed on these functions and the training code, not on the rest of this module
    return cached("real-shadows", parts, compute,
                  code=(train_on_halves, train_on_masks, lira_phi, "ddrepro.evaluate"), enabled=cache)


# -- the chapter's study: data, configs and jobs, shared by the notebook and its grid --------

@dataclass
class MembershipStudy:
    """The data of Chapter 2's membership experiments (seeded by the notebook's ``seed``).

    ``pool``: ``2 * members_per_class`` images per class of the training set,
    split per preparation into members T and non-members (``preparations``);
    LiRA's shadows train on ``shadow_masks`` ``(K, n)`` (each pool image in
    exactly half of them) and its targets on ``target_masks`` (independent
    halves), and are queried on the pool rows ``probe_index``. The real-data
    control trains on ``control_member`` ``(K + targets, n_c)`` halves of
    ``control_pool`` (shadows first).
    """

    pool: ImageData
    test: ImageData
    members_per_class: int
    preparations: list[tuple[ImageData, ImageData]]
    shadow_masks: Tensor
    target_masks: Tensor
    probe_index: Tensor
    control_pool: ImageData
    control_member: Tensor

    @property
    def probes(self) -> ImageData:
        return self.pool.take(self.probe_index)


def membership_study(prof: Any, seed: int) -> MembershipStudy:
    """Draw the pool, the preparations' halves, LiRA's masks and the control (all from ``seed``)."""
    cfg = prof.privacy
    full = load(cfg.dataset, "train")
    per_class = min(int(torch.bincount(full.labels).min()) // 2, cfg.members_per_class or 10**9)
    pool = full.subset_per_class(2 * per_class, seed=seed)
    test = load(cfg.dataset, "test").subset(prof.data.test_size, seed=seed)
    preparations = [halves(pool, seed=10_000 * seed + p) for p in range(cfg.mia_preparations)]
    targets = torch.stack([half_mask(pool, seed=10_000 * seed + 5000 + t)
                           for t in range(cfg.lira_targets)])
    probe_index = torch.arange(len(pool)) if cfg.lira_probes_per_class is None else \
        torch.cat([idx[torch.randperm(idx.numel(), generator=torch.Generator().manual_seed(seed))
                       [: cfg.lira_probes_per_class]] for idx in pool.indices_by_class()]).sort().values
    control = pool.subset_per_class(cfg.control_per_class, seed=seed + 1)
    control_member = torch.cat([
        balanced_membership(len(control), cfg.shadows, seed=seed + 2),
        torch.stack([half_mask(control, seed=10_000 * seed + 7000 + t) for t in range(cfg.lira_targets)])])
    return MembershipStudy(pool, test, per_class, preparations,
                           balanced_membership(len(pool), cfg.shadows, seed=seed),
                           targets, probe_index, control, control_member)


def study_config(prof: Any, method: str, r_ipc: float) -> Any:
    """A method's config in the study: :func:`condenser_config` with the study's step counts."""
    cfg = condenser_config(prof, method, r_ipc)
    steps = {"dm": prof.privacy.dm_steps, "dsa": prof.privacy.dsa_steps}.get(method)
    return replace_checked(cfg, steps=steps) if steps else cfg


def victim_eval(prof: Any) -> EvalConfig:
    """How f_S is trained: the profile's protocol, one model per preparation (Sec. 5.1)."""
    return replace_checked(prof.eval, n_models=1,
                           epochs=prof.privacy.eval_epochs or prof.eval.epochs)


def control_eval(prof: Any, n_models: int | None = None) -> EvalConfig:
    """The real-data controls' models: the victims' recipe (:func:`victim_eval`: optimiser, epochs,
    batch, augmentation), ``n_models`` of them at once (default: LiRA's shadows and targets), so
    a control differs from the claim it backs only in what it trains on."""
    cfg = prof.privacy
    return replace_checked(victim_eval(prof), n_models=n_models or cfg.shadows + cfg.lira_targets)


def loss_mia_syntheses(prof: Any) -> list[tuple[str, str, float]]:
    """``(method, init, r_ipc)`` of every synthesis the loss attack targets (Tables 1-2):
    DM at every r_ipc, both initialisations; the real-subset baseline ("random"); DSA, KIP
    and KIP with ZCA (``"kip_zca"``) at ``other_r_ipcs``."""
    cfg = prof.privacy
    rows = [(m, i, r) for r in cfg.r_ipcs for m, i in (("random", "real"), ("dm", "real"), ("dm", "noise"))]
    rows += [(m, i, r) for r in cfg.other_r_ipcs for m in ("dsa", "kip", "kip_zca")
             for i in ("real", "noise")]
    return rows


def zca_views(members: ImageData, nonmembers: ImageData, test: ImageData
              ) -> tuple[ImageData, ImageData, ImageData]:
    """The three sets whitened by one ZCA fitted on the members only (KIP with ZCA, the paper's
    Tables 1-3): rows, labels and root indices unchanged, so probes and attacks read them as
    they read the raw sets."""
    return (derive("zca", members), derive("zca", nonmembers, fit_on=members),
            derive("zca", test, fit_on=members))


def prepare_kwargs(prof: Any, study: MembershipStudy, p: int, method: str, init: str,
                   r_ipc: float, *, seed: int, device: Any, quiet: bool | None) -> dict[str, Any]:
    """:func:`prepare`'s arguments for preparation ``p`` (the DM runs of preparation 0 record
    their barycentre distances for Fig. 7). ``method="kip_zca"`` is KIP on :func:`zca_views`."""
    members, nonmembers = study.preparations[p]
    test = study.test
    if method == "kip_zca":
        method = "kip"
        members, nonmembers, test = zca_views(members, nonmembers, test)
    config = study_config(prof, method, r_ipc)
    record = max(1, config.steps // 20) if method == "dm" and p == 0 else None
    # a noise-initialised set is also probed on the images its real-initialised twin copied
    also = placebo(prof, study, p, r_ipc, seed=seed) if init == "noise" else None
    return dict(method=method, members=members, nonmembers=nonmembers, test=test,
                ipc=prof.privacy.ipc_for(r_ipc, study.members_per_class), init=init, config=config,
                seed=10_000 * seed + p, net_cfg=prof.net, aug_cfg=prof.aug, eval_cfg=victim_eval(prof),
                n=prof.privacy.mia_n, record_every=record, device=device, quiet=quiet, also_probe=also)


def placebo(prof: Any, study: MembershipStudy, p: int, r_ipc: float, *, seed: int) -> Tensor:
    """Table 1's placebo in preparation ``p``: root indices of the members that the real-initialised
    set at ``r_ipc`` copies (any method: they share the preparation's seed), which the
    noise-initialised set of the same preparation did not copy (:func:`placebo_indices`)."""
    members = study.preparations[p][0]
    return placebo_indices(members, prof.privacy.ipc_for(r_ipc, study.members_per_class),
                           10_000 * seed + p)


def lira_seeds(prof: Any, seed: int) -> tuple[list[int], list[int]]:
    """Seeds of LiRA's shadow and target syntheses."""
    return ([10_000 * seed + 100 + k for k in range(prof.privacy.shadows)],
            [10_000 * seed + 5000 + t for t in range(prof.privacy.lira_targets)])


def lira_kwargs(prof: Any, study: MembershipStudy, *, device: Any, quiet: bool | None) -> dict[str, Any]:
    """What every LiRA synthesis and its victim share (DM, noise init, ``lira_r_ipc``)."""
    r_ipc = prof.privacy.lira_r_ipc
    return dict(method="dm", pool=study.pool, ipc=prof.privacy.ipc_for(r_ipc, study.members_per_class),
                config=study_config(prof, "dm", r_ipc), init="noise", net_cfg=prof.net,
                aug_cfg=prof.aug, eval_cfg=victim_eval(prof), test=study.test,
                probes={"pool": study.probes}, probe_flip=study.pool.flip_ok, device=device,
                quiet=quiet)


def control_kwargs(prof: Any, study: MembershipStudy, *, seed: int, device: Any,
                   quiet: bool | None) -> dict[str, Any]:
    """:func:`train_on_halves`' arguments for the real-data control."""
    return dict(pool=study.control_pool, member=study.control_member, net_cfg=prof.net,
                eval_cfg=control_eval(prof), aug_cfg=prof.aug, seed=10_000 * seed + 9000,
                probe_flip=study.control_pool.flip_ok, device=device, quiet=quiet)


def claims_jobs(prof: Any, *, seed: int, device: Any, quiet: bool | None) -> list[Job]:
    """Every expensive call of ``book/02_privacy/claims.md``: the preparations
    (``prep{p}/{method}/{init}/r{r_ipc}``), LiRA's syntheses (``lira/shadow{k}``,
    ``lira/target{t}``) and the real-data control (``control``)."""
    study = membership_study(prof, seed)
    jobs = [Job(prepare, prepare_kwargs(prof, study, p, m, i, r, seed=seed, device=device,
                                        quiet=quiet), name=f"prep{p}/{m}/{i}/r{r}")
            for p in range(prof.privacy.mia_preparations) for m, i, r in loss_mia_syntheses(prof)]
    shared = lira_kwargs(prof, study, device=device, quiet=quiet)
    shadow_seeds, target_seeds = lira_seeds(prof, seed)
    masks = [("shadow", k, m, s) for k, (m, s) in enumerate(zip(study.shadow_masks, shadow_seeds))]
    masks += [("target", t, m, s) for t, (m, s) in enumerate(zip(study.target_masks, target_seeds))]
    jobs += [Job(shadow, dict(shared, subset=mask, seed=s), name=f"lira/{kind}{k}")
             for kind, k, mask, s in masks]
    jobs.append(Job(train_on_halves, control_kwargs(prof, study, seed=seed, device=device, quiet=quiet),
                    name="control"))
    return jobs


__all__ = ["MembershipStudy", "PAPER_DM_LR", "PAPER_KIP_LR", "claims_jobs", "class_matched",
           "comparison_members", "condenser_config", "placebo", "placebo_indices",
           "control_eval", "control_kwargs", "half_mask", "halves", "init_attack", "lira_kwargs",
           "lira_phi", "lira_seeds", "loss_mia_syntheses", "membership_study", "paper_lr", "prepare",
           "prepare_kwargs", "probe_losses", "probe_rows", "shadow", "study_config", "train_on_halves",
           "train_on_masks", "victim_eval", "zca_views"]
