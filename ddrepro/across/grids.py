"""The cross-chapter page's grid (``book/06_across/across.md``)."""

from __future__ import annotations

import torch

from ..executor import Job
from ..grids import register_grid
from ..profiles import Profile
from .study import bias_jobs, debias_jobs, privacy_jobs


@register_grid("across")
def across(prof: Profile, *, seed: int, device: str | torch.device, quiet: bool | None) -> list[Job]:
    """Every expensive call of the cross-chapter page: Chapter 2's LiRA models with DM (cache
    hits after ``claims``) and RDM-DC (``lira/dm/m3``, ``lira/rdm/m3``), DM (cache hits after
    ``debiased``) and RDM-DC on CMNIST-DD (``bias/rdm/r95/k0``), and the CMNIST-DD LiRA models
    with DM and debiased DM (``debias-lira/debiased/m3``)."""
    kwargs = dict(seed=seed, device=device, quiet=quiet)
    return privacy_jobs(prof, **kwargs) + bias_jobs(prof, **kwargs) + debias_jobs(prof, **kwargs)


__all__ = ["across"]
