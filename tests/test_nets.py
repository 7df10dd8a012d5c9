"""Networks: the published parameter counts, shapes, variants, seeding and vmap-friendliness."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ddrepro.config import NetConfig
from ddrepro.nets import NETS, MLP, ConvNet, ResNet18, build_net, get_net


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("channels,size,expected", [(1, 28, 317_706), (3, 32, 320_010)])
def test_convnet3_parameter_count_matches_dc(channels, size, expected):
    net = get_net("convnet", channels, 10, size, seed=0)
    assert n_params(net) == expected
    assert net.embed(torch.zeros(2, channels, size, size)).shape == (2, 2048)


def test_convnet_28px_maps_are_32_16_8_4():
    net = ConvNet(1, 10, 28)
    sides = []
    hooks = [m.register_forward_hook(lambda m, i, o: sides.append(o.shape[-1]))
             for m in net.features if isinstance(m, nn.AvgPool2d)]
    net(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert sides == [16, 8, 4]
    assert net.features[0].padding == (3, 3) and net.features[4].padding == (1, 1)


def test_forward_is_classifier_of_embed():
    net = get_net("convnet", 3, 7, 16, seed=1, width=8, depth=2)
    x = torch.randn(4, 3, 16, 16)
    assert torch.allclose(net(x), net.classifier(net.embed(x)))
    assert net(x).shape == (4, 7)


def test_instancenorm_is_groupnorm_per_channel_and_normalises_each_sample():
    net = ConvNet(1, 10, 8, width=4, depth=1, pool="none")
    norm = net.features[1]
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels == 4
    out = norm(torch.randn(3, 4, 8, 8) * 5 + 2)
    assert torch.allclose(out.mean((2, 3)), torch.zeros(3, 4), atol=1e-5)
    assert torch.allclose(out.var((2, 3), unbiased=False), torch.ones(3, 4), atol=1e-3)


def test_digits_size_works_and_too_deep_raises():
    assert get_net("convnet", 1, 10, 8, depth=3)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="depth=4"):
        get_net("convnet", 1, 10, 8, depth=4)
    # without pooling any depth keeps the size
    assert get_net("convnet", 1, 10, 8, depth=4, width=4, pool="none").feature_dim == 4 * 8 * 8


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "none"])
@pytest.mark.parametrize("act", ["relu", "sigmoid", "leakyrelu"])
@pytest.mark.parametrize("pool", ["avgpool", "maxpool", "none"])
def test_convnet_variants_forward_and_backward(norm, act, pool):
    net = get_net("convnet", 3, 5, 8, seed=0, width=4, depth=2, norm=norm, act=act, pool=pool)
    out = net(torch.randn(3, 3, 8, 8))
    out.square().sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert net.classifier.weight.grad.abs().sum() > 0
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert has_bn == (norm == "batchnorm")


@pytest.mark.parametrize("kw,match", [({"norm": "layernorm"}, "norm"), ({"act": "tanh"}, "act"),
                                      ({"pool": "sum"}, "pool"), ({"width": 0}, "width")])
def test_bad_variant_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        get_net("convnet", 1, 10, 8, **kw)


def test_unknown_name_and_kwargs_name_the_valid_ones():
    with pytest.raises(ValueError, match="convnet.*mlp.*resnet18"):
        get_net("vgg", 1, 10, 28)
    with pytest.raises(ValueError, match="valid: width, depth, norm, act, pool"):
        get_net("convnet", 1, 10, 28, widht=3)
    with pytest.raises(ValueError, match="in_channels"):
        get_net("convnet", 0, 10, 28)


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a = get_net("convnet", 1, 10, 8, seed=3, width=8)
    b = get_net("convnet", 1, 10, 8, seed=3, width=8)
    c = get_net("convnet", 1, 10, 8, seed=4, width=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    d = get_net("convnet", 1, 10, 8, generator=g1, width=8)
    e = get_net("convnet", 1, 10, 8, generator=g2, width=8)
    assert torch.equal(d.classifier.weight, e.classifier.weight)
    with pytest.raises(ValueError, match="either seed"):
        get_net("convnet", 1, 10, 8, seed=1, generator=g1)


def test_build_net_reads_the_config():
    net = build_net(NetConfig(width=16, depth=2, norm="none"), 1, 10, 28, seed=0)
    assert isinstance(net, ConvNet) and net.feature_dim == 16 * 8 * 8
    assert not any(isinstance(m, nn.GroupNorm) for m in net.modules())
    mlp = build_net(NetConfig(name="mlp", width=64, depth=3), 1, 10, 28)
    assert isinstance(mlp, MLP)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [64, 64, 10]
    assert NETS.names() == ["convnet", "linear", "mlp", "relu2", "resnet18"]


def test_resnet18_size_and_norms():
    net = build_net(NetConfig(name="resnet18"), 3, 10, 32, seed=0)
    assert isinstance(net, ResNet18) and n_params(net) == 11_173_962
    x = torch.randn(2, 3, 8, 8)
    assert net(x).shape == (2, 10) and net.embed(x).shape == (2, 512)
    bn = build_net(NetConfig(name="resnet18", norm="batchnorm"), 3, 10, 32, seed=0)
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    with pytest.raises(ValueError, match="norm"):
        get_net("resnet18", 3, 10, 32, norm="none")


@pytest.mark.parametrize("name,kw", [("convnet", {"width": 8, "depth": 2}), ("mlp", {"hidden": (16,)}),
                                     ("resnet18", {})])
def test_vmap_over_stacked_models_equals_each_model(name, kw):
    nets = [get_net(name, 3, 4, 8, seed=s, **kw) for s in range(3)]
    params, buffers = stack_module_state(nets)
    x = torch.randn(3, 5, 3, 8, 8)

    def run(p, b, xk):
        return functional_call(nets[0], (p, b), (xk,))

    batched = vmap(run)(params, buffers, x)
    for k, net in enumerate(nets):
        assert torch.allclose(batched[k], net(x[k]), atol=1e-5)
