"""Gradient matching (DC / DSA): the distance, the matching loss, the loop and the interface."""

import math

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ddrepro.condense import CONDENSERS, condense
from ddrepro.condense.base import Context
from ddrepro.condense.gm import (BN_IMAGES_PER_CLASS, freeze_batchnorm_, loops_for_ipc, match_distance,
                                 matching_loss, train_steps)
from ddrepro.config import GMConfig, NetConfig
from ddrepro.nets import build_net
from helpers import toy_image_data

NET = NetConfig(width=8, depth=2)
TINY = GMConfig(steps=2, outer_loops=2, inner_loops=2, batch_real=5, batch_train=4)


toy_data = partial(toy_image_data, n_per_class=8, classes=3)


def tiny_net(dtype=torch.float32):
    return build_net(NET, 1, 3, 8, seed=0).to(dtype)


# -- match_distance -----------------------------------------------------------

def test_distance_hand_computed_2x2_and_biases_excluded():
    real = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, 2.0])]
    syn = [torch.tensor([[1.0, 1.0], [0.0, -1.0]]), torch.tensor([-1.0, 5.0])]
    # row 0: cos = 1/sqrt(2); row 1: cos = -1; the bias (1-D) is not matched
    expected = (1 - 1 / math.sqrt(2)) + 2.0
    assert match_distance(real, syn).item() == pytest.approx(expected, rel=1e-6)
    syn_other_bias = [syn[0], torch.tensor([7.0, -3.0])]
    assert match_distance(real, syn_other_bias).item() == pytest.approx(expected, rel=1e-6)


def test_distance_over_all_parameters_is_one_cosine():
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    real = [weights, torch.tensor([1.0])]
    syn = [weights.clone(), torch.tensor([-1.0])]
    assert match_distance(real, syn).item() == pytest.approx(0.0, abs=1e-5)  # biases ignored
    # flattened: [1,0,0,1,1] . [1,0,0,1,-1] = 1, both norms sqrt(3): 1 - 1/3
    assert match_distance(real, syn, all_params=True).item() == pytest.approx(2 / 3, rel=1e-6)


def test_distance_zero_for_identical_symmetric_and_conv_rows():
    gen = torch.Generator().manual_seed(0)
    a = [torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, generator=gen), torch.randn(5, 16, generator=gen)]
    b = [torch.randn(t.shape, generator=gen) for t in a]
    assert match_distance(a, a).item() == pytest.approx(0.0, abs=1e-5)
    assert match_distance(a, b).item() == pytest.approx(match_distance(b, a).item(), rel=1e-6)
    # a conv weight is compared per output channel: (4, 27) rows
    manual = (4 - F.cosine_similarity(a[0].reshape(4, -1), b[0].reshape(4, -1), dim=1).sum()
              + 5 - F.cosine_similarity(a[2], b[2], dim=1).sum())
    assert match_distance(a, b).item() == pytest.approx(manual.item(), rel=1e-5)


def test_distance_gradient_matches_finite_differences_and_zero_row_is_finite():
    gen = torch.Generator().manual_seed(1)
    real = [torch.randn(3, 4, dtype=torch.float64, generator=gen)]
    syn = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: match_distance(real, [s]), (syn,))
    zero_row = torch.zeros(3, 4, requires_grad=True)
    value = match_distance([torch.ones(3, 4)], [zero_row])
    value.backward()
    assert value.item() == pytest.approx(3.0) and torch.isfinite(zero_row.grad).all()


def test_tiny_rows_count_less_as_in_the_authors_distance():
    # 1 - <a, b> / (|a| |b| + 1e-6): two equal rows of norm 1e-3 (product 1e-6)
    # have an effective cosine of 1/2 instead of 1.
    tiny = torch.full((1, 1), 1e-3)
    assert match_distance([tiny], [tiny]).item() == pytest.approx(0.5, rel=1e-4)


def test_distance_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="same order"):
        match_distance([torch.ones(2, 2)], [])
    with pytest.raises(ValueError, match="differ"):
        match_distance([torch.ones(2, 2)], [torch.ones(2, 3)])


# -- matching loss --------------------------------------------------------------

def _blocks(ipc, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(3, 6, 1, 8, 8, generator=gen).to(dtype)
    syn = torch.randn(3, ipc, 1, 8, 8, generator=gen).to(dtype).requires_grad_(True)
    return real, syn


def test_matching_loss_equals_an_independent_vmapped_computation():
    net = tiny_net()
    real, syn = _blocks(ipc=2)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def per_class_grads(x, y):
        def loss(p, xi, yi):
            return F.cross_entropy(functional_call(net, p, (xi,)), yi)
        return vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)

    labels = torch.arange(3)[:, None]
    g_real = per_class_grads(real, labels.expand(-1, 6))
    g_syn = per_class_grads(syn.detach(), labels.expand(-1, 2))
    expected = sum(match_distance([g_real[k][c] for k in params], [g_syn[k][c] for k in params])
                   for c in range(3))
    assert matching_loss(net, real, syn).item() == pytest.approx(expected.item(), rel=1e-5)


