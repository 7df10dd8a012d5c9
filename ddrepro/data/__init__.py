"""Real data sets, offline first (see ``docs/architecture.md``).

``load(name, split)`` returns normalised ``ImageData``; ``info(name)`` its facts
without reading a file; ``fetch`` / ``status`` get and check the raw files
listed, with their digests, in ``sources.py``. Files live under ``$DDREPRO_DATA``
(default ``~/.cache/ddrepro/data``, honouring ``XDG_CACHE_HOME``).
``derive(name, parent, config)`` builds seeded, cached variants of a set
(mislabelled, perturbed, ZCA-whitened; ``derived.py``).
"""

from .catalog import DatasetInfo, data_root, info, names
from .dataset import ImageData
from .derived import DERIVED, BuiltRows, MislabelConfig, PerturbConfig, derive, register_derived
from .fetching import DataMissingError, FetchError, fetch, status
from .loading import load
from .zca import ZCA, ZCAConfig, fit_zca  # also registers the "zca" derived set

__all__ = ["ImageData", "DatasetInfo", "load", "info", "names", "fetch", "status",
           "data_root", "DataMissingError", "FetchError", "derive", "DERIVED", "register_derived",
           "BuiltRows", "MislabelConfig", "PerturbConfig", "ZCAConfig", "ZCA", "fit_zca"]
