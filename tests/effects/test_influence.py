"""The replacement effect (Def. 3.1) by coupled retraining, and its two estimators (Prop. 3.2)."""

import pytest
import torch

from ddrepro.config import EvalConfig, NetConfig
from ddrepro.effects.influence import (EffectEstimator, effect_derived, effect_paper,
                                       linear_response, mixing_weights, replacement_alpha,
                                       replacement_members, retrained_losses, spearman)
from ddrepro.train import train_models
from ddrepro.trajectory import Trajectory, sample_checkpoints

LOGREG = NetConfig(name="mlp", depth=1)          # one linear layer: multinomial logistic regression


def blobs(n, seed, classes=3):
    """Gaussian clusters as (n, 1, 4, 4) images: a convex, well-posed problem."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 1, 4, 4, generator=torch.Generator().manual_seed(99))
    labels = torch.arange(n) % classes
    return centres[labels] + 0.8 * torch.randn(n, 1, 4, 4, generator=gen), labels


def full_batch(epochs, lr):
    """Full-batch gradient descent: deterministic, so coupled retrainings differ only by the data."""
    return EvalConfig(epochs=epochs, batch_size=10_000, lr=lr, momentum=0.0, weight_decay=0.0,
                      n_models=1, augment="none")


def run(groups, additions, *, n_d=60, epochs=3, lr=0.05, seed=0):
    x_d, y_d = blobs(n_d, seed)
    x_a, y_a = blobs(40, seed + 1)
    y_a[20:] = (y_a[20:] + 1) % 3                                   # half the candidates mislabelled
    x_p, y_p = blobs(60, seed + 2)
    pool_x, pool_y = torch.cat([x_d, x_a]), torch.cat([y_d, y_a])
    members = replacement_members(n_d, len(pool_y), groups, additions)
    losses, models = retrained_losses(pool_x, pool_y, members, x_p, y_p, net_cfg=LOGREG,
                                      eval_cfg=full_batch(epochs, lr), num_classes=3, seed=seed,
                                      record_every=1, device="cpu", quiet=True)
    return pool_x, pool_y, (x_p, y_p), losses[0] - losses[1:], Trajectory.from_models(models, 0)


def test_alpha_and_the_two_forms_on_a_hand_computed_case():
    assert replacement_alpha(100, 10, 4) == pytest.approx(6 / 94)
    g_p, g_d, g_g, g_a = (torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]),
                          torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]]))
    alpha = replacement_alpha(10, 2, 1)                               # 1 / 9
    assert float(effect_paper(g_p, g_d, g_g, g_a, alpha)) == pytest.approx(2 - alpha)
    # |D'| = 9: alpha * 1 - 2/9 * 2 + 1/9 * 0, times the step length 0.5
    derived = effect_derived(g_p, g_d, g_g, g_a, n_d=10, n_g=2, n_a=1, step_lengths=torch.tensor([0.5]))
    assert float(derived) == pytest.approx(0.5 * (1 / 9 - 4 / 9))


def test_removing_the_set_you_measure_on_raises_its_loss_derived_says_so_eq4_does_not():
    """Sanity case P = G, A empty: R < 0 by retraining; the derived form is negative, Eq. 4 positive."""
    group = torch.arange(0, 60, 3)                                    # all of class 0
    pool_x, pool_y, _, effect, traj = run([group], [torch.zeros(0, dtype=torch.int64)])
    assert float(effect[0]) < 0
    g_x, g_y = pool_x[group], pool_y[group]
    est = EffectEstimator(traj, g_x, g_y, pool_x[:60], pool_y[:60])   # P = G
    none_x, none_y = pool_x[:0], pool_y[:0]
    assert est.estimate(g_x, g_y, none_x, none_y, form="derived") < 0
    assert est.estimate(g_x, g_y, none_x, none_y, form="paper") > 0


def test_derived_estimator_ranks_retrained_effects_with_the_right_sign():
    gen = torch.Generator().manual_seed(5)
    groups = [torch.randperm(60, generator=gen)[:int(torch.randint(1, 10, (1,), generator=gen))]
              for _ in range(25)]
    additions = [60 + torch.randperm(40, generator=gen)[:int(torch.randint(0, 10, (1,), generator=gen))]
                 for _ in range(25)]
    pool_x, pool_y, (x_p, y_p), effect, traj = run(groups, additions, epochs=2)
    est = EffectEstimator(traj, x_p, y_p, pool_x[:60], pool_y[:60])
    derived = torch.tensor([est.estimate(pool_x[g], pool_y[g], pool_x[a], pool_y[a])
                            for g, a in zip(groups, additions)])
    paper = torch.tensor([est.estimate(pool_x[g], pool_y[g], pool_x[a], pool_y[a], form="paper")
                          for g, a in zip(groups, additions)])
    assert spearman(derived, effect) >= 0.9
    assert spearman(paper, effect) < 0.5                               # the printed form does not


def test_sampled_checkpoints_and_bad_input():
    group = torch.arange(5)
    pool_x, pool_y, (x_p, y_p), _, traj = run([group], [torch.zeros(0, dtype=torch.int64)], epochs=4)
    assert len(traj) == 5 and traj.updates.tolist() == [1, 1, 1, 1, 0]
    est = EffectEstimator(traj, x_p, y_p, pool_x[:60], pool_y[:60], t_m=2, seed=3)
    assert est.t_m == 2 and est.step_lengths.shape == (2,)
    assert torch.allclose(est.step_lengths, traj.lrs[est.checkpoints] * 2)   # T / t_m = 4 / 2
    with pytest.raises(ValueError, match="t_m=9 exceeds"):
        EffectEstimator(traj, x_p, y_p, pool_x[:60], pool_y[:60], t_m=9)
    with pytest.raises(ValueError, match="G is empty"):
        est.estimate(pool_x[:0], pool_y[:0], pool_x[:1], pool_y[:1])
    with pytest.raises(ValueError, match="group 0 is empty"):
        replacement_members(60, 100, [torch.zeros(0, dtype=torch.int64)], [torch.arange(60, 61)])
    with pytest.raises(ValueError, match="A \\[60, 100\\)"):
        replacement_members(60, 100, [torch.arange(3)], [torch.arange(3)])
    with pytest.raises(ValueError, match="form must be"):
        est.estimate(pool_x[:1], pool_y[:1], pool_x[:0], pool_y[:0], form="eq4")
    with pytest.raises(ValueError, match="t_m must be an int"):
        sample_checkpoints(4, 0, torch.Generator())


def _response_setup(epochs=6, lr=0.5):
    """Two replacements on the blobs, the run on D recorded, the mixing directions built."""
    groups = [torch.arange(0, 6), torch.arange(10, 13)]
    additions = [torch.arange(60, 64), torch.arange(80, 90)]        # clean, then mislabelled rows
    pool_x, pool_y, (x_p, y_p), effect, traj = run(groups, additions, epochs=epochs, lr=lr)
    members = replacement_members(60, len(pool_y), groups, additions)
    d_rows = torch.nonzero(members[0]).flatten()
    w_d, deltas = zip(*[mixing_weights(len(pool_y), d_rows, torch.nonzero(m).flatten()) for m in members[1:]])
    start = {n: p[0] for n, p in traj.params.items()}
    lrs = traj.lrs[:-1]                                              # the step after each checkpoint
    resp = linear_response(traj.base, start, traj.buffers, lrs, pool_x, pool_y, w_d[0],
                           torch.stack(deltas), x_p, y_p)
    return pool_x, pool_y, (x_p, y_p), members, w_d[0], torch.stack(deltas), traj, lrs, resp, effect


def test_the_linear_response_is_the_derivative_of_retraining_in_the_mixing_weight():
    """Finite differences of coupled retrainings at eps = 0, h, 2h (the engine's loop, per-sample
    weights (1 - eps) / |D| on D and eps / |D'| on D'; eps >= 0 keeps every weight >= 0), with
    Richardson's second-order combination, match the jvp response."""
    pool_x, pool_y, (x_p, y_p), members, w_d, deltas, traj, _, resp, _ = _response_setup()
    h = 1e-2
    for k in range(len(deltas)):
        weights = torch.stack([w_d + e * deltas[k] for e in (0.0, h, 2 * h)])
        models = train_models(pool_x, pool_y, net_cfg=LOGREG, eval_cfg=full_batch(6, 0.5), num_classes=3,
                              members=weights > 0, coupled=True, sample_weights=weights, seed=0,
                              device="cpu", quiet=True)
        logits = models.predict(x_p)
        l0, l1, l2 = (float(torch.nn.functional.cross_entropy(logits[i], y_p)) for i in range(3))
        numeric = -(4 * (l1 - l0) - (l2 - l0)) / (2 * h)
        assert float(resp[k]) == pytest.approx(numeric, rel=2e-2, abs=5e-6)
    assert float(resp[1]) < -0.01    # ten mislabelled images added: the loss on P rises (R < 0)


