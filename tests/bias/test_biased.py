"""CMNIST-DD / CCIFAR10-DD builders: exact ratios, the colours, determinism, provenance, corruptions."""

from __future__ import annotations

import pytest
import torch

from ddrepro.data import DataMissingError, ImageData
from ddrepro.bias.biased import (COLOUR_STD, COLOURS, CORRUPTION_NAMES, CORRUPTIONS, BiasedConfig,
                                 attribute_counts, ccifar10_dd, cmnist_dd, corrupt, load_biased)
from ddrepro.pixels import to_pixels


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    return tmp_path


def grey_digits(n_per_class: int = 40, value: float | None = None, seed: int = 0) -> ImageData:
    """10 classes of 1x6x6 'digits' with pixels in [0, 1] (all ``value`` when given)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n_per_class * 10, 1, 6, 6)
    pixels = torch.full(shape, value) if value is not None else torch.rand(shape, generator=gen)
    labels = torch.arange(10).repeat(n_per_class)
    return ImageData(pixels, labels, "grey", "train", (0.0,), (1.0,),
                     tuple(str(c) for c in range(10)), flip_ok=False)


@pytest.mark.parametrize("ratio", [0.0, 10.0, 50.0, 80.0, 95.0, 100.0])
def test_ratio_is_exact_per_class(cache_dir, ratio):
    data = cmnist_dd(grey_digits(40), BiasedConfig(ratio=ratio), seed=1)
    for c in range(10):
        rows = data.labels == c
        aligned = int(data.attrs["aligned"][rows].sum())
        assert aligned == round(40 * ratio / 100)
        colours = data.attrs["colour"][rows & ~data.attrs["aligned"]]
        # the conflicting images share the other nine colours equally (up to rounding)
        counts = torch.bincount(colours, minlength=10)
        assert counts[c] == 0
        others = counts[torch.arange(10) != c]
        assert int(others.max() - others.min()) <= 1
    assert torch.equal(data.attrs["aligned"], data.attrs["colour"] == data.labels)


def test_attribute_counts_follow_the_release_milestones():
    # 95 % of 21 images: round(19.95) = 20 aligned, the last conflicting image goes to a later colour
    counts = attribute_counts(21, 3, 95.0, 10)
    assert counts.sum() == 21 and counts[3] == 20
    assert torch.equal(attribute_counts(90, 0, 0.0, 10), torch.tensor([0] + [10] * 9))


@pytest.mark.parametrize("severity", [1, 2, 3, 4])
def test_colours_as_specified(cache_dir, severity):
    data = cmnist_dd(grey_digits(30, value=1.0), BiasedConfig(ratio=50.0, severity=severity))
    pixels = to_pixels(data.images, data.mean, data.std)
    assert pixels.shape[1:] == (3, 6, 6) and pixels.min() >= 0 and pixels.max() <= 1
    assert torch.allclose(pixels * 255, torch.round(pixels * 255), atol=1e-3)  # 8-bit
    per_image = pixels[:, :, 0, 0]
    target = COLOURS[data.attrs["colour"]]
    deviation = (per_image - target).abs()
    assert deviation.max() <= 6 * COLOUR_STD[severity] + 1 / 255
    # each image carries its own jitter, of about the severity's std
    assert (per_image - target).std() == pytest.approx(COLOUR_STD[severity], rel=0.5, abs=2 / 255)
    # the whole image has one colour: every pixel equals the first
    assert torch.equal(pixels, per_image[:, :, None, None].expand_as(pixels))


def test_background_stays_black_and_intensity_scales(cache_dir):
    grey = grey_digits(10)
    data = cmnist_dd(grey, BiasedConfig(ratio=100.0))
    pixels = to_pixels(data.images, data.mean, data.std)
    dark = grey.images[:, 0] == 0
    if dark.any():
        assert pixels.permute(1, 0, 2, 3)[:, dark].abs().max() == 0
    brightest = pixels.amax(1)  # the colour times the grey level, at most the grey level
    assert bool((brightest <= grey.images[:, 0] + 1e-6).all())


def test_deterministic_by_seed_and_cached(cache_dir):
    grey = grey_digits(20)
    a = cmnist_dd(grey, BiasedConfig(ratio=80.0), seed=3)
    b = cmnist_dd(grey, BiasedConfig(ratio=80.0), seed=3, cache=False)
    c = cmnist_dd(grey, BiasedConfig(ratio=80.0), seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.attrs["colour"], b.attrs["colour"])
    assert a.digest() == cmnist_dd(grey, BiasedConfig(ratio=80.0), seed=3).digest()
    assert not torch.equal(a.attrs["colour"], c.attrs["colour"])
    assert a.digest() != c.digest()
    assert any(cache_dir.rglob("*"))


def test_attrs_and_provenance_survive_take(cache_dir):
    grey = grey_digits(20).take(torch.arange(150, 50, -1))  # a subset: source rows kept
    data = cmnist_dd(grey, BiasedConfig(ratio=50.0))
    assert torch.equal(data.source_index, grey.source_index)
    picks = torch.tensor([5, 0, 77])
    sub = data.take(picks).take(torch.tensor([2, 0]))
    assert torch.equal(sub.attrs["colour"], data.attrs["colour"][picks][[2, 0]])
    assert torch.equal(sub.attrs["aligned"], data.attrs["aligned"][picks][[2, 0]])
    assert torch.equal(sub.source_index, grey.source_index[picks][[2, 0]])


@pytest.mark.parametrize("bad", [-1.0, 100.5, 250.0])
def test_bad_ratio(bad):
    with pytest.raises(ValueError, match="ratio"):
        BiasedConfig(ratio=bad)


@pytest.mark.parametrize("bad", [0, 5, 2.5])
def test_bad_severity(bad):
    with pytest.raises(ValueError, match="severity"):
        BiasedConfig(ratio=50.0, severity=bad)


def test_bad_input_before_any_data_is_read(tmp_path):
    with pytest.raises(ValueError, match="ratio"):
        load_biased("cmnist_dd", "train", 101.0, root=tmp_path)
    with pytest.raises(ValueError, match="unknown biased data set"):
        load_biased("cmnist", "train", 50.0, root=tmp_path)


def test_missing_cifar_names_folder_and_files(tmp_path):
    with pytest.raises(DataMissingError, match=r"cifar-10-batches-py.*data_batch_1"):
        load_biased("ccifar10_dd", "train", 95.0, root=tmp_path)


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
@pytest.mark.parametrize("severity", [1, 4])
def test_corruptions_change_images_and_keep_range(name, severity):
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    attribute = torch.full((3,), CORRUPTION_NAMES.index(name))
    out = corrupt(pixels, attribute, severity, torch.Generator().manual_seed(1))
    assert out.shape == pixels.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert (out - pixels).abs().mean() > 0.01
    again = corrupt(pixels, attribute, severity, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_contrast_and_saturate_known_answers():
    grey = torch.full((1, 3, 8, 8), 0.5)
    grey[..., :4] = 0.2
    out = CORRUPTIONS["contrast"](grey[0].permute(1, 2, 0).double().numpy(), 4, None)
    # contrast 0.15: every pixel moves 85 % of the way to the image mean
    assert abs(out.std() - 0.15 * grey.std().item()) < 1e-3
    # a grey image has no saturation to scale
    assert abs(CORRUPTIONS["saturate"](grey[0].permute(1, 2, 0).double().numpy(), 1, None)
               - grey[0].permute(1, 2, 0).numpy()).max() < 1e-6


def test_ccifar_builder_on_random_rgb(cache_dir):
    gen = torch.Generator().manual_seed(0)
    rgb = ImageData(torch.rand(20, 3, 32, 32, generator=gen), torch.arange(10).repeat(2), "rgb",
                    "train", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), tuple(map(str, range(10))))
    data = ccifar10_dd(rgb, BiasedConfig(ratio=50.0, severity=2))
    assert data.shape == (3, 32, 32) and int(data.attrs["aligned"].sum()) == 10
    assert torch.equal(data.attrs["corruption"], data.attrs["bias"])


# LfF's data/resource/colors.th (Nam et al. 2020), read from github.com/alinlab/LfF at commit
# e66796ec117ea52d2e44176055b7ef7959680a1b ("LfF init"): a float32 tensor (10, 3, 1, 1), loaded
# with torch.load and printed to 8 decimals. Its colorize() (data/colored_mnist_protocol.py) jitters
# with std [0.05, 0.02, 0.01, 0.005, 0.002][severity - 1].
LFF_COLORS_TH = (
    (0.98368233, 0.31251901, 0.16857535),
    (0.99052966, 0.91560525, 0.35151219),
    (0.67296398, 0.46107048, 0.57980818),
    (0.78325194, 0.83155590, 0.60132939),
    (0.08801579, 0.77796334, 0.98180777),
    (0.32139337, 0.96105456, 0.44644988),
    (0.02461588, 0.23565048, 0.75866628),
    (0.55524695, 0.10158014, 0.76176316),
    (0.20772320, 0.39294851, 0.01870239),
    (0.83365762, 0.20240927, 0.26694310),
)
LFF_COLOUR_STD = (0.05, 0.02, 0.01, 0.005)


def test_colours_are_lffs_file_values():
    """The palette is LfF's colors.th to 5e-6 (ours is typed to 5 decimals), colour b for digit b."""
    file_values = torch.tensor(LFF_COLORS_TH)
    assert COLOURS.shape == file_values.shape
    assert float((COLOURS - file_values).abs().max()) <= 5e-6
    assert tuple(COLOUR_STD[s] for s in (1, 2, 3, 4)) == LFF_COLOUR_STD
