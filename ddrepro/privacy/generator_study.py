"""Chapter 2's generator study (Dong et al. 2022, Sec. 5.3-5.4): the glue between the profile,
the membership study's preparations and the generators of :mod:`ddrepro.privacy.generators`.

Every generator trains on the members T of the study's first preparation and
its samples are evaluated exactly as DM's sets are (:func:`victim`: the same
test set, network, protocol, seed and probes), so the page compares like with
like and reuses whatever ``book/02_privacy/claims.md`` has already cached.

Table 3 is repeated over :func:`seed_preparations`: for preparation ``p`` the generators train on
that preparation's members with seed ``10_000 * seed + p`` and are compared with DM's set of the
same preparation, so DM minus a generator is paired over preparations (each a seed of the
whole pipeline: the draw of T, the synthesis or generator, the victim).
"""

from __future__ import annotations

from typing import Any

from .mia import ThresholdAttack, loss_threshold_attack
from ..evaluate import EvalResult, evaluate
from .generators import CGANConfig, DPMERFConfig, cgan_set, dp_merf_set
from .membership import (MembershipStudy, prepare, prepare_kwargs, probe_losses, probe_rows,
                         victim_eval)
from ..synthetic import SyntheticSet


def cgan_config(prof: Any) -> CGANConfig:
    """The profile's cGAN (``prof.generators``)."""
    g = prof.generators
    return CGANConfig(steps=g.cgan_steps, batch=g.cgan_batch, latent=g.latent, width=g.cgan_width)


def merf_config(prof: Any, epsilon: float) -> DPMERFConfig:
    """The profile's DP-MERF at budget (``epsilon``, ``prof.generators.delta``)."""
    g = prof.generators
    return DPMERFConfig(epsilon=epsilon, delta=g.delta, features=g.merf_features,
                        bandwidth=g.merf_bandwidth, steps=g.merf_steps, batch=g.merf_batch,
                        latent=g.latent, width=g.cgan_width)


def seed_preparations(prof: Any) -> list[int]:
    """The preparations Table 3 is repeated on: the first ``generators.seeds`` of the membership
    study's (fewer when the profile runs fewer preparations)."""
    return list(range(min(prof.generators.seeds, prof.privacy.mia_preparations)))


def _preparation(study: MembershipStudy, preparation: int) -> tuple[Any, Any]:
    if not 0 <= preparation < len(study.preparations):
        raise ValueError(f"preparation = {preparation}: the study has {len(study.preparations)} "
                         "(privacy.mia_preparations).")
    return study.preparations[preparation]


def generator_set(prof: Any, study: MembershipStudy, method: str, ipc: int, *, seed: int,
                  epsilon: float | None = None, device: Any = "auto",
                  quiet: bool | None = None, preparation: int = 0) -> SyntheticSet:
    """``ipc`` images per class from ``method`` ("cgan" or "dp_merf" at ``epsilon``), trained on the
    members of ``preparation`` with that preparation's seed (one generator serves every ipc)."""
    if method not in ("cgan", "dp_merf"):
        raise ValueError(f"unknown generator {method!r}; use 'cgan' or 'dp_merf'.")
    members, _ = _preparation(study, preparation)
    train_seed = 10_000 * seed + preparation
    if method == "cgan":
        return cgan_set(members, ipc, cgan_config(prof), seed=train_seed, device=device, quiet=quiet)
    if epsilon is None:
        raise ValueError("dp_merf needs an epsilon (prof.generators.epsilons).")
    return dp_merf_set(members, ipc, merf_config(prof, epsilon), seed=train_seed, device=device,
                       quiet=quiet)


def victim(prof: Any, study: MembershipStudy, syn: SyntheticSet, *, seed: int, device: Any = "auto",
           quiet: bool | None = None, preparation: int = 0) -> tuple[EvalResult, Any]:
    """Train f on ``syn`` and probe members and non-members of ``preparation``, exactly as
    :func:`ddrepro.privacy.membership.prepare` does for a condensed set; returns ``(result, rows)``."""
    members, nonmembers = _preparation(study, preparation)
    n, run_seed = prof.privacy.mia_n, 10_000 * seed + preparation
    rows = probe_rows(members, syn, n, run_seed)
    result = evaluate(syn, study.test, net_cfg=prof.net, eval_cfg=victim_eval(prof), aug_cfg=prof.aug,
                      seed=run_seed, flip=members.flip_ok,
                      probes={"members": members.take(rows),
                              "nonmembers": nonmembers.subset(2 * n, seed=run_seed)},
                      device=device, quiet=quiet)
    return result, rows


def loss_attack(prof: Any, study: MembershipStudy, syn: SyntheticSet, result: EvalResult, rows: Any,
                *, seed: int) -> ThresholdAttack:
    """Table 2's loss attack on f: members against non-members, the threshold chosen on ``mia_n``
    of each and tested on the next ``mia_n`` (as the claims page does)."""
    members, _ = study.preparations[0]
    _, member_l, nonmember_l = probe_losses(syn, result, rows, members)
    n = min(prof.privacy.mia_n, len(member_l) // 2, len(nonmember_l) // 2)
    return loss_threshold_attack(member_l, nonmember_l, n=n, seed=seed)


def dc_preparation(prof: Any, study: MembershipStudy, method: str, init: str, r_ipc: float, *,
                   seed: int, device: Any = "auto", quiet: bool | None = None, preparation: int = 0
                   ) -> tuple[SyntheticSet, EvalResult, Any]:
    """Preparation ``preparation`` of ``method`` as the claims page runs it (a cache hit once that
    page ran)."""
    _preparation(study, preparation)
    return prepare(**prepare_kwargs(prof, study, preparation, method, init, r_ipc, seed=seed,
                                    device=device, quiet=quiet))


__all__ = ["cgan_config", "dc_preparation", "generator_set", "loss_attack", "merf_config",
           "seed_preparations", "victim"]
