"""Gradients as functions of the parameters: per example, per checkpoint, weighted."""

import torch
from torch.func import stack_module_state

from ddrepro.functional import ce_gradients, checkpoint_grads, flatten, per_example_grads
from ddrepro.nets import get_net
from ddrepro.train import batch_loss, per_sample_loss


def net_and_data(seed=0, n=5):
    torch.manual_seed(seed)
    net = get_net("convnet", 1, 3, 8, width=4, depth=1, seed=seed).double()
    images = torch.randn(n, 1, 8, 8, dtype=torch.float64)
    labels = torch.arange(n) % 3
    return net, images, labels


def loop_grad(net, images, labels):
    loss = batch_loss(net(images), labels, None)
    return torch.autograd.grad(loss, list(net.parameters()), create_graph=True)


def test_per_example_grads_equal_one_backward_per_example():
    net, images, labels = net_and_data()
    params = {k: v.detach() for k, v in net.named_parameters()}
    grads = per_example_grads(net, params, dict(net.named_buffers()), images, labels)
    for i in range(len(images)):
        expected = loop_grad(net, images[i:i + 1], labels[i:i + 1])
        for got, want in zip(grads.values(), expected):
            assert torch.allclose(got[i], want, atol=1e-10)


def test_checkpoint_grads_equal_a_loop_and_stay_differentiable_in_the_images():
    nets = [net_and_data(seed=s)[0] for s in range(3)]       # three "checkpoints"
    _, images, labels = net_and_data()
    images.requires_grad_(True)
    stacked, buffers = stack_module_state(nets)
    stacked = {k: v.detach() for k, v in stacked.items()}
    grads = checkpoint_grads(nets[0], stacked, {k: v[0] for k, v in buffers.items()}, images, labels)
    flat = flatten(grads, lead=1)                                  # (T, P)
    expected = torch.stack([flatten(loop_grad(net, images, labels)) for net in nets])
    assert flat.shape == expected.shape and torch.allclose(flat, expected, atol=1e-10)
    # d/d images of a scalar function of the gradients: the effect estimator's objective shape
    direction = torch.randn(flat.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (ours,) = torch.autograd.grad((flat * direction).sum(), images)
    (ref,) = torch.autograd.grad((expected * direction).sum(), images)
    assert torch.allclose(ours, ref, atol=1e-10)


def test_weighted_gradient_is_the_weighted_mean_loss():
    net, images, labels = net_and_data(n=6)
    weights = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64)
    ours = ce_gradients(net, images, labels, create_graph=False, weights=weights)
    loss = (per_sample_loss(net(images), labels) * weights).sum() / weights.sum()
    expected = torch.autograd.grad(loss, list(net.parameters()))
    for a, b in zip(ours, expected):
        assert torch.allclose(a, b, atol=1e-12)
    kept = weights > 0   # zero weight = the example is absent
    absent = ce_gradients(net, images[kept], labels[kept], create_graph=False, weights=weights[kept])
    for a, b in zip(ours, absent):
        assert torch.allclose(a, b, atol=1e-12)
