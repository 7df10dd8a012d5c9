"""MTT (Cazenavette et al. 2022): Eq. 2's known zero, gradients into images and step size, the authors' buffer, bad input."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from ddrepro.augment import DSA
from ddrepro.condense import condense
from ddrepro.condense.expert import expert_buffer, expert_recipe
from ddrepro.condense.mtt import (check_ranges, evaluation_recipe, sgd_unroll, student_batches,
                                  student_inputs, trajectory_matching_loss)
from ddrepro.config import AugConfig, EvalConfig, NetConfig
from ddrepro.nets import build_net
from ddrepro.condense.ead import EADConfig
from ddrepro.condense.mtt import MTTConfig
from ddrepro.synthetic import SyntheticSet
from ddrepro.train import Recipe
from helpers import toy_image_data

TINY_NET = NetConfig(width=8, depth=2)
# 40 toy images in batches of 8: 5 updates per epoch; 3 epochs -> checkpoints (epochs) 0..3
TINY = MTTConfig(steps=3, syn_steps=2, expert_steps=2, max_start=2, lr_img=10.0, lr_lr=0.01,
                 expert_epochs=3, expert_batch=8, expert_lr=0.05, n_experts=2)


def context(real, seed=0):
    """What :func:`expert_buffer` reads of a condenser's Context."""
    return SimpleNamespace(real_images=real.images, real_labels=real.labels, num_classes=4,
                           net_cfg=TINY_NET, aug_cfg=AugConfig(), flip=False, seed=seed,
                           device=torch.device("cpu"), quiet=True)


def start_and_data():
    net = build_net(TINY_NET, 1, 4, 8, seed=0)
    params = {n: p.detach() for n, p in net.named_parameters()}
    real = toy_image_data(n_per_class=4, classes=4)
    return net, params, real


def test_loss_is_zero_when_the_student_retraces_the_expert_and_positive_otherwise():
    net, start, real = start_and_data()
    batches = [(real.images[:8], real.labels[:8]), (real.images[8:], real.labels[8:])]
    lr = torch.tensor(0.1)
    with torch.enable_grad():  # the expert: M = 2 SGD steps of the same data and step size
        target = sgd_unroll(net, {n: p.clone().requires_grad_(True) for n, p in start.items()}, {},
                            batches, lr)
    target = {n: p.detach() for n, p in target.items()}
    assert float(trajectory_matching_loss(net, {}, start, target, batches, lr).detach()) == pytest.approx(0, abs=1e-10)
    # the student that does not move scores 1 (the expert's own step, normalised); other data > 0
    assert float(trajectory_matching_loss(net, {}, start, target, batches, torch.tensor(0.0)).detach()) == \
        pytest.approx(1.0, rel=1e-6)
    other = [(real.images[8:], real.labels[8:]), (real.images[:8], real.labels[:8])]
    assert float(trajectory_matching_loss(net, {}, start, target, other, lr).detach()) > 1e-6


def test_the_unroll_is_plain_sgd():
    net, start, real = start_and_data()
    x, y = real.images[:8], real.labels[:8]
    end = sgd_unroll(net, {n: p.clone().requires_grad_(True) for n, p in start.items()}, {}, [(x, y)],
                     torch.tensor(0.3))
    ref = build_net(TINY_NET, 1, 4, 8, seed=0)
    torch.nn.functional.cross_entropy(ref(x), y).backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(end[name], p.detach() - 0.3 * p.grad)


def test_gradients_reach_the_images_and_the_log_step_size():
    net, start, real = start_and_data()
    torch.manual_seed(0)
    net, start = net.double(), {n: p.double() for n, p in start.items()}  # float64: the finite difference
    target = {n: p + 0.01 * torch.randn_like(p) for n, p in start.items()}
    images = real.images[:8].double().clone().requires_grad_(True)
    log_lr = torch.tensor(0.05, dtype=torch.float64).log().requires_grad_(True)
    loss = trajectory_matching_loss(net, {}, start, target,
                                    [(images[:4], real.labels[:4]), (images[4:], real.labels[4:8])],
                                    log_lr.exp())
    loss.backward()
    assert images.grad.abs().sum() > 0 and log_lr.grad.abs() > 0
    # the image gradient agrees with a finite difference along a random direction
    direction = torch.randn_like(images)
    eps = 1e-6  # ReLU kinks: the loss is piecewise smooth, so the step must stay inside one piece

    def at(shift):
        x = (images + shift * direction).detach()
        return float(trajectory_matching_loss(net, {}, start, target,
                                              [(x[:4], real.labels[:4]), (x[4:], real.labels[4:8])],
                                              log_lr.exp().detach()).detach())

    numeric = (at(eps) - at(-eps)) / (2 * eps)
    assert float((images.grad * direction).sum()) == pytest.approx(numeric, rel=1e-4)


def test_student_batches_cover_the_set_in_reshuffled_chunks():
    cfg = dataclasses.replace(TINY, syn_steps=5, batch_syn=3)
    chunks = student_batches(8, cfg, torch.Generator().manual_seed(0))
    assert [c.numel() for c in chunks] == [3, 3, 2, 3, 3]
    assert sorted(torch.cat(chunks[:3]).tolist()) == list(range(8))
    whole = student_batches(8, TINY, torch.Generator().manual_seed(0))
    assert all(sorted(c.tolist()) == list(range(8)) for c in whole)


