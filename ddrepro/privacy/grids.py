"""Chapter 2's grids: the claims' preparations and shadows, and the critique's experiments."""

from __future__ import annotations

import torch

from ..executor import Job
from ..grids import register_grid
from ..profiles import Profile
from .arms import arm_jobs
from .critique import critique_jobs, critique_study
from .membership import claims_jobs


@register_grid("claims")
def privacy_claims(prof: Profile, *, seed: int, device: str | torch.device,
                   quiet: bool | None) -> list[Job]:
    """Chapter 2's claims (``book/02_privacy/claims.md``): loss-MIA preparations, LiRA's shadow
    and target syntheses and the real-data control (:func:`ddrepro.privacy.membership.claims_jobs`)."""

    return claims_jobs(prof, seed=seed, device=device, quiet=quiet)


@register_grid("critique")
def privacy_critique(prof: Profile, *, seed: int, device: str | torch.device,
                     quiet: bool | None) -> list[Job]:
    """Chapter 2's critique (``book/02_privacy/critique.md``): DM's LiRA syntheses (shared with
    ``claims``), the accuracy-matched baseline, DP-SGD and the canary audit
    (:func:`ddrepro.privacy.critique.critique_jobs`), then LiRA's other arms on DM's halves and
    seeds: DM with real initialisation, KIP and the non-private model on the full half
    (:func:`ddrepro.privacy.arms.arm_jobs`; added here, not in ``critique.py``, so that the
    existing jobs' code closures, and with them their cache keys, do not move)."""

    jobs = critique_jobs(prof, seed=seed, device=device, quiet=quiet)
    return jobs + arm_jobs(prof, critique_study(prof, seed), seed=seed, device=device, quiet=quiet)


__all__ = ["privacy_claims", "privacy_critique"]
