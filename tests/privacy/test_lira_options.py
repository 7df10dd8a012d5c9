"""LiRA's options closer to the reference attack: the fits (mean, the released code's median and
std, median and MAD) and the shifted-crop queries (ddrepro.privacy.lira, ddrepro.privacy.queries)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ddrepro.privacy.lira import FITS, _fit, leave_one_out_scores, lira_scores
from ddrepro.privacy.per_unit import per_target_auc
from ddrepro.privacy.queries import (plain_queries, query_images, shifted_phi, shifted_probes,
                                     shifted_views)
from tests.privacy.test_lira import gaussian_shadows

pytestmark = pytest.mark.usefixtures("private_cache")


def symmetric_shadows(n: int = 50, seed: int = 0):
    """Each example's IN and OUT values symmetric about their centre (mu_j + {-a, -b, b, a}):
    median = mean exactly, so the released code's fit equals the mean fit."""
    gen = torch.Generator().manual_seed(seed)
    mu = 3 * torch.randn(n, generator=gen)
    a, b = 1 + torch.rand(n, generator=gen), torch.rand(n, generator=gen)
    offsets = torch.stack([-a, -b, b, a])                     # (4, n)
    member = torch.tensor([True, False] * 4).view(8, 1).expand(8, n)
    phi = torch.empty(8, n)
    phi[member] = (mu + 1.0 + offsets).flatten()              # IN: centre mu + 1
    phi[~member] = (mu + offsets).flatten()
    return phi, member, mu


def test_median_fit_equals_mean_fit_when_each_example_is_symmetric():
    phi, member, mu = symmetric_shadows()
    target = mu + 0.3 * torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    for global_variance in (False, True):
        mean = lira_scores(target, phi, member, global_variance=global_variance)
        ref = lira_scores(target, phi, member, global_variance=global_variance, fit="reference")
        torch.testing.assert_close(ref, mean)
    centre, _ = _fit(phi.double().unsqueeze(-1), member, False, "median")
    torch.testing.assert_close(centre.squeeze(-1), mu.double() + 1.0)


def test_mad_spread_matches_the_std_on_gaussians_and_the_attack_agrees():
    # many shadows per side: 1.4826 MAD estimates the Gaussian's std, so the MAD fit's scores track
    # the mean fit's and the AUC is the same
    phi, member = gaussian_shadows(2000, 128, 1.0, seed=5, sd=0.7)
    _, sd = _fit(phi[1:].double().unsqueeze(-1), ~member[1:], True, "median")
    assert float(sd.flatten()[0]) == pytest.approx(0.7, rel=0.05)
    truth = member[0].numpy()
    aucs = {fit: roc_auc_score(truth, lira_scores(phi[0], phi[1:], member[1:], fit=fit).numpy())
            for fit in FITS}
    assert aucs["median"] == pytest.approx(aucs["mean"], abs=0.01)
    assert aucs["reference"] == pytest.approx(aucs["mean"], abs=0.01)


def test_median_fit_ignores_one_shadow_gone_astray():
    # one shadow of 8 whose phi is off by 50 for every example drags the mean fit's OUT centre by
    # 50 / 4, not the median's
    phi, member, mu = symmetric_shadows()
    phi = phi.clone()
    phi[1] += 50.0                                            # shadow 1 is OUT for every example
    mean_c, _ = _fit(phi.double().unsqueeze(-1), ~member, False, "mean")
    med_c, _ = _fit(phi.double().unsqueeze(-1), ~member, False, "median")
    assert (mean_c.squeeze(-1) - mu.double()).abs().min() > 10
    assert (med_c.squeeze(-1) - mu.double()).abs().max() < 2


def test_fit_option_passes_through_leave_one_out_and_per_target():
    phi, member = gaussian_shadows(300, 12, 1.0, seed=6)
    loo, truth = leave_one_out_scores(phi, member, [0], fit="median")
    direct = lira_scores(phi[0], phi[1:], member[1:], fit="median")
    torch.testing.assert_close(loo[0], direct)
    per = per_target_auc(torch.cat([phi[1:], phi[:1]]), torch.cat([member[1:], member[:1]]), 12,
                         global_variance=False, fit="median")
    assert per[0] == pytest.approx(roc_auc_score(truth[0].numpy(), direct.numpy()))
    with pytest.raises(ValueError, match="fit"):
        lira_scores(phi[0], phi[1:], member[1:], fit="trimmed")