def test_one_step_response_has_its_closed_form_and_differs_from_the_derived_form():
    """T = 1: R_lin = eta <grad L(P, theta_1), grad L(D') - grad L(D) at theta_0>; the derived form
    reads grad L(P) at theta_0 instead, so the two differ (the dropped propagation)."""
    pool_x, pool_y, (x_p, y_p), members, w_d, deltas, traj, lrs, _, _ = _response_setup(epochs=1)
    from torch.func import functional_call, grad
    from ddrepro.train import per_sample_loss

    base, start = traj.base, {n: p[0] for n, p in traj.params.items()}

    def weighted(params, w):
        return (w * per_sample_loss(functional_call(base, (params, {}), (pool_x,)), pool_y)).sum()

    def p_loss(params):
        return torch.nn.functional.cross_entropy(functional_call(base, (params, {}), (x_p,)), y_p)

    resp = linear_response(base, start, {}, lrs, pool_x, pool_y, w_d, deltas, x_p, y_p)
    eta = float(lrs[0])
    g_change = grad(weighted)(start, deltas[0])                       # grad L(D') - grad L(D) at theta_0
    theta_1 = {n: p - eta * g for (n, p), g in zip(start.items(), grad(weighted)(start, w_d).values())}
    at_1, at_0 = grad(p_loss)(theta_1), grad(p_loss)(start)
    closed = eta * sum((at_1[n] * g_change[n]).sum() for n in start)
    tracin = eta * sum((at_0[n] * g_change[n]).sum() for n in start)
    assert float(resp[0]) == pytest.approx(float(closed), rel=1e-4)
    assert float(closed) != pytest.approx(float(tracin), rel=1e-3)


def test_mixing_weights_give_the_two_means():
    w_d, delta = mixing_weights(5, torch.arange(3), torch.tensor([0, 3, 4]))
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert float((w_d * losses).sum()) == pytest.approx(2.0)
    assert float(((w_d + delta) * losses).sum()) == pytest.approx(10.0 / 3)