def test_condense_moves_images_and_step_size_and_is_deterministic(private_cache):
    real = toy_image_data(n_per_class=10, classes=4)

    def run(seed):
        return condense("mtt", real, 2, config=TINY, seed=seed, net_cfg=TINY_NET, device="cpu",
                        quiet=True, cache=False)

    a, b, other = run(0), run(0), run(1)
    assert torch.equal(a.images, b.images) and a.meta["student_lr"] == b.meta["student_lr"]
    assert not torch.equal(a.images, other.images)
    start = condense("random", real, 2, seed=0, cache=False)  # the same real initialisation
    assert not torch.allclose(a.images, start.images)
    assert a.meta["student_lr"] != pytest.approx(TINY.expert_lr, rel=1e-9)   # the step size learned
    plain = condense("mtt", real, 2, config=dataclasses.replace(TINY, dsa=False), seed=0,
                     net_cfg=TINY_NET, device="cpu", quiet=True, cache=False)
    assert not torch.equal(a.images, plain.images)   # DSA in the buffer and the student's steps
    assert not a.soft and a.labels.tolist() == [c for c in range(4) for _ in range(2)]


@pytest.mark.parametrize("change, message", [
    ({"max_start": 3}, "max_start=3 and expert_steps=2 reach epoch 4, beyond the expert buffer's last"),
    ({"expert_steps": 4, "max_start": 1}, "reach epoch 4"),
])
def test_a_range_beyond_the_buffer_fails_before_the_experts_are_trained(change, message, monkeypatch):
    import ddrepro.condense.expert as expert

    monkeypatch.setattr(expert, "train_models", lambda *a, **k: pytest.fail("trained an expert"))
    real = toy_image_data(n_per_class=10, classes=4)
    cfg = dataclasses.replace(TINY, **change)
    with pytest.raises(ValueError, match=message):
        condense("mtt", real, 1, config=cfg, net_cfg=TINY_NET, device="cpu", quiet=True, cache=False)
    assert check_ranges(TINY) == 3


@pytest.mark.parametrize("field", ["syn_steps", "expert_steps", "max_start", "steps", "lr_img", "n_experts"])
def test_non_positive_settings_are_refused(field):
    with pytest.raises(ValueError, match=f"MTTConfig.{field} = 0"):
        MTTConfig(**{field: 0})


def test_no_student_step_is_refused():
    net, start, _ = start_and_data()
    with pytest.raises(ValueError, match="at least one student step"):
        trajectory_matching_loss(net, {}, start, start, [], torch.tensor(0.1))


def test_the_expert_rate_is_constant():
    """MTT's buffer.py trains at lr_teacher throughout; the old recipe cut it x0.1 at epochs // 2."""
    for cfg in (TINY, EADConfig(expert_epochs=4)):
        recipe = Recipe.from_eval(expert_recipe(cfg))
        assert recipe.decay_at == ()
        assert [recipe.lr_at(e) for e in range(cfg.expert_epochs)] == [cfg.expert_lr] * cfg.expert_epochs


def test_the_buffer_is_several_dsa_experts_at_one_rate_with_a_checkpoint_per_epoch(private_cache):
    real = toy_image_data(n_per_class=10, classes=4)
    experts = expert_buffer(context(real), TINY, TINY.n_experts, dsa=True)
    assert len(experts) == 2
    for traj in experts:
        assert len(traj) == TINY.expert_epochs + 1          # epochs 0 (the initialisation) to 3
        assert traj.updates.tolist() == [5, 5, 5, 0]        # one epoch of 40 / 8 updates between them
        # every checkpoint carries the expert's rate (the old recipe: 0.005 from epoch 1 on)
        assert torch.allclose(traj.lrs, torch.full((4,), TINY.expert_lr))
    first = {n: p[0] for n, p in experts[0].params.items()}
    assert any(not torch.equal(first[n], experts[1].params[n][0]) for n in first)   # distinct inits
    # DSA changes the run: the same expert without augmentation ends elsewhere
    plain = expert_buffer(context(real), TINY, 1, dsa=False)[0]
    assert any(not torch.equal(experts[0].params[n][-1], plain.params[n][-1]) for n in first)
    assert all(torch.equal(experts[0].params[n][0], plain.params[n][0]) for n in first)  # same key
    with pytest.raises(ValueError, match="n_experts"):
        expert_buffer(context(real), TINY, 0, dsa=True)


def test_student_inputs_are_augmented_differentiably():
    images = torch.randn(6, 1, 8, 8, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    assert student_inputs(images, None, gen) is images
    out = student_inputs(images, DSA(AugConfig(), flip=False), gen)
    assert out.shape == images.shape and not torch.allclose(out, images)
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_evaluation_runs_at_the_learned_step():
    base = EvalConfig(epochs=3, n_models=1)
    images, labels = torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])
    learned = SyntheticSet(images, labels, (0.0,), (1.0,), {"student_lr": 0.0123})
    assert evaluation_recipe(learned, base) == dataclasses.replace(base, lr=0.0123)
    assert evaluation_recipe(SyntheticSet(images, labels, (0.0,), (1.0,), {}), base) is base
