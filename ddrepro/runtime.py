"""Small runtime helpers shared by every stage: device choice, seeded generators, progress."""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from typing import Iterable, TypeVar

import torch
from tqdm import tqdm

T = TypeVar("T")

# Set by the batch runner (ddrepro.runner) in the environment of the kernel it starts.
ENV_STAGE = "DDREPRO_STAGE"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else the CPU; anything else is checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available here; use 'cpu' or 'auto'.")
    return dev


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """An explicit random stream; no code in ddrepro draws from the global RNG."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def is_quiet(quiet: bool | None = None) -> bool:
    """``quiet`` wins when given; otherwise ``DDREPRO_QUIET=1`` silences progress bars."""
    if quiet is not None:
        return bool(quiet)
    return os.environ.get("DDREPRO_QUIET", "") not in ("", "0", "false", "False")


def in_jupyter_kernel() -> bool:
    """True inside an IPython kernel (JupyterLab, papermill), False in a script or terminal IPython."""
    ipython = sys.modules.get("IPython")  # never imported here: a script has no shell to ask
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


@lru_cache(maxsize=1)
def _widgets_importable() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def progress_kind(*, kernel: bool, widgets: bool, batch: bool) -> str:
    """``"notebook"`` (tqdm's widget bar) or ``"plain"`` (tqdm on stderr).

    The widget bar only where someone watches a kernel that can draw it: an
    interactive kernel with ipywidgets. A batch run (``$DDREPRO_STAGE`` set by
    the runner) keeps plain bars even though papermill's kernel is a real one:
    the built site drops stderr, while a widget would leave an empty
    placeholder on the page. A terminal or a script has no widgets to draw.
    """
    return "notebook" if kernel and widgets and not batch else "plain"


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None,
             quiet: bool | None = None, **kwargs) -> Iterable[T]:
    """A progress bar over ``iterable`` (unless quiet), in the form :func:`progress_kind` picks."""
    kind = progress_kind(kernel=in_jupyter_kernel(), widgets=_widgets_importable(),
                         batch=bool(os.environ.get(ENV_STAGE)))
    if kind == "notebook":
        from tqdm.notebook import tqdm as bar  # imports ipywidgets: only when it will be drawn
    else:
        bar, kwargs = tqdm, {"dynamic_ncols": True, **kwargs}
    # leave=False: a finished bar disappears instead of piling up one line per loop.
    return bar(iterable, desc=desc, total=total, disable=is_quiet(quiet), leave=False, **kwargs)


__all__ = ["ENV_STAGE", "resolve_device", "make_generator", "in_jupyter_kernel", "is_quiet",
           "progress", "progress_kind"]
