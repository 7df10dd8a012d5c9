"""ddrepro: an executable reproduction of trustworthy dataset distillation research.

The chapters of the book (``book/``) call this package; the package holds the
reusable pieces, one file per idea (see ``docs/architecture.md``).
"""

from .config import (
    AugConfig, DataConfig, DMConfig, EvalConfig, GMConfig, HerdingConfig,
    KIPConfig, MMDConfig, NetConfig,
)
from .profiles import PROFILES, Profile, get_profile
from .runtime import make_generator, resolve_device
from .synthetic import SyntheticSet

__version__ = "0.1.0"

__all__ = [
    "AugConfig", "DataConfig", "DMConfig", "EvalConfig", "GMConfig", "HerdingConfig",
    "KIPConfig", "MMDConfig", "NetConfig", "PROFILES", "Profile", "SyntheticSet",
    "get_profile", "make_generator", "resolve_device",
]
