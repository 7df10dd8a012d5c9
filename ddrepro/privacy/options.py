"""LiRA's options against the chapter's default, measured on the same models (issue 23, item 6).

The chapter's LiRA (:mod:`ddrepro.privacy.lira`) fits each side by its mean and std, pools the
variance over examples when shadows are few (``global_variance``) and queries the image and its
mirror. Carlini et al.'s released code differs in three ways, each an option here:
the fit (``fit="reference"``: median and std; ``fit="median"``: median and 1.4826 MAD), the
variance (per example or pooled) and the queries (the image and its mirror, each shifted by up
to ``query_shift`` pixels: :mod:`ddrepro.privacy.queries`). :func:`option_aucs` attacks every
target with each option changed alone, one AUC per target model, so the page can state each
option's difference from the default paired over the targets.

Two arms are measured: DM with noise initialisation (the LiRA syntheses of the ``claims`` grid,
their victims retrained with the same seeds and probed on every shifted crop: ``lira-shift/...``
jobs) and the real-data positive control (:func:`control_shifted`, the control's models retrained
with the same seed and probed the same way), where the attack has signal to change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..artifacts import cached
from ..config import AugConfig, EvalConfig, NetConfig
from ..data import ImageData
from ..evaluate import probe
from ..executor import Job
from .membership import MembershipStudy, control_kwargs, lira_kwargs, lira_seeds, shadow, train_on_masks
from .per_unit import per_target_auc
from .queries import plain_queries, shifted_phi, shifted_probes


def control_shifted(*, pool: ImageData, member: Tensor, net_cfg: NetConfig, eval_cfg: EvalConfig,
                    aug_cfg: AugConfig, seed: int, probe_flip: bool, shift: int, stride: int,
                    device: Any = "auto", quiet: bool | None = None) -> dict[str, Tensor]:
    """The real-data control's models (:func:`~ddrepro.privacy.membership.train_on_halves`'
    arguments, so the same networks) queried on every shifted crop of the pool: ``phi``
    ``(K, n, q)`` in :func:`~ddrepro.privacy.queries.query_images`' order; cached."""
    parts = {"pool": pool.digest(), "member": member, "net": net_cfg, "eval": eval_cfg, "aug": aug_cfg,
             "seed": seed, "probe_flip": probe_flip, "shift": shift, "stride": stride}

    def compute() -> dict[str, Tensor]:
        models = train_on_masks(pool, member, net_cfg=net_cfg, eval_cfg=eval_cfg, aug_cfg=aug_cfg,
                                seed=seed, device=device, quiet=quiet)
        views = shifted_probes(pool.images, pool.labels, shift, stride)
        outputs = {name: probe(models, x, y, flip=probe_flip) for name, (x, y) in views.items()}
        return {"phi": shifted_phi(outputs, shift, stride, reflect=probe_flip)}

    return cached("control-shifted", parts, compute,
                  code=(control_shifted, train_on_masks, "ddrepro.privacy.queries", "ddrepro.evaluate"))


def shifted_jobs(prof: Any, study: MembershipStudy, *, seed: int, device: Any,
                 quiet: bool | None) -> list[Job]:
    """DM's LiRA syntheses (the ``claims`` grid's ``lira/...`` arguments and seeds, so the
    condensation is a cache hit) with victims probed on every shifted crop
    (``lira-shift/shadow{k}``, ``lira-shift/target{t}``), and the control's
    (``control-shift``)."""
    cfg = prof.critique
    shared = lira_kwargs(prof, study, device=device, quiet=quiet)
    probes = study.probes
    shared["probes"] = shifted_probes(probes.images, probes.labels, cfg.query_shift, cfg.query_stride)
    shadow_seeds, target_seeds = lira_seeds(prof, seed)
    masks = [("shadow", k, m, s) for k, (m, s) in enumerate(zip(study.shadow_masks, shadow_seeds))]
    masks += [("target", t, m, s) for t, (m, s) in enumerate(zip(study.target_masks, target_seeds))]
    jobs = [Job(shadow, dict(shared, subset=mask, seed=s), name=f"lira-shift/{kind}{k}")
            for kind, k, mask, s in masks]
    control = control_kwargs(prof, study, seed=seed, device=device, quiet=quiet)
    jobs.append(Job(control_shifted, dict(control, shift=cfg.query_shift, stride=cfg.query_stride),
                    name="control-shift"))
    return jobs


def dm_shifted_phi(results: list[Any], shift: int, stride: int, reflect: bool) -> Tensor:
    """``(K + T, n, q)`` from the ``lira-shift`` jobs' evaluations (shadows, then targets)."""
    return torch.cat([shifted_phi(r.probes, shift, stride, reflect=reflect) for r in results])


def option_aucs(phi: Tensor, member: Tensor, shadows: int, *, shift: int, stride: int, reflect: bool,
                global_variance: bool) -> dict[str, np.ndarray | None]:
    """One LiRA AUC per target model for the default and for each option changed alone.

    ``phi`` ``(K + T, n, q)`` in :func:`~ddrepro.privacy.queries.query_images`' order (all
    shifted crops), ``member`` ``(K + T, n)``, the first ``shadows`` rows the shadows. The
    default (mean fit, ``global_variance`` as given, the image and its mirror) and the fits
    read the plain queries of the same models; "shifted crops" reads them all. An option that
    cannot run at this size (per-example variances with < 2 IN or OUT shadows) is None.
    """
    plain = phi[..., plain_queries(shift, stride, reflect)]
    kw = dict(global_variance=global_variance)
    out: dict[str, np.ndarray | None] = {"default": per_target_auc(plain, member, shadows, **kw)}
    out["median fit (median, 1.4826 MAD)"] = per_target_auc(plain, member, shadows, fit="median", **kw)
    out["reference fit (median, std)"] = per_target_auc(plain, member, shadows, fit="reference", **kw)
    toggled = "per-example variance" if global_variance else "pooled (fixed) variance"
    sh = member[:shadows]
    enough = int(sh.sum(0).min()) >= 2 and int((~sh).sum(0).min()) >= 2
    out[toggled] = per_target_auc(plain, member, shadows, global_variance=not global_variance) \
        if (enough or not global_variance) else None
    out[f"shifted crops ({phi.shape[-1]} queries)"] = per_target_auc(phi, member, shadows, **kw)
    return out


__all__ = ["control_shifted", "dm_shifted_phi", "option_aucs", "shifted_jobs"]
