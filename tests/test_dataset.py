"""ImageData provenance: source indices, per-sample attributes and lineage digests."""

import pytest
import torch

from helpers import toy_image_data


def test_source_index_survives_a_subset_of_a_subset():
    data = toy_image_data(n_per_class=10, classes=3)
    first = torch.tensor([29, 3, 17, 8, 0, 21])
    once = data.take(first)
    twice = once.take(torch.tensor([4, 1, 5]))
    assert torch.equal(twice.source_index, torch.tensor([0, 3, 21]))
    assert torch.equal(twice.images, data.images[twice.source_index])
    assert torch.equal(twice.labels, data.labels[twice.source_index])
    mask = torch.zeros(len(once), dtype=torch.bool)
    mask[[0, 2]] = True
    assert torch.equal(once.take(mask).source_index, torch.tensor([29, 17]))
    # per-class subsets keep provenance too
    sub = data.subset_per_class(4, seed=1).subset(5, seed=2)
    assert torch.equal(sub.images, data.images[sub.source_index])


def test_attrs_and_weights_travel_with_their_rows():
    data = toy_image_data(n_per_class=5, classes=2)
    colour = torch.arange(len(data)) * 10
    flags = torch.arange(len(data)) % 3 == 0
    data = data.with_attrs(colour=colour, aligned=flags).with_weights(torch.arange(len(data)) + 1.0)
    sub = data.take(torch.tensor([7, 2])).take(torch.tensor([1]))
    assert sub.attrs["colour"].tolist() == [20] and sub.attrs["aligned"].tolist() == [False]
    assert sub.weights.tolist() == [3.0]


def test_digest_is_lineage_and_sees_rows_attrs_and_weights():
    data = toy_image_data(n_per_class=6, classes=2)
    a = data.take(torch.tensor([1, 2, 3]))
    assert a.digest() == data.take(torch.tensor([1, 2, 3])).digest()
    assert a.digest() != data.take(torch.tensor([3, 2, 1])).digest()  # order matters (batches)
    assert a.digest() != data.take(torch.tensor([1, 2, 4])).digest()
    assert a.digest() != a.with_attrs(flag=torch.zeros(3)).digest()
    assert a.digest() != a.with_weights(torch.ones(3)).digest()
    # a subset's identity is its root plus its rows: no pass over the pixels
    assert a.root_digest() == data.root_digest()
    other_root = toy_image_data(n_per_class=6, classes=2, seed=1)
    assert other_root.take(torch.tensor([1, 2, 3])).digest() != a.digest()


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([[0, 1]]), "1-D"),
    (torch.tensor([0.0, 1.0]), "int64"),
    (torch.tensor([0, 12]), "out of range"),
    (torch.ones(3, dtype=torch.bool), "mask has 3"),
])
def test_take_rejects_bad_indices(bad, match):
    with pytest.raises(ValueError, match=match):
        toy_image_data(n_per_class=3, classes=2).take(bad)


def test_attrs_need_one_row_per_image():
    data = toy_image_data(n_per_class=3, classes=2)
    with pytest.raises(ValueError, match="one row per image"):
        data.with_attrs(colour=torch.zeros(5))


def test_without_holds_out_rows_of_the_same_root():
    data = toy_image_data(n_per_class=5, classes=2)
    val = data.subset_per_class(2, seed=1)
    rest = data.without(val)
    assert len(rest) == len(data) - len(val)
    assert not set(rest.source_index.tolist()) & set(val.source_index.tolist())
    with pytest.raises(ValueError, match="different root"):
        data.without(toy_image_data(n_per_class=5, classes=2, seed=3))
