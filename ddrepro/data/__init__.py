"""Real data sets, offline first (see ``docs/architecture.md``)."""

from .dataset import ImageData

__all__ = ["ImageData"]
