"""Content-addressed cache for expensive results, written atomically.

A key hashes the result's full configuration, the identity of its input data,
its seed and the ddrepro source itself, so editing the code invalidates what
the code produced (the blind spot of notebook-level caches such as
jupyter-cache). Every write goes to a temporary file in the same directory,
is flushed to disk and then renamed over the target: a run killed with
``kill -9`` leaves either the old state or the complete new file, never a
truncated one, and a rerun resumes from whatever had finished.

Location: ``$DDREPRO_CACHE`` or ``~/.cache/ddrepro/artifacts``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent


def cache_root() -> Path:
    """Where artifacts live; ``DDREPRO_CACHE`` overrides the user cache directory."""
    env = os.environ.get("DDREPRO_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ddrepro" / "artifacts"
    return base.expanduser()


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 over every ``.py`` file of the package (path and content)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    """Turn configs, tuples, tensors and paths into JSON-stable values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **_canonical(dataclasses.asdict(value))}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, torch.Tensor):
        return {"__tensor__": tensor_digest(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (identity of input data)."""
    t = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def artifact_key(kind: str, parts: dict[str, Any], *, include_source: bool = True) -> str:
    """A stable hex key for ``parts`` (config, data identity, seed, ...)."""
    payload = {"kind": kind, "parts": _canonical(parts)}
    if include_source:
        payload["source"] = source_hash()
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the usual umask-based mode so a shared
        # DDREPRO_CACHE / DDREPRO_DATA stays readable by its other users.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` made atomic."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_torch(path: Path) -> Any:
    return torch.load(Path(path), map_location="cpu", weights_only=False)


class ArtifactStore:
    """Artifacts on disk under ``root/<kind>/<key>.pt``."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    def load(self, kind: str, key: str) -> Any | None:
        path = self.path(kind, key)
        if not path.exists():
            return None
        try:
            return load_torch(path)
        except Exception:  # a file from an older torch or a foreign writer: recompute it
            return None

    def save(self, kind: str, key: str, obj: Any) -> Path:
        path = self.path(kind, key)
        save_torch(obj, path)
        return path


def cached(
    kind: str,
    parts: dict[str, Any],
    compute: Callable[[], T],
    *,
    store: ArtifactStore | None = None,
    enabled: bool = True,
) -> T:
    """Return the artifact for ``parts`` from disk, or compute, save and return it."""
    if not enabled:
        return compute()
    store = store or ArtifactStore()
    key = artifact_key(kind, parts)
    found = store.load(kind, key)
    if found is not None:
        return found
    result = compute()
    store.save(kind, key, result)
    return result


__all__ = [
    "ArtifactStore", "artifact_key", "atomic_write_bytes", "cache_root", "cached",
    "load_torch", "save_torch", "source_hash", "tensor_digest",
]
