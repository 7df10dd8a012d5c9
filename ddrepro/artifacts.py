"""Content-addressed cache for expensive results, written atomically, read safely.

A key hashes the result's full configuration, the identity of its input data,
its seed and the *code it depends on*, so editing that code invalidates what
it produced (the blind spot of notebook-level caches such as jupyter-cache).
"The code it depends on" is scoped (:func:`code_version`): the module that
computes the artifact plus every ddrepro module it imports, transitively,
plus the source of any callable passed in (a loss written in a notebook
cell). A docstring edit in ``plots.py`` therefore leaves hundreds of cached
shadow condensations valid, while an edit to ``condense/dm.py`` does not.
The code is read as it was when this process imported ddrepro: a Jupyter
kernel keeps running the modules it imported after their files are edited,
so its results stay filed under that code, and the edit (reported once by a
:class:`SourceChangedWarning`) takes effect after a kernel restart.

Every write goes to a temporary file in the same directory, is flushed to
disk and then renamed over the target: a run killed with ``kill -9`` leaves
either the old state or the complete new file, never a truncated one, and a
rerun resumes from whatever had finished.

Artifacts hold tensors, numbers, strings and plain containers only, and are
read with ``torch.load(weights_only=True)``: a cache directory shared on a
cluster cannot make a reader run code. A file that cannot be read that way
(corrupt, foreign, or a crafted pickle) is reported in one line naming it
and recomputed.

Location: ``$DDREPRO_CACHE`` or ``~/.cache/ddrepro/artifacts``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import os
import tempfile
import types
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

import torch

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name
# What a cached computation's code is named by: a ddrepro module (name or
# object) or a callable (a package function, or one defined in a notebook).
CodeTarget = Union[str, types.ModuleType, Callable[..., Any]]


class ArtifactWarning(UserWarning):
    """An artifact on disk could not be read safely; it is recomputed."""


class SourceChangedWarning(UserWarning):
    """A package file changed after this process imported it; restart to run (and key) the edit."""


def cache_root() -> Path:
    """Where artifacts live; ``DDREPRO_CACHE`` overrides the user cache directory."""
    env = os.environ.get("DDREPRO_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ddrepro" / "artifacts"
    return base.expanduser()


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 over every ``.py`` file of the package (path and content).

    The notebook runner keys executed chapters on it; artifacts use the
    narrower :func:`code_version`.
    """
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# -- scoped code versions -----------------------------------------------------

def _snapshot() -> dict[Path, tuple[int, bytes]]:
    """Every package source file: its modification time and its bytes."""
    return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in PACKAGE_DIR.rglob("*.py")}


# The sources as this process imported them (ddrepro's modules import this one
# early, in the same statement or cell). Hashing the files as they are *later*
# would file results computed by the old, still loaded code under the new code's key.
_IMPORTED = _snapshot()
_REPORTED: set[Path] = set()


def _imported_source(path: Path) -> bytes:
    """``path``'s bytes as imported; a file that was not there then is read now."""
    snap = _IMPORTED.get(path)
    return snap[1] if snap is not None else path.read_bytes()


def _report_edits(modules: tuple[str, ...]) -> None:
    """Warn once per file of ``modules`` that differs on disk from what this process imported."""
    for module in modules:
        path = _module_file(module)
        snap = _IMPORTED.get(path)
        if snap is None or path in _REPORTED:
            continue
        try:
            if path.stat().st_mtime_ns == snap[0] or path.read_bytes() == snap[1]:
                continue
        except OSError:
            continue
        _REPORTED.add(path)
        warnings.warn(f"ddrepro: {path} changed after this process imported it; results are still "
                      "computed by, and cached under, the code imported then. Restart the kernel "
                      "(or the run) to use the edit.", SourceChangedWarning, stacklevel=4)