def test_matching_loss_gradient_matches_finite_differences():
    net = tiny_net(torch.float64)
    real, syn = _blocks(ipc=1, dtype=torch.float64)
    (g,) = torch.autograd.grad(matching_loss(net, real, syn), syn)
    direction = torch.randn(syn.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    h = 1e-6
    with torch.no_grad():
        numeric = (matching_loss(net, real, syn + h * direction)
                   - matching_loss(net, real, syn - h * direction)) / (2 * h)
    assert (g * direction).sum().item() == pytest.approx(numeric.item(), rel=1e-4)


@pytest.mark.parametrize("ipc", [1, 3])
def test_a_gradient_step_lowers_the_matching_loss(ipc):
    net = tiny_net()
    real, syn = _blocks(ipc)
    loss = matching_loss(net, real, syn)
    (g,) = torch.autograd.grad(loss, syn)
    step = 1e-2 * syn.detach().norm() / g.norm()
    assert matching_loss(net, real, syn.detach() - step * g).item() < loss.item()


def test_real_side_carries_no_graph_and_the_net_gets_no_gradient():
    net = tiny_net()
    real, syn = _blocks(ipc=2)
    matching_loss(net, real, syn).backward(inputs=[syn])
    assert syn.grad is not None and all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="same number of classes"):
        matching_loss(net, real, syn[:2])


# -- inner network training -------------------------------------------------------

def test_train_steps_one_full_batch_epoch_is_one_plain_sgd_step():
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(6, 1, 8, 8, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2])
    net, reference = tiny_net(), tiny_net()
    optimiser = torch.optim.SGD(reference.parameters(), lr=0.05)
    F.cross_entropy(reference(images), labels).backward()
    optimiser.step()
    train_steps(net, images, labels, epochs=1, batch_size=6, lr=0.05, generator=gen)
    for p, q in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)


def test_train_steps_fits_a_tiny_set():
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(6, 1, 8, 8, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2])
    net = tiny_net()
    before = F.cross_entropy(net(images), labels).item()
    train_steps(net, images, labels, epochs=30, batch_size=4, lr=0.1, generator=gen)
    assert F.cross_entropy(net(images), labels).item() < 0.5 * before


# -- loops table and the condense interface ----------------------------------------

def test_loops_follow_the_authors_table_and_nearest_rule():
    assert [loops_for_ipc(i) for i in (1, 10, 20, 30, 40, 50)] == \
        [(1, 1), (10, 50), (20, 25), (30, 20), (40, 15), (50, 10)]
    assert loops_for_ipc(5) == (1, 1) and loops_for_ipc(6) == (10, 50)
    assert loops_for_ipc(15) == (20, 25) and loops_for_ipc(200) == (50, 10)
    with pytest.raises(ValueError, match="ipc"):
        loops_for_ipc(0)


def test_dc_and_dsa_defaults_and_mismatched_configs():
    assert CONDENSERS.get("dsa").default_config.dsa is True
    assert CONDENSERS.get("dc").default_config.dsa is False
    real = toy_data()
    with pytest.raises(ValueError, match="dsa=False"):
        condense("dsa", real, 1, config=TINY, net_cfg=NET, device="cpu", cache=False)
    with pytest.raises(ValueError, match="dsa=True"):
        condense("dc", real, 1, config=GMConfig(dsa=True), net_cfg=NET, device="cpu", cache=False)


def test_nan_in_the_data_raises_naming_method_and_step():
    real = toy_data()
    real.images[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"dc: .*step 0"):
        condense("dc", real, 1, config=TINY, init="noise", net_cfg=NET, device="cpu",
                 quiet=True, cache=False)


def test_batchnorm_nets_match_with_running_statistics_from_real_images():
    real = toy_data()
    bn_net_cfg = NetConfig(width=8, depth=2, norm="batchnorm")
    net = build_net(bn_net_cfg, 1, 3, 8, seed=0)
    class_indices = [torch.nonzero(real.labels == c).flatten() for c in range(3)]
    ctx = Context(method="dc", real_images=real.images, real_labels=real.labels,
                  class_indices=class_indices, num_classes=3, ipc=1, config=TINY, net_cfg=bn_net_cfg,
                  aug_cfg=None, flip=False, device=torch.device("cpu"),
                  generator=torch.Generator().manual_seed(0), seed=0, quiet=True)
    freeze_batchnorm_(net, ctx)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.training and m.running_mean.abs().sum() > 0 for m in norms)
    assert all(int(m.num_batches_tracked) == 1 for m in norms)  # one forward pass, as the authors do
    # in eval mode a synthetic image's gradient no longer depends on the rest of its batch
    syn = torch.randn(3, 2, 1, 8, 8, requires_grad=True)
    loss = matching_loss(net, real.images[:6].view(3, 2, 1, 8, 8), syn)
    assert torch.isfinite(loss)
    syn_bn = condense("dc", real, 2, config=TINY, net_cfg=bn_net_cfg, device="cpu", quiet=True, cache=False)
    assert torch.isfinite(syn_bn.images).all()
    assert BN_IMAGES_PER_CLASS == 16
