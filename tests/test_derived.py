"""Derived data sets: seeding, caching, the mislabel and perturb builders, provenance, errors."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch

from ddrepro.data import (
    DERIVED, BuiltRows, ImageData, MislabelConfig, PerturbConfig, derive, register_derived,
)
from ddrepro.data.loading import normalise
from ddrepro.pixels import to_pixels
from helpers import toy_image_data

EPS = 8 / 255


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def scratch_registry(monkeypatch):
    """Builders registered by a test disappear after it."""
    monkeypatch.setattr(DERIVED, "_items", dict(DERIVED._items))


@dataclass(frozen=True)
class ShiftConfig:
    amount: float = 1.0

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"ShiftConfig.amount = {self.amount} is invalid: it must be > 0.")


def register_counting(calls: list, name: str = "shift", **kw):
    """A builder that adds seeded noise times ``amount`` and records each call."""

    @register_derived(name, ShiftConfig, **kw)
    def shift(parent, cfg, generator):
        calls.append(cfg)
        noise = torch.rand(parent.images.shape, generator=generator)
        return BuiltRows(parent.images + cfg.amount * noise, parent.labels,
                         {"shifted": torch.ones(len(parent), dtype=torch.bool)})

    return shift


def pixel_grid_data(n: int = 40, seed: int = 0) -> ImageData:
    """Like loaded 8-bit data: normalised images whose pixels lie on the 1/255 grid."""
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8)
    mean, std = (0.1307,), (0.3081,)
    return ImageData(normalise(raw, mean, std), torch.arange(4).repeat(n // 4), "grid", "train",
                     mean, std, ("0", "1", "2", "3"), flip_ok=False)


# -- seeding and caching ---------------------------------------------------------

def test_same_seed_same_set_other_seed_different():
    data = toy_image_data()
    a = derive("mislabel", data, MislabelConfig(count=5), seed=1, cache=False)
    b = derive("mislabel", data, MislabelConfig(count=5), seed=1, cache=False)
    c = derive("mislabel", data, MislabelConfig(count=5), seed=2, cache=False)
    assert torch.equal(a.labels, b.labels) and a.digest() == b.digest()
    assert not torch.equal(a.attrs["mislabelled"], c.attrs["mislabelled"])
    assert a.digest() != c.digest()


def test_cache_returns_the_identical_set_without_building_again(cache_dir, scratch_registry):
    calls: list = []
    register_counting(calls)
    data = toy_image_data()
    first = derive("shift", data, ShiftConfig(0.5), seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the artifact must load as plain data
        again = derive("shift", data, ShiftConfig(0.5), seed=3)
    assert len(calls) == 1
    assert torch.equal(first.images, again.images) and first.digest() == again.digest()
    assert list((cache_dir / "derived").glob("*.pt"))
    derive("shift", data, ShiftConfig(0.5), seed=4)            # another seed: built
    derive("shift", data, ShiftConfig(0.5), seed=3, cache=False)  # no cache: built
    derive("shift", data.with_weights(torch.ones(len(data))), ShiftConfig(0.5), seed=3)  # other parent
    assert len(calls) == 4


def test_builtin_builder_results_are_cached_as_plain_data(cache_dir):
    data = toy_image_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = derive("mislabel", data, MislabelConfig(fraction=0.5), seed=0)
        b = derive("mislabel", data, MislabelConfig(fraction=0.5), seed=0)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.attrs["original_label"], b.attrs["original_label"])
    (artifact,) = (cache_dir / "derived").glob("*.pt")
    # unchanged images are shared with the parent, not stored again
    assert b.images is data.images and artifact.stat().st_size < data.images.nbytes


# -- mislabel ------------------------------------------------------------------------

@pytest.mark.parametrize("config,expected", [
    (MislabelConfig(count=7), 7), (MislabelConfig(fraction=0.25), 10),
    (MislabelConfig(fraction=0.1), 4), (MislabelConfig(count=40), 40),
    (MislabelConfig(fraction=0.0125), 1),  # 0.5 rows: halves round up
])
def test_mislabel_relabels_exactly_the_requested_rows(config, expected):
    data = toy_image_data()  # 40 rows, 4 classes
    out = derive("mislabel", data, config, seed=0, cache=False)
    flagged = out.attrs["mislabelled"]
    assert flagged.dtype == torch.bool and int(flagged.sum()) == expected
    assert out.attrs["original_label"].dtype == torch.int64
    assert torch.equal(out.attrs["original_label"], data.labels)
    assert bool((out.labels[flagged] != data.labels[flagged]).all())
    assert torch.equal(out.labels[~flagged], data.labels[~flagged])
    assert torch.equal(out.images, data.images)


def test_mislabel_draws_the_wrong_class_uniformly():
    data = toy_image_data(n_per_class=500)  # 2000 rows, 4 classes
    out = derive("mislabel", data, MislabelConfig(fraction=0.9), seed=5, cache=False)
    flagged = out.attrs["mislabelled"]
    offsets = (out.labels[flagged] - data.labels[flagged]) % 4
    freq = torch.bincount(offsets, minlength=4).float() / offsets.numel()
    # 1800 draws: each of the 3 wrong offsets has frequency 1/3 +- 0.011 (one std)
    assert freq[0] == 0 and torch.allclose(freq[1:], torch.full((3,), 1 / 3), atol=0.04)


# -- perturb -------------------------------------------------------------------------

def test_perturb_respects_eps_pixel_range_and_the_1_255_grid():
    data = pixel_grid_data()
    index = torch.tensor([3, 0, 17])
    delta = 0.1 * torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = derive("perturb", data, PerturbConfig(eps=EPS), index=index, delta=delta, cache=False)
    before = to_pixels(data.images[index], data.mean, data.std)
    after = to_pixels(out.images[index], data.mean, data.std)
    assert (after - before).abs().max() <= EPS + 1e-5
    assert after.min() >= -1e-6 and after.max() <= 1 + 1e-6
    assert torch.allclose(after * 255, (after * 255).round(), atol=1e-3)
    assert (after - before).abs().max() > EPS - 1e-5  # the budget is used, not ignored
    untouched = torch.ones(len(data), dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(out.images[untouched], data.images[untouched])  # bit-identical
    assert torch.equal(out.attrs["poisoned"], ~untouched)
    assert torch.equal(out.labels, data.labels)


def test_perturb_known_answer_full_budget_up_saturates_at_white():
    data = pixel_grid_data()
    index = torch.arange(4)
    out = derive("perturb", data, PerturbConfig(eps=EPS), index=index,
                 delta=torch.ones(4, 1, 8, 8), cache=False)
    levels_before = (to_pixels(data.images[index], data.mean, data.std) * 255).round()
    levels_after = (to_pixels(out.images[index], data.mean, data.std) * 255).round()
    assert torch.equal(levels_after, (levels_before + 8).clamp(max=255))


def test_perturb_without_quantise_keeps_sub_level_steps():
    data = pixel_grid_data()
    index = torch.tensor([5])
    delta = torch.full((1, 1, 8, 8), 0.3 / 255)
    plain = derive("perturb", data, PerturbConfig(eps=EPS, quantise=False), index=index,
                   delta=delta, cache=False)
    rounded = derive("perturb", data, PerturbConfig(eps=EPS), index=index, delta=delta, cache=False)
    before = to_pixels(data.images[index], data.mean, data.std)
    step = to_pixels(plain.images[index], data.mean, data.std) - before
    inside = before < 1 - 1 / 255  # pixels not clipped at white
    assert torch.allclose(step[inside], torch.full_like(step[inside], 0.3 / 255), atol=1e-5)
    assert torch.allclose(to_pixels(rounded.images[index], data.mean, data.std), before, atol=1e-5)


def test_perturb_stores_only_the_changed_rows_and_reloads_them_exactly(cache_dir):
    data = pixel_grid_data(n=400)
    index, delta = torch.tensor([7, 300]), torch.full((2, 1, 8, 8), -1.0)
    built = derive("perturb", data, PerturbConfig(eps=EPS), index=index, delta=delta)
    loaded = derive("perturb", data, PerturbConfig(eps=EPS), index=index, delta=delta)
    assert torch.equal(built.images, loaded.images) and built.digest() == loaded.digest()
    assert not torch.equal(loaded.images[index], data.images[index])
    (artifact,) = (cache_dir / "derived").glob("*.pt")
    assert artifact.stat().st_size < data.images.nbytes / 4  # 2 of 400 rows' images, not all


@pytest.mark.parametrize("index,delta,match", [
    (torch.tensor([40]), torch.zeros(1, 1, 8, 8), "out of range"),
    (torch.tensor([-1]), torch.zeros(1, 1, 8, 8), "out of range"),
    (torch.tensor([2, 2]), torch.zeros(2, 1, 8, 8), "duplicate"),
    (torch.tensor([1, 2]), torch.zeros(1, 1, 8, 8), r"shape \(2, 1, 8, 8\)"),
    (torch.tensor([1.0]), torch.zeros(1, 1, 8, 8), "int64"),
])
def test_perturb_rejects_bad_index_and_delta(index, delta, match):
    with pytest.raises(ValueError, match=match):
        derive("perturb", pixel_grid_data(), PerturbConfig(eps=EPS), index=index, delta=delta)


# -- provenance and identity ---------------------------------------------------------

def test_provenance_weights_and_attrs_are_kept_and_take_works():
    base = toy_image_data().with_attrs(colour=torch.arange(40))
    parent = base.take(torch.tensor([9, 3, 30, 12, 0, 21, 7, 38])).with_weights(torch.arange(8.0))
    out = derive("mislabel", parent, MislabelConfig(count=3), seed=0, cache=False)
    assert torch.equal(out.source_index, parent.source_index)
    assert torch.equal(out.source_index, torch.tensor([9, 3, 30, 12, 0, 21, 7, 38]))
    assert torch.equal(out.weights, parent.weights)
    assert torch.equal(out.attrs["colour"], parent.attrs["colour"])
    assert out.name == "toy+mislabel" and out.root_id is None and out.root_rows is None
    assert len(out.content_id) == 32  # the artifact key
    sub = out.take(torch.tensor([2, 0]))
    assert torch.equal(sub.source_index, torch.tensor([30, 9]))
    assert torch.equal(sub.labels, out.labels[[2, 0]])
    assert torch.equal(sub.attrs["original_label"], parent.labels[[2, 0]])
    assert sub.root_id == out.content_id
    assert sub.digest() != out.take(torch.tensor([0, 2])).digest()


# -- errors before compute -----------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: MislabelConfig(), "exactly one"),
    (lambda: MislabelConfig(fraction=0.1, count=2), "exactly one"),
    (lambda: MislabelConfig(fraction=1.0), r"fraction.*\(0, 1\)"),
    (lambda: MislabelConfig(count=0), "count"),
    (lambda: PerturbConfig(eps=0.0), "eps"),
    (lambda: PerturbConfig(eps=1.5), "eps"),
])
def test_bad_configs_fail_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_errors_that_depend_on_the_parent_come_before_compute(cache_dir, scratch_registry):
    data = toy_image_data()
    with pytest.raises(ValueError, match=r"41 of 40 rows"):
        derive("mislabel", data, MislabelConfig(count=41))
    with pytest.raises(ValueError, match="selects 0 of 40"):
        derive("mislabel", data, MislabelConfig(fraction=0.01))
    assert not (cache_dir / "derived").exists()

    calls: list = []

    def refuse(parent, cfg):
        raise ValueError("refused by check")

    register_counting(calls, check=refuse)
    with pytest.raises(ValueError, match="refused by check"):
        derive("shift", data)
    assert calls == []


def test_unknown_names_inputs_and_wrong_config_type_are_explained():
    data = toy_image_data()
    with pytest.raises(ValueError, match="known: mislabel, perturb, zca"):
        derive("blur", data)
    with pytest.raises(ValueError, match="takes a MislabelConfig"):
        derive("mislabel", data, PerturbConfig(eps=EPS))
    with pytest.raises(ValueError, match="no input delta; valid: none"):
        derive("mislabel", data, MislabelConfig(count=1), delta=torch.zeros(1))
    with pytest.raises(ValueError, match="needs the input.*delta"):
        derive("perturb", data, PerturbConfig(eps=EPS), index=torch.tensor([0]))
    with pytest.raises(ValueError, match="seed"):
        derive("mislabel", data, MislabelConfig(count=1), seed=1.5)


def test_replace_true_registers_a_new_version(scratch_registry):
    calls: list = []
    register_counting(calls)
    with pytest.raises(ValueError, match="replace=True"):
        register_counting(calls)  # a different function under the same name

    @register_derived("shift", ShiftConfig, replace=True)
    def zero(parent, cfg, generator):
        return BuiltRows(torch.zeros_like(parent.images), parent.labels)

    out = derive("shift", toy_image_data(), cache=False)
    assert calls == [] and bool((out.images == 0).all())


def test_a_builder_that_drops_rows_is_reported(scratch_registry):
    @register_derived("drop", ShiftConfig)
    def drop(parent, cfg, generator):
        return BuiltRows(parent.images[1:], parent.labels[1:])

    with pytest.raises(ValueError, match="keep the parent's 40 rows"):
        derive("drop", toy_image_data(), cache=False)


def test_builder_inputs_may_not_shadow_derive_arguments(scratch_registry):
    with pytest.raises(ValueError, match="seed"):
        @register_derived("clash", ShiftConfig)
        def clash(parent, cfg, generator, *, seed):
            return BuiltRows(parent.images, parent.labels)
