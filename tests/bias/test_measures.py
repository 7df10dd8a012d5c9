"""Chapter 4's scorecard measurements: per-seed values, pairing, colour share and its change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ddrepro.bias.biased import COLOURS
from ddrepro.bias.measures import (colour_share_change, initial_images, own_colour_share,
                                   paired_by_seed, per_seed, recovered_share)
from ddrepro.data import ImageData
from ddrepro.synthetic import SyntheticSet

MEAN, STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # normalised == pixels


def painted(colours: torch.Tensor) -> torch.Tensor:
    """One 3x6x6 image per colour: a bright square 'digit' in that colour on black."""
    images = torch.zeros(len(colours), 3, 6, 6)
    images[:, :, 1:5, 1:5] = colours.view(-1, 3, 1, 1)
    return images


def test_own_colour_share_counts_digits_in_their_class_colour():
    labels = torch.arange(10)
    assert own_colour_share(painted(COLOURS), labels, MEAN, STD) == pytest.approx(100.0)
    shifted = painted(COLOURS[(labels + 1) % 10])  # every digit in the next digit's colour
    assert own_colour_share(shifted, labels, MEAN, STD) == pytest.approx(0.0)
    half = torch.cat([painted(COLOURS[:5]), painted(COLOURS[(torch.arange(5, 10) + 1) % 10])])
    assert own_colour_share(half, labels, MEAN, STD) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="RGB"):
        own_colour_share(torch.zeros(2, 1, 6, 6), labels[:2], (0.0,), (1.0,))


def real_set(order: torch.Tensor) -> ImageData:
    """20 real images in class colours (rows 10-19 conflicting), root indices 100 + row."""
    labels = torch.arange(10).repeat(2)
    colours = torch.cat([COLOURS, COLOURS[(torch.arange(10) + 3) % 10]])
    return ImageData(painted(colours)[order], labels[order], "toy", "train", MEAN, STD,
                     tuple(str(c) for c in range(10)), flip_ok=False,
                     source_index=(100 + order).long())


def test_initial_images_follow_root_indices_not_rows():
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    real = real_set(order)
    used = torch.tensor([110, 101, 119])  # root indices, in the synthetic set's order
    syn = SyntheticSet(torch.zeros(3, 3, 6, 6), torch.tensor([0, 1, 9]), MEAN, STD,
                       meta={"init_indices": used})
    start = initial_images(syn, real)
    full = real_set(torch.arange(20))
    assert torch.equal(start, full.images[used - 100])
    with pytest.raises(ValueError, match="not in"):
        initial_images(SyntheticSet(torch.zeros(1, 3, 6, 6), torch.tensor([0]), MEAN, STD,
                                    meta={"init_indices": torch.tensor([7])}), real)
    with pytest.raises(ValueError, match="not initialised from real"):
        initial_images(SyntheticSet(torch.zeros(1, 3, 6, 6), torch.tensor([0]), MEAN, STD,
                                    meta={"init_indices": None}), real)


def test_colour_share_change_is_final_minus_initial():
    real = real_set(torch.arange(20))
    used = torch.arange(110, 120)  # the ten conflicting images: 0 % own colour at the start
    labels = torch.arange(10)
    kept = SyntheticSet(real.images[10:].clone(), labels, MEAN, STD, meta={"init_indices": used})
    assert colour_share_change(kept, real) == pytest.approx(0.0)
    repainted = SyntheticSet(painted(COLOURS), labels, MEAN, STD, meta={"init_indices": used})
    assert colour_share_change(repainted, real) == pytest.approx(100.0)


def runs_frame() -> pd.DataFrame:
    return pd.DataFrame({"method": ["dm", "dm", "dm", "deb", "deb", "full set"],
                         "ratio": [95.0] * 6, "seed": [1, 0, 2, 0, 1, 0],
                         "conflicting": [12.0, 10.0, 14.0, 30.0, 33.0, 80.0]})


def test_per_seed_and_pairing_use_shared_seeds_in_order():
    runs = runs_frame()
    dm, deb = per_seed(runs, "dm", 95.0), per_seed(runs, "deb", 95.0)
    assert list(dm.index) == [0, 1, 2] and list(dm) == [10.0, 12.0, 14.0]
    a, b = paired_by_seed(deb, dm)
    assert a.tolist() == [30.0, 33.0] and b.tolist() == [10.0, 12.0]
    with pytest.raises(ValueError, match="no shared seeds"):
        paired_by_seed(dm, per_seed(runs, "dm", 80.0))
    twice = pd.concat([runs, runs.assign(severity=3)]).fillna({"severity": 4})
    with pytest.raises(ValueError, match="several rows per seed"):
        per_seed(twice, "dm", 95.0)
    assert list(per_seed(twice, "dm", 95.0, severity=3)) == [10.0, 12.0, 14.0]


def test_recovered_share_per_seed():
    share = recovered_share([10.0, 20.0], [55.0, 50.0], 100.0)
    assert np.allclose(share, [50.0, 100 * 30 / 80])
    with pytest.raises(ValueError, match="no gap"):
        recovered_share([10.0, 120.0], [20.0, 130.0], 100.0)


def test_recovered_share_with_a_full_set_per_seed():
    # seed 1: gap 80 - 10, half recovered; seed 2: gap 60 - 20, a quarter recovered
    share = recovered_share([10.0, 20.0], [45.0, 30.0], [80.0, 60.0])
    assert np.allclose(share, [50.0, 25.0])
    with pytest.raises(ValueError, match="one value per seed"):
        recovered_share([10.0, 20.0], [45.0, 30.0], [80.0, 60.0, 70.0])
    with pytest.raises(ValueError, match="no gap"):
        recovered_share([10.0, 70.0], [45.0, 75.0], [80.0, 60.0])
