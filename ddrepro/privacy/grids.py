"""Chapter 2's grids: the claims' preparations and shadows, and the critique's experiments."""

from __future__ import annotations

import torch

from ..executor import Job
from ..grids import register_grid
from ..profiles import Profile
from .critique import critique_jobs
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
    (:func:`ddrepro.privacy.critique.critique_jobs`)."""

    return critique_jobs(prof, seed=seed, device=device, quiet=quiet)


__all__ = ["privacy_claims", "privacy_critique"]
