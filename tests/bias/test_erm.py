"""The ERM-feature cell of the debiasing study: its weights are the inverse density of the ERM
features at the settings chosen on validation, it distils the set so weighted, the choice refuses
an overlapping test split, and the grid gains its jobs without moving any other job."""

from __future__ import annotations

import pytest
import torch

from ddrepro import get_profile
from ddrepro.bias import grids as bias_grids
from ddrepro.bias.biased import BiasedConfig, cmnist_dd
from ddrepro.bias.debias import DebiasConfig, inverse_density_weights
from ddrepro.bias.erm import (ERM_BANDWIDTHS, WEIGHT_CAPS, choose_weighting, erm_distil_and_score,
                              erm_feature_map, erm_features, erm_weighted)
from ddrepro.bias.study import split_ids, with_cells
from ddrepro.condense import condense
from ddrepro.config import NetConfig, replace_checked
from ddrepro.data import ImageData
from ddrepro.grids import GRIDS
from ddrepro.tuning import Choice

NET = NetConfig(width=16, depth=2)


def grey_pool(n: int, split: str, seed: int) -> ImageData:
    """Grey noise 'digits' of 10 classes, coloured at 80 % aligned: only the colour is signal."""
    gen = torch.Generator().manual_seed(seed)
    grey = ImageData(torch.rand(n, 1, 8, 8, generator=gen), torch.arange(10).repeat(n // 10),
                     "grey", split, (0.0,), (1.0,), tuple(map(str, range(10))), flip_ok=False)
    return cmnist_dd(grey, BiasedConfig(ratio=80.0), seed=seed)


@pytest.fixture
def splits(private_cache):
    """A training set of 300 images, a validation split of 100 other training images, a test split."""
    pool = grey_pool(400, "train", seed=0)
    real, val = pool.take(torch.arange(300)), with_cells(pool.take(torch.arange(300, 400)))
    test = with_cells(grey_pool(100, "test", seed=1))
    return real, val, test


def test_weights_are_the_inverse_density_of_the_erm_features_at_the_chosen_settings(splits):
    real, val, test = splits
    weighted, choice, seconds = erm_weighted(real, val, test, net_cfg=NET, seed=0)
    assert torch.equal(weighted.images, real.images) and seconds > 0
    # the features are the ERM network's, trained on the training set (cached; a fresh run agrees)
    features = erm_features(real, val, net_cfg=NET, seed=0)
    fresh = erm_feature_map(real, net_cfg=NET, epochs=3, dims=8, seed=0)
    assert torch.allclose(fresh(real), features["train"], atol=1e-4)
    assert torch.allclose(fresh(val), features["val"], atol=1e-4)
    # the settings are the validation choice, made again the same way
    again = choose_weighting("ERM embedding", features["val"], val, test, bandwidths=ERM_BANDWIDTHS)
    assert choice.value == again.value and choice.scores == again.scores
    assert {v for v, _ in choice.scores} == {(h, cap) for h in ERM_BANDWIDTHS for cap in WEIGHT_CAPS}
    assert choice.rows == frozenset(split_ids(val))
    # and the weights are the inverse density of the training features at those settings
    bandwidth, cap = choice.value
    expected = inverse_density_weights(features["train"], real.labels, 10,
                                       DebiasConfig(bandwidth=bandwidth, max_weight=cap))
    assert torch.equal(weighted.weights, expected)
    assert not torch.allclose(weighted.weights, torch.ones(len(real)))


def test_the_choice_balances_the_validation_weights_best():
    """Two features on a toy validation split: one that separates the conflicting images (they get
    the weight, the aligned share falls towards a tenth) and one that does not; the score of every
    candidate is the balance of its weights, and the chosen one has the best score."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat_interleave(50)
    aligned = torch.tensor(([True] * 45 + [False] * 5) * 2)
    val = ImageData(torch.zeros(100, 3, 4, 4), labels, "toy", "train", (0.0,) * 3, (1.0,) * 3,
                    ("a", "b"), flip_ok=False, attrs={"aligned": aligned})
    test = ImageData(torch.zeros(4, 3, 4, 4), torch.tensor([0, 1, 0, 1]), "toy", "test",
                     (0.0,) * 3, (1.0,) * 3, ("a", "b"), flip_ok=False)
    separated = torch.where(aligned[:, None], 0.0, 5.0) + 0.01 * torch.randn(100, 2, generator=gen)
    choice = choose_weighting("toy", separated, val, test, bandwidths=(0.05, 50.0), caps=(None,))
    scores = dict(choice.scores)
    # a narrow kernel gives the two modes the same weight (aligned share 50 %, 40 points from the
    # fair tenth); a wide one weights every image alike (aligned share 90 %, 80 points from it)
    assert scores[(0.05, None)] == pytest.approx(-40.0, abs=1.0)
    assert scores[(50.0, None)] == pytest.approx(-80.0, abs=1.0)
    assert choice.value == (0.05, None)


def test_the_choice_refuses_a_test_split_that_shares_images(splits):
    real, val, test = splits
    features = erm_features(real, val, net_cfg=NET, seed=0)
    overlapping = with_cells(val.take(torch.arange(10)))  # ten validation images evaluated on
    with pytest.raises(ValueError, match="chosen on 10 of the test images"):
        choose_weighting("ERM embedding", features["val"], val, overlapping, bandwidths=ERM_BANDWIDTHS)
    with pytest.raises(ValueError, match="chosen on 10 of the test images"):
        erm_weighted(real, val, overlapping, net_cfg=NET, seed=0)
    with pytest.raises(ValueError, match="val_features"):
        choose_weighting("ERM embedding", features["train"], val, test, bandwidths=ERM_BANDWIDTHS)


def test_the_job_distils_the_erm_weighted_set(splits):
    real, val, test = splits
    prof = get_profile("smoke")
    config = prof.condenser_config("dm")
    eval_cfg = replace_checked(prof.eval, epochs=1, n_models=1)
    syn, result, seconds, choice = erm_distil_and_score(
        method="dm", real=real, val=val, test=test, ipc=2, config=config, seed=0, net_cfg=NET,
        aug_cfg=prof.aug, eval_cfg=eval_cfg, device="cpu", quiet=True)
    assert isinstance(choice, Choice) and seconds > 0 and set(result.groups)  # scored per cell
    weighted, same_choice, _ = erm_weighted(real, val, test, net_cfg=NET, seed=0)
    assert same_choice.value == choice.value
    common = dict(config=config, seed=0, net_cfg=NET, aug_cfg=prof.aug, device="cpu", quiet=True)
    # the set the job returns is DM's on the weighted set (a cache hit), not on the plain one
    assert torch.equal(syn.images, condense("dm", weighted, 2, **common).images)
    assert not torch.equal(syn.images, condense("dm", real, 2, **common).images)


def test_the_grid_adds_the_erm_jobs_and_leaves_the_others_alone(book_data, monkeypatch):
    prof = get_profile("smoke")
    jobs = GRIDS.get("debiased")(prof, seed=0, device="cpu", quiet=True)
    by_name = {job.name: job for job in jobs}
    names = {f"dm-erm/r{r:g}/k{k}" for r in prof.bias.debias_ratios for k in range(prof.bias.repeats)}
    assert names <= set(by_name)
    for ratio in prof.bias.debias_ratios:
        for k in range(prof.bias.repeats):
            erm, dm = by_name[f"dm-erm/r{ratio:g}/k{k}"], by_name[f"dm/r{ratio:g}/k{k}"].kwargs
            assert erm.fn is erm_distil_and_score
            kwargs = erm.kwargs
            # the seed's own biased set, DM's arguments, a validation split outside both splits
            assert kwargs["real"].digest() == dm["real"].digest() and kwargs["seed"] == dm["seed"]
            assert {k: v for k, v in kwargs.items() if k not in ("real", "test", "val")} == \
                {k: v for k, v in dm.items() if k not in ("real", "test")}
            val = kwargs["val"]
            assert val.split == "train" and len(val) == prof.bias.val_per_class * val.num_classes
            assert not bool(torch.isin(val.source_index, kwargs["real"].source_index).any())
            assert not set(split_ids(val)) & set(split_ids(kwargs["test"]))
    # without the ERM jobs the grid is job for job what it was: same order, functions, arguments
    monkeypatch.setattr(bias_grids, "erm_validates", lambda prof: False)
    before = GRIDS.get("debiased")(prof, seed=0, device="cpu", quiet=True)
    after = [job for job in jobs if not job.name.startswith("dm-erm/")]
    assert [j.name for j in before] == [j.name for j in after]
    for old, new in zip(before, after):
        assert old.fn is new.fn and old.kwargs.keys() == new.kwargs.keys(), old.name
        for key, value in old.kwargs.items():
            other = new.kwargs[key]
            same = value.digest() == other.digest() if isinstance(value, ImageData) else value == other
            assert same, (old.name, key)


def test_erm_jobs_need_held_out_training_images():
    """At `paper` the training set is every training image: no validation split, no ERM job."""
    assert bias_grids.erm_validates(get_profile("smoke")) and bias_grids.erm_validates(get_profile("cpu"))
    assert not bias_grids.erm_validates(get_profile("paper"))
