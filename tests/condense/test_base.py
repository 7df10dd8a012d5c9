"""The shared condenser interface, exercised through the `random` baseline."""

from functools import partial

import pytest
import torch

from ddrepro.condense import CONDENSERS, condense, initial_synthetic
from helpers import toy_image_data


toy_data = partial(toy_image_data, n_per_class=6, classes=4)


def test_random_picks_ipc_distinct_real_images_per_class(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    real = toy_data()
    syn = condense("random", real, ipc=3, seed=0, quiet=True)
    assert syn.images.shape == (12, 1, 8, 8)
    assert syn.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for image, label in zip(syn.images, syn.labels):
        matches = (real.images == image).flatten(1).all(1).nonzero().flatten()
        assert len(matches) == 1 and real.labels[matches[0]] == label
    per_class = syn.images.view(4, 3, -1)
    assert all(torch.unique(block, dim=0).shape[0] == 3 for block in per_class)
    assert syn.meta["method"] == "random" and syn.meta["ipc"] == 3 and syn.meta["seed"] == 0


def test_same_seed_same_set_other_seed_other_set(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    real = toy_data()
    a = condense("random", real, ipc=2, seed=1, cache=False)
    b = condense("random", real, ipc=2, seed=1, cache=False)
    c = condense("random", real, ipc=2, seed=2, cache=False)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_result_is_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    real = toy_data()
    condense("random", real, ipc=2, seed=0)
    assert len(list((tmp_path / "synthetic").glob("*.pt"))) == 1
    condense("random", real, ipc=2, seed=0)
    assert len(list((tmp_path / "synthetic").glob("*.pt"))) == 1
    condense("random", toy_data(seed=5), ipc=2, seed=0)  # other data, other artifact
    assert len(list((tmp_path / "synthetic").glob("*.pt"))) == 2


def test_noise_init_is_standard_normal_with_balanced_labels():
    real = toy_data(n_per_class=50)
    gen = torch.Generator().manual_seed(0)
    images, labels, rows = initial_synthetic(real.images, real.indices_by_class(), 25, "noise", gen)
    assert rows is None
    assert images.shape == (100, 1, 8, 8)
    assert torch.bincount(labels).tolist() == [25] * 4
    assert abs(images.mean().item()) < 0.05 and abs(images.std().item() - 1) < 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "gan", "ipc": 1}, "Unknown condenser 'gan'"),
        ({"method": "random", "ipc": 0}, "ipc must be an integer >= 1"),
        ({"method": "random", "ipc": 1.5}, "ipc must be an integer >= 1"),
        ({"method": "random", "ipc": 1, "init": "zeros"}, "init must be one of"),
        ({"method": "random", "ipc": 1, "seed": "0"}, "seed must be an int"),
        ({"method": "random", "ipc": 7}, "fewer than ipc=7"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, message, tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=message):
        condense(real=toy_data(), **kwargs)


def test_registry_lists_random():
    assert "random" in CONDENSERS.names()


# Each method starts where its authors' code starts: DC's main.py defaults to --init noise
# and its Table 1 command passes none; DSA's command passes --init real; main_DM.py uses
# real; KIP.ipynb samples real images class-balanced; MMD runs DM's loop. Selection
# methods (random, herding) return real images whatever the init. EAD's Alg. 1 initialises
# from real images, class-balanced.
AUTHORS_INIT = {"random": "real", "herding": "real", "dc": "noise", "dsa": "real", "dm": "real",
                "mmd": "real", "kip": "real", "ead": "real", "mtt": "real",
                "rdm": "noise"}  # rdm: RDM-DC Alg. 3, Gaussian noise


def test_every_registered_condenser_has_its_authors_default_init():
    registered = {name: CONDENSERS.get(name).default_init for name in CONDENSERS.names()}
    assert registered == AUTHORS_INIT  # a new method, or a changed default, is a deliberate edit here


def test_dc_starts_from_noise_unless_told_otherwise():
    from ddrepro.config import GMConfig, NetConfig

    kw = dict(config=GMConfig(steps=1, outer_loops=1, inner_loops=1, batch_real=4, batch_train=4),
              net_cfg=NetConfig(width=8, depth=2), device="cpu", quiet=True, cache=False)
    default = condense("dc", toy_data(), 1, **kw)
    assert default.meta["init"] == "noise" and default.meta["init_indices"] is None
    real = condense("dc", toy_data(), 1, init="real", **kw)
    assert real.meta["init"] == "real" and real.meta["init_indices"] is not None
