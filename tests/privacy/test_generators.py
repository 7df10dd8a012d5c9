"""The generator baselines of Chapter 2: the cGAN, DP-MERF and the attacks on their samples."""

from __future__ import annotations

import math

import pytest
import torch

from ddrepro.privacy.gan_leak import reconstruction_distance
from ddrepro.privacy.matching import l2_distances, nearest, ssim_similarities
from ddrepro.data import ImageData
from ddrepro.privacy.generators import (CGANConfig, DPMERFConfig, cgan_set, dp_merf_set,
                                        noise_multiplier)
from ddrepro.privacy.generators import dp_merf
from ddrepro.synthetic import SyntheticSet


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))


def two_bars(n_per_class: int = 64, seed: int = 0) -> ImageData:
    """8x8 pixels in [0, 1]: class 0 lights the top half, class 1 the bottom half (plus noise)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(n_per_class)
    images = 0.1 + 0.05 * torch.rand(len(labels), 1, 8, 8, generator=gen)
    images[labels == 0, :, :4] += 0.8
    images[labels == 1, :, 4:] += 0.8
    return ImageData(images, labels, "bars", "train", (0.0,), (1.0,), ("top", "bottom"), flip_ok=False)


def class_means(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.stack([images[labels == c].mean(0) for c in range(2)])


# -- cGAN -----------------------------------------------------------------------------------

def test_cgan_set_shapes_labels_and_determinism():
    data = two_bars(16)
    cfg = CGANConfig(steps=3, batch=8, latent=4, width=8)
    a = cgan_set(data, 5, cfg, seed=1, device="cpu", quiet=True)
    b = cgan_set(data, 5, cfg, seed=1, device="cpu", quiet=True, sample_seed=1)
    c = cgan_set(data, 5, cfg, seed=2, device="cpu", quiet=True)
    assert isinstance(a, SyntheticSet) and a.images.shape == (10, 1, 8, 8)
    assert a.labels.tolist() == [0] * 5 + [1] * 5 and a.meta["method"] == "cgan"
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.denormalised().min() >= 0 and a.denormalised().max() <= 1
    more = cgan_set(data, 50, cfg, seed=1, device="cpu", quiet=True)
    assert len(more) == 100  # any number per class from the one trained generator


def test_cgan_learns_the_class_conditional_means():
    data = two_bars(64)
    real = class_means(data.images, data.labels)
    untrained = cgan_set(data, 64, CGANConfig(steps=1, batch=32, latent=8, width=32, lr=1e-3),
                         seed=0, device="cpu", quiet=True)
    trained = cgan_set(data, 64, CGANConfig(steps=400, batch=32, latent=8, width=32, lr=1e-3),
                       seed=0, device="cpu", quiet=True)
    before = (class_means(untrained.images, untrained.labels) - real).flatten(1).norm(dim=1)
    after = (class_means(trained.images, trained.labels) - real).flatten(1).norm(dim=1)
    assert (after < 0.5 * before).all(), (before, after)
    # conditioning: each class's samples are nearer their own class's mean than the other's
    mine = class_means(trained.images, trained.labels)
    assert (mine[0] - real[0]).norm() < (mine[0] - real[1]).norm()
    assert (mine[1] - real[1]).norm() < (mine[1] - real[0]).norm()


def test_cgan_rejects_bad_input_before_compute():
    with pytest.raises(ValueError, match="steps"):
        CGANConfig(steps=0)
    with pytest.raises(ValueError, match="batch"):
        cgan_set(two_bars(4), 2, CGANConfig(batch=64), device="cpu", quiet=True)
    with pytest.raises(ValueError, match="ipc"):
        cgan_set(two_bars(16), 0, CGANConfig(steps=1, batch=8, width=8), device="cpu", quiet=True)


# -- DP-MERF --------------------------------------------------------------------------------

def test_fourier_features_have_unit_norm_and_approximate_the_gaussian_kernel():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 20, generator=gen, dtype=torch.float64)
    w = dp_merf.frequencies(20, 40_000, bandwidth=1.5, seed=0).double()
    phi = dp_merf.fourier_features(x, w)
    assert torch.allclose(phi.norm(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-12)
    kernel = torch.exp(-torch.cdist(x, x) ** 2 / (2 * 1.5 ** 2))
    assert (phi @ phi.T - kernel).abs().max() < 0.03


def test_replacing_one_member_moves_the_embedding_by_at_most_the_sensitivity():
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(50, 16, generator=gen), torch.randint(3, (50,), generator=gen)
    w = dp_merf.frequencies(16, 200, bandwidth=0.5, seed=1)
    base = dp_merf.mean_embedding(x, y, w, 3)
    worst = 0.0
    for i in range(50):
        x2, y2 = x.clone(), y.clone()
        x2[i], y2[i] = torch.rand(16, generator=gen), (y[i] + 1) % 3
        worst = max(worst, float((dp_merf.mean_embedding(x2, y2, w, 3) - base).norm()))
    assert 0 < worst <= dp_merf.sensitivity(50) + 1e-6


def test_released_noise_has_std_sigma_times_sensitivity():
    sigma, n = noise_multiplier(2.0, 1e-5), 1000
    exact = torch.zeros(20_000, 10, dtype=torch.float64)
    noise = dp_merf.release(exact, n, sigma, seed=3) - exact
    want = sigma * 2.0 / n
    # 200,000 draws: the sample std is within 1 % of the truth with overwhelming probability
    assert abs(float(noise.std()) / want - 1) < 0.01
    assert abs(float(noise.mean())) < 5 * want / math.sqrt(noise.numel())


def test_noise_multiplier_meets_the_budget_by_opacus_accounting():
    from opacus.accountants import RDPAccountant

    for eps in (10.0, 2.0):
        sigma = noise_multiplier(eps, 1e-5)
        acc = RDPAccountant()
        acc.history = [(sigma, 1.0, 1)]
        spent = acc.get_epsilon(delta=1e-5, alphas=dp_merf.RDP_ORDERS)
        assert eps - 0.05 <= spent <= eps
    assert noise_multiplier(2.0, 1e-5) > noise_multiplier(10.0, 1e-5)  # less budget, more noise


@pytest.mark.parametrize("epsilon, delta", [(0.0, 1e-5), (-1.0, 1e-5), (math.inf, 1e-5),
                                            (1.0, 0.0), (1.0, 1.0), (1.0, -0.1)])
def test_bad_budgets_fail_before_compute(epsilon, delta, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("computed before checking the budget")

    monkeypatch.setattr(dp_merf, "mean_embedding", boom)
    with pytest.raises(ValueError):
        noise_multiplier(epsilon, delta)
    with pytest.raises(ValueError):
        DPMERFConfig(epsilon=epsilon, delta=delta)


def test_dp_merf_generator_fits_the_released_embedding():
    data = two_bars(64)
    cfg = DPMERFConfig(epsilon=10.0, features=400, bandwidth=4.0, steps=300, batch=64, latent=8,
                       width=32, lr=1e-2)
    syn = dp_merf_set(data, 64, cfg, seed=0, device="cpu", quiet=True)
    assert syn.meta["sigma"] == pytest.approx(noise_multiplier(10.0, 1e-5))
    assert syn.meta["sensitivity"] == pytest.approx(2 / len(data))
    real = class_means(data.images, data.labels)
    mine = class_means(syn.images, syn.labels)
    assert (mine[0] - real[0]).norm() < (mine[0] - real[1]).norm()
    assert (mine[1] - real[1]).norm() < (mine[1] - real[0]).norm()


# -- attacks on the samples -----------------------------------------------------------------

def test_reconstruction_distance_is_the_nearest_sample_of_the_same_class():
    samples = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]]).view(3, 1, 1, 2)
    sample_labels = torch.tensor([0, 0, 1])
    queries = torch.tensor([[3.0, 4.0], [1.0, 0.0], [1.0, 0.0]]).view(3, 1, 1, 2)
    d = reconstruction_distance(queries, torch.tensor([0, 0, 1]), samples, sample_labels)
    assert d.tolist() == pytest.approx([0.0, 1.0, 0.0])  # query 1 may not use class 1's sample
    with pytest.raises(ValueError, match="class"):
        reconstruction_distance(queries, torch.tensor([0, 0, 2]), samples, sample_labels)


def test_matching_distances():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(4, 1, 8, 8, generator=gen)
    ssim = ssim_similarities(a, a)
    assert torch.allclose(ssim.diagonal(), torch.ones(4))
    vals, idx = nearest(ssim, larger_is_closer=True)
    assert idx.flatten().tolist() == [0, 1, 2, 3]
    vals, idx = nearest(l2_distances(a, a), exclude_self=True)
    assert (idx.flatten() != torch.arange(4)).all() and (vals > 0).all()
    with pytest.raises(ValueError):
        nearest(l2_distances(a, a), k=4, exclude_self=True)


# -- the profile section and the study glue ---------------------------------------------------

@pytest.mark.parametrize("field, value", [("epsilons", (10.0, 0.0)), ("epsilons", ()), ("delta", 1.0),
                                          ("merf_features", 7), ("cgan_r_ipcs", (0.0,)),
                                          ("cgan_steps", 0)])
def test_generator_study_config_rejects_bad_values(field, value):
    from ddrepro import get_profile

    with pytest.raises(ValueError, match=field):
        get_profile("smoke", {f"generators.{field}": value})


def test_study_configs_follow_the_profile():
    from ddrepro.privacy import generator_study
    from ddrepro import get_profile

    prof = get_profile("cpu", {"generators.merf_bandwidth": 3.0, "generators.cgan_steps": 7})
    assert generator_study.cgan_config(prof).steps == 7
    merf = generator_study.merf_config(prof, 2.0)
    assert (merf.epsilon, merf.bandwidth, merf.delta) == (2.0, 3.0, prof.generators.delta)
    with pytest.raises(ValueError, match="unknown generator"):
        generator_study.generator_set(prof, None, "vae", 1, seed=0)


def test_table3_seeds_are_the_study_preparations_and_preparation_zero_keeps_its_seed(monkeypatch):
    from types import SimpleNamespace

    from ddrepro import get_profile
    from ddrepro.privacy import generator_study as gs

    assert gs.seed_preparations(get_profile("cpu")) == [0, 1, 2]
    assert gs.seed_preparations(get_profile("cpu", {"generators.seeds": 5})) == [0, 1, 2]  # capped
    assert gs.seed_preparations(get_profile("smoke")) == [0]
    with pytest.raises(ValueError, match="seeds"):
        get_profile("cpu", {"generators.seeds": 0})
    # preparation p trains on p's members with seed 10_000 * seed + p (p = 0: the old cache key)
    calls = []
    monkeypatch.setattr(gs, "cgan_set", lambda members, ipc, cfg, *, seed, **kw: calls.append((members, seed)))
    study = SimpleNamespace(preparations=[("T0", "N0"), ("T1", "N1")])
    prof = get_profile("smoke")
    gs.generator_set(prof, study, "cgan", 1, seed=2)
    gs.generator_set(prof, study, "cgan", 1, seed=2, preparation=1)
    assert calls == [("T0", 20_000), ("T1", 20_001)]
    with pytest.raises(ValueError, match="preparation = 2"):
        gs.generator_set(prof, study, "cgan", 1, seed=2, preparation=2)
