"""EAD (Alg. 1): Eq. 7's loss, gradients into images and labels, soft labels, the condenser, bad input."""

import dataclasses

import pytest
import torch
from torch.func import stack_module_state

from ddrepro.condense import condense
from ddrepro.condense.ead import check_soft_labels, effect_alignment_loss, expert_checkpoints, lazy_adam_step
from ddrepro.config import NetConfig
from ddrepro.trajectory import group_grads
from ddrepro.nets import build_net
from ddrepro.condense.ead import EADConfig
from ddrepro.trajectory import Trajectory
from helpers import toy_image_data

TINY_NET = NetConfig(width=8, depth=2)
# 40 toy images in batches of 8: 5 updates per epoch, 10 in all, a checkpoint every 2 -> 5 to sample
TINY = EADConfig(expert_epochs=2, checkpoint_every=2, t_m=3, steps=3, batch_real=8, batch_syn=8,
                 expert_batch=8, expert_lr=0.05, lr_img=0.05, lr_label=0.05)


def three_checkpoints():
    nets = [build_net(TINY_NET, 1, 4, 8, seed=s) for s in range(3)]
    params, _ = stack_module_state(nets)
    params = {k: v.detach() for k, v in params.items()}
    return Trajectory(nets[0], params, {}, torch.full((3,), 0.1), torch.ones(3, dtype=torch.int64))


def test_loss_is_zero_when_the_synthetic_batch_is_the_real_batch_and_alpha_is_zero():
    traj, real = three_checkpoints(), toy_image_data(n_per_class=4, classes=4)
    g_p = group_grads(traj, real.images[:8], real.labels[:8])
    g_d = group_grads(traj, real.images[8:], real.labels[8:])
    assert float(effect_alignment_loss(g_p, g_d, g_d.clone(), 0.0)) == pytest.approx(0.0, abs=1e-9)
    assert float(effect_alignment_loss(g_p, g_d, g_d.clone(), 0.5)) > 0
    # Eq. 7 against its sum written out
    g_s = group_grads(traj, real.images[:3], real.labels[:3])
    w = torch.tensor([1.0, 2.0, 0.5])
    naive = abs(sum(w[t] * (g_p[t] @ (0.7 * g_d[t]) - g_p[t] @ g_s[t]) for t in range(3)))
    assert float(effect_alignment_loss(g_p, g_d, g_s, 0.3, w)) == pytest.approx(float(naive), rel=1e-5)


def test_gradients_reach_images_and_label_logits():
    traj, real = three_checkpoints(), toy_image_data(n_per_class=4, classes=4)
    images = real.images[:4].clone().requires_grad_(True)
    logits = torch.randn(4, 4, requires_grad=True)
    with torch.no_grad():
        g_p = group_grads(traj, real.images[4:10], real.labels[4:10])
        g_d = group_grads(traj, real.images[10:], real.labels[10:])
    loss = effect_alignment_loss(g_p, g_d, group_grads(traj, images, logits.softmax(1)), 0.0)
    loss.backward()
    assert images.grad.abs().sum() > 0 and logits.grad.abs().sum() > 0


def test_condense_returns_soft_distributions_changes_the_images_and_is_deterministic():
    real = toy_image_data(n_per_class=10, classes=4)

    def run(seed, cfg=TINY):
        return condense("ead", real, 2, config=cfg, seed=seed, net_cfg=TINY_NET, device="cpu",
                        quiet=True, cache=False)

    a, b, other = run(0), run(0), run(1)
    assert a.soft and a.labels.shape == (8, 4)
    check_soft_labels(a.labels, 4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, other.images)
    start = condense("random", real, 2, seed=0, cache=False)     # the same real initialisation
    assert not torch.allclose(a.images, start.images)
    assert a.meta["config"] == dataclasses.asdict(TINY) and a.meta["init_indices"] is not None
    hard = run(0, dataclasses.replace(TINY, soft_labels=False))
    assert not hard.soft and hard.labels.tolist() == [c for c in range(4) for _ in range(2)]


def test_bad_input_fails_before_compute():
    real = toy_image_data(n_per_class=10, classes=4)
    assert expert_checkpoints(40, TINY) == 5
    with pytest.raises(ValueError, match="t_m=6 exceeds the expert's 5 checkpoints"):
        condense("ead", real, 1, config=dataclasses.replace(TINY, t_m=6), net_cfg=TINY_NET,
                 device="cpu", quiet=True, cache=False)
    with pytest.raises(ValueError, match="alpha"):
        EADConfig(alpha=float("nan"))
    with pytest.raises(ValueError, match="t_m"):
        EADConfig(t_m=0)
    with pytest.raises(ValueError, match="probability distributions"):
        check_soft_labels(torch.tensor([[0.5, 0.6], [1.0, 0.0]]), 2)
    with pytest.raises(ValueError, match="float \\(n, 3\\)"):
        check_soft_labels(torch.ones(2, 2) / 2, 3)
    with pytest.raises(ValueError, match="three \\(t_m, P\\)"):
        effect_alignment_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3, 3), 0.0)


def test_bad_soft_labels_raise_before_any_step(monkeypatch):
    """A diverged expert (NaN logits) gives NaN soft labels: refused before EAD's first step."""
    import ddrepro.condense.ead as ead

    class Diverged:
        def predict(self, images):
            return torch.full((1, images.shape[0], 4), float("nan"))

    monkeypatch.setattr(ead, "_expert", lambda ctx, cfg: (three_checkpoints(), Diverged()))
    monkeypatch.setattr(ead, "group_grads", lambda *a, **k: pytest.fail("took an EAD step"))
    real = toy_image_data(n_per_class=10, classes=4)
    with pytest.raises(ValueError, match="not finite"):
        condense("ead", real, 2, config=TINY, net_cfg=TINY_NET, device="cpu", quiet=True, cache=False)
    with pytest.raises(ValueError, match="not finite"):
        check_soft_labels(torch.tensor([[float("nan"), 1.0]]), 2)


def test_rows_outside_the_sampled_batch_do_not_move():
    """Adam moves a zero-gradient row by its running moment; the lazy step leaves it (and its moments)."""
    def two_steps(lazy):
        x = torch.zeros(3, 2, requires_grad=True)
        opt = torch.optim.Adam([x], lr=0.1)
        x.grad = torch.ones(3, 2)               # step 1: every row sampled
        opt.step()
        after_first = x.detach().clone()
        moments = opt.state[x]["exp_avg"].clone()
        x.grad = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])   # step 2: row 0 only
        lazy_adam_step(opt, [x], torch.tensor([0])) if lazy else opt.step()
        return after_first, x.detach(), moments, opt.state[x]["exp_avg"]

    first, second, m1, m2 = two_steps(lazy=True)
    assert torch.equal(second[1:], first[1:]) and torch.equal(m2[1:], m1[1:])
    assert not torch.equal(second[0], first[0])
    first, second, _, _ = two_steps(lazy=False)  # plain Adam: rows 1 and 2 move with no gradient
    assert not torch.allclose(second[1:], first[1:])
    # all rows sampled: the lazy step is Adam's
    a = torch.ones(2, 2, requires_grad=True)
    b = torch.ones(2, 2, requires_grad=True)
    oa, ob = torch.optim.Adam([a], lr=0.1), torch.optim.Adam([b], lr=0.1)
    a.grad = b.grad = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    oa.step()
    lazy_adam_step(ob, [b], torch.arange(2))
    assert torch.equal(a, b)