def _module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (``ddrepro.x.y``), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(name: str, path: Path) -> set[str]:
    """Package modules that module ``name`` imports anywhere in its body (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(_imported_source(path), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # ``from .pkg import name``: name may itself be a module
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if _module_file(m) is not None}


@lru_cache(maxsize=None)
def module_closure(name: str) -> tuple[str, ...]:
    """``name`` and every package module it imports, transitively, sorted."""
    if _module_file(name) is None:
        raise ValueError(f"{name!r} is not a module of the {PACKAGE} package.")
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_imported_modules(current, _module_file(current)) - seen)
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def _module_hash(name: str) -> str:
    digest = hashlib.sha256()
    for module in module_closure(name):
        digest.update(module.encode())
        digest.update(_imported_source(_module_file(module)))
    return digest.hexdigest()


def _closure_version(name: str) -> str:
    _report_edits(module_closure(name))
    return _module_hash(name)


def _code_object_digest(code: types.CodeType) -> str:
    """A stand-in for source text: bytecode, constants (nested code too) and names."""
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        digest.update((_code_object_digest(const) if isinstance(const, types.CodeType)
                       else repr(const)).encode())
    digest.update(repr(code.co_names).encode())
    return digest.hexdigest()


def _callable_version(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    module = getattr(fn, "__module__", None) or ""
    if module == PACKAGE or module.startswith(PACKAGE + "."):
        return _closure_version(module)
    try:  # a notebook cell's function: IPython keeps the cell's text for inspect
        return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is None:
            raise ValueError(f"cannot version {fn!r}: no source and no code object; pass a "
                             "function defined in Python.") from None
        return _code_object_digest(code)


def code_version(*targets: CodeTarget) -> str:
    """A digest of the code behind a computation (see the module docstring).

    Each target is a package module (``"ddrepro.condense.dm"`` or the module
    object), whose import closure is hashed, or a callable: a package
    function stands for its module's closure, any other function for its
    source text (bytecode when the source is unavailable).
    """
    digest = hashlib.sha256()
    for target in targets:
        if isinstance(target, types.ModuleType):
            target = target.__name__
        version = _closure_version(target) if isinstance(target, str) else _callable_version(target)
        digest.update(version.encode())
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


def artifact_key(kind: str, parts: dict[str, Any], *, code: tuple[CodeTarget, ...] | None = None,
                 include_source: bool = True) -> str:
    """A stable hex key for ``parts`` (config, data identity, seed, ...) and the code behind them.

    ``code``: the modules/callables the computation depends on
    (:func:`code_version`); None versions it by the whole package.
    """
    payload = {"kind": kind, "parts": _canonical(parts)}
    if include_source:
        payload["source"] = source_hash() if code is None else code_version(*code)
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
    """``torch.load`` restricted to tensors and plain containers: never runs code from the file."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


class ArtifactStore:
    """Artifacts on disk under ``root/<kind>/<key>.pt``."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    def load(self, kind: str, key: str) -> Any | None:
        """The artifact, or None when absent or unreadable (reported, then recomputed by the caller)."""
        path = self.path(kind, key)
        if not path.exists():
            return None
        try:
            return load_torch(path)
        except Exception as err:  # noqa: BLE001  corrupt, foreign, or not plain data
            first = (str(err).strip().splitlines() or [""])[0][:160]
            warnings.warn(f"ddrepro: cannot read artifact {path} ({type(err).__name__}: {first}); "
                          "recomputing it.", ArtifactWarning, stacklevel=3)
            return None

    def delete(self, kind: str, key: str) -> None:
        """Remove an artifact if present (e.g. a run's resume state once the result is saved)."""
        self.path(kind, key).unlink(missing_ok=True)

    def save(self, kind: str, key: str, obj: Any) -> Path:
        path = self.path(kind, key)
        save_torch(obj, path)
        return path


def cached(
    kind: str,
    parts: dict[str, Any],
    compute: Callable[[], T],
    *,
    code: tuple[CodeTarget, ...] | None = None,
    store: ArtifactStore | None = None,
    enabled: bool = True,
) -> T:
    """Return the artifact for ``parts`` from disk, or compute, save and return it.

    ``code`` names what the computation runs (:func:`artifact_key`); the
    result must be plain data (tensors, numbers, strings, lists, tuples, dicts).
    """
    if not enabled:
        return compute()
    store = store or ArtifactStore()
    key = artifact_key(kind, parts, code=code)
    found = store.load(kind, key)
    if found is not None:
        return found
    result = compute()
    store.save(kind, key, result)
    return result


__all__ = [
    "ArtifactStore", "ArtifactWarning", "SourceChangedWarning", "artifact_key", "atomic_write_bytes", "cache_root",
    "cached", "code_version", "load_torch", "module_closure", "save_torch", "source_hash",
    "tensor_digest",
]