def test_shifted_queries_count_and_content():
    images = torch.arange(2 * 1 * 6 * 5, dtype=torch.float32).view(2, 1, 6, 5)
    q = query_images(images, shift=2)
    assert q.shape == (2, 2 * 25, 1, 6, 5)
    assert query_images(images, shift=2, stride=2).shape[1] == 2 * 9
    assert query_images(images, shift=0).shape[1] == 2
    centre, mirror = plain_queries(2)
    torch.testing.assert_close(q[:, centre], images)
    torch.testing.assert_close(q[:, mirror], images.flip(-1))
    # the crop at (dx, dy) = (3, 2) is the image moved up one row, the last row reflected (row 4)
    views = shifted_views(images, 2)
    expected = torch.cat([images[..., 1:, :], images[..., 4:5, :]], -2)
    torch.testing.assert_close(views[(3, 2)], expected)
    # and (2, 0): moved right two columns, columns 2 and 1 reflected in at the left
    expected = torch.cat([images[..., [2, 1]], images[..., :3]], -1)
    torch.testing.assert_close(views[(2, 0)], expected)
    with pytest.raises(ValueError, match="stride"):
        query_images(images, shift=2, stride=3)


def test_probe_outputs_reassemble_the_reference_queries():
    # a stand-in "model": phi of an image is a fixed weighted sum of its pixels; the probe of every
    # unmirrored crop with its mirror must give phi of query_images in the reference's order
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(7, 1, 8, 8, generator=gen), torch.zeros(7, dtype=torch.int64)
    weight = torch.randn(1, 8, 8, generator=gen)

    def phi(x):
        return (x * weight).flatten(-3).sum(-1)

    outputs = {name: {"phi": phi(x)[None], "phi_flip": phi(x.flip(-1))[None]}
               for name, (x, _) in shifted_probes(images, labels, 2).items()}
    got = shifted_phi(outputs, 2)
    assert got.shape == (1, 7, 50)
    torch.testing.assert_close(got[0], phi(query_images(images, 2)))
    np.testing.assert_allclose(got[0][:, plain_queries(2)].numpy(),
                               torch.stack([phi(images), phi(images.flip(-1))], -1).numpy(), rtol=1e-5)


def test_option_aucs_read_the_plain_queries_for_the_default_and_all_for_the_shifted_option():
    from ddrepro.privacy.options import option_aucs

    gen = torch.Generator().manual_seed(3)
    member = torch.cat([torch.tensor([[True, False] * 100, [False, True] * 100] * 3),
                        torch.rand(2, 200, generator=gen) < 0.5])
    phi = torch.randn(8, 200, 18, generator=gen, dtype=torch.float64) + 2.0 * member.double().unsqueeze(-1)
    out = option_aucs(phi, member, 6, shift=2, stride=2, reflect=True, global_variance=True)
    plain = phi[..., plain_queries(2, 2)]
    np.testing.assert_allclose(out["default"], per_target_auc(plain, member, 6))
    np.testing.assert_allclose(out["shifted crops (18 queries)"], per_target_auc(phi, member, 6))
    np.testing.assert_allclose(out["median fit (median, 1.4826 MAD)"],
                               per_target_auc(plain, member, 6, fit="median"))
    assert out["per-example variance"] is not None and out["per-example variance"].shape == (2,)
    # with one IN and one OUT shadow per example, per-example variances cannot be fitted
    few = option_aucs(phi[4:], member[4:], 2, shift=2, stride=2, reflect=True, global_variance=True)
    assert few["per-example variance"] is None


def test_control_shifted_reads_the_same_networks_as_the_control():
    from ddrepro.config import AugConfig, EvalConfig, NetConfig
    from ddrepro.privacy.membership import train_on_halves
    from ddrepro.privacy.options import control_shifted
    from helpers import toy_image_data

    pool = toy_image_data(n_per_class=6, classes=2, shape=(1, 8, 8), seed=4)
    member = torch.tensor([[True, False] * 6, [False, True] * 6, [True, True, False] * 4])
    kw = dict(pool=pool, member=member, net_cfg=NetConfig(width=8, depth=1), aug_cfg=AugConfig(),
              eval_cfg=EvalConfig(epochs=3, batch_size=4, n_models=3, augment="none"), seed=0,
              probe_flip=True, device="cpu", quiet=True)
    base = train_on_halves(**kw, cache=False)["phi"]
    shifted = control_shifted(**kw, shift=1, stride=1)["phi"]
    assert shifted.shape == (3, 12, 2 * 9)
    torch.testing.assert_close(shifted[..., plain_queries(1)], base)
