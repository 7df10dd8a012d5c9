"""The batched evaluator against the plain loop, the SGD arithmetic, schedule, labels, weights."""

import pytest
import torch

import ddrepro.evaluate as ev
import ddrepro.models
import ddrepro.train as tr
from ddrepro.augment import DSA
from ddrepro.augment_dc import DCAugment
from ddrepro.config import AugConfig, EvalConfig, NetConfig
from ddrepro.data.dataset import ImageData
from ddrepro.evaluate import EvalResult, accuracy, evaluate, evaluate_across, train_full
from ddrepro.reference import evaluate_loop, train_model_loop
from ddrepro.train import lr_at, sgd_step, train_models
from ddrepro.synthetic import SyntheticSet

NET = NetConfig(width=8, depth=2)
EVAL = EvalConfig(epochs=3, batch_size=8, n_models=3, augment="none")


def toy(n_per_class=2, classes=4, channels=1, size=8, noise=0.3, seed=0):
    """Class c = a fixed random pattern plus noise: separable, with known labels."""
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, channels, size, size, generator=gen)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = patterns[labels] + noise * torch.randn(len(labels), channels, size, size, generator=gen)
    return images, labels


def as_imagedata(images, labels, classes=4):
    return ImageData(images, labels, "toy", "test", (0.0,) * images.shape[1], (1.0,) * images.shape[1],
                     tuple(str(c) for c in range(classes)), flip_ok=False)


def max_diff(models, k, net):
    state = net.state_dict()
    return max((models.params[name][k] - state[name]).abs().max().item() for name in models.params)


@pytest.mark.parametrize("engine,atol", [("unrolled", 0.0), ("vmap", 1e-5)])
@pytest.mark.parametrize("augment", ["none", "dsa", "dc"])
def test_batched_equals_plain_loop(engine, atol, augment):
    images, labels = toy(n_per_class=5)            # 20 images, batch 8: 3 steps per epoch
    test_images, _ = toy(n_per_class=10, seed=1)
    aug = {"none": None, "dsa": DSA(AugConfig(), flip=False), "dc": DCAugment()}[augment]
    models = train_models(images, labels, net_cfg=NET, eval_cfg=EVAL, num_classes=4, seed=5,
                          aug=aug, engine=engine, device="cpu", quiet=True)
    preds = models.predict(test_images).argmax(2)
    for k in range(3):
        net = train_model_loop(images, labels, k, net_cfg=NET, eval_cfg=EVAL, num_classes=4,
                               seed=5, aug=aug, device="cpu", quiet=True)
        # unrolled runs the identical kernels in the identical order: bit-equal. vmap uses
        # grouped kernels whose rounding differs (measured ~1e-7 after 9 steps).
        assert max_diff(models, k, net) <= atol
        with torch.no_grad():
            assert torch.equal(preds[k], net(test_images).argmax(1))


def test_model_k_trains_the_same_alone_or_in_a_batch():
    images, labels = toy()
    batch = train_models(images, labels, net_cfg=NET, eval_cfg=EVAL, num_classes=4, seed=2,
                         aug=DSA(AugConfig(), flip=False), device="cpu", quiet=True)
    alone = train_models(images, labels, net_cfg=NET, eval_cfg=EVAL, num_classes=4, seed=2,
                         aug=DSA(AugConfig(), flip=False), n_models=1, first_model=2,
                         device="cpu", quiet=True)
    for name in batch.params:
        assert torch.equal(batch.params[name][2], alone.params[name][0])
    assert not torch.equal(batch.params["classifier.weight"][0], batch.params["classifier.weight"][1])


def test_sgd_step_matches_torch_optim_and_the_hand_formula():
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(5, generator=gen)
    grads = [torch.randn(5, generator=gen) for _ in range(3)]
    lr, m, wd = 0.1, 0.9, 0.01
    ref = p0.clone().requires_grad_(True)
    opt = torch.optim.SGD([ref], lr=lr, momentum=m, weight_decay=wd)
    ours, buf = p0.clone(), torch.zeros(5)
    for i, g in enumerate(grads):
        ref.grad = g.clone()
        opt.step()
        before = ours.clone()
        sgd_step([ours], [g], [buf], lr=lr, momentum=m, weight_decay=wd)
        if i == 0:   # first step by hand: p1 = p0 - lr (g + wd p0)
            assert torch.allclose(ours, before - lr * (g + wd * before), atol=1e-7)
        assert torch.equal(ours, ref.detach())


def test_lr_is_divided_by_ten_from_half_the_epochs():
    cfg = EvalConfig(epochs=10, lr=0.01)
    assert [lr_at(e, cfg) for e in range(10)] == [0.01] * 5 + [pytest.approx(0.001)] * 5
    assert lr_at(0, EvalConfig(epochs=1, lr=0.01)) == 0.01   # nothing to decay in one epoch


def test_decay_epochs_give_a_step_schedule_or_a_constant_rate():
    # the bias paper's full-set schedule: x0.1 at epochs 50 and 100 of 150
    cfg = EvalConfig(epochs=150, lr=0.01, decay_epochs=(50, 100))
    rates = [lr_at(e, cfg) for e in range(150)]
    assert rates[:50] == [0.01] * 50
    assert rates[50:100] == [pytest.approx(0.001)] * 50 and rates[100:] == [pytest.approx(1e-4)] * 50
    assert {lr_at(e, EvalConfig(epochs=4, lr=0.03, decay_epochs=())) for e in range(4)} == {0.03}


@pytest.mark.parametrize("bad", [(0,), (3,), (2, 1), (1, 1)])
def test_decay_epochs_outside_the_run_are_refused(bad):
    with pytest.raises(ValueError, match="decay_epochs"):
        EvalConfig(epochs=3, decay_epochs=bad)


def test_two_decays_restart_momentum_twice_as_the_reference_loop():
    # the batched loop and a plain torch.optim.SGD loop that re-creates its optimiser at each decay
    images, labels = toy()
    cfg = EvalConfig(epochs=3, batch_size=64, n_models=2, lr=0.05, momentum=0.9, weight_decay=0.01,
                     augment="none", decay_epochs=(1, 2))
    kw = {"net_cfg": NET, "eval_cfg": cfg, "num_classes": 4, "seed": 2, "device": "cpu",
          "quiet": True}
    models = train_models(images, labels, record_every=1, engine="unrolled", **kw)
    assert [float(c["lr"]) for c in models.trajectory] == pytest.approx([0.05, 0.005, 5e-4, 5e-4])
    for k in range(2):
        assert max_diff(models, k, train_model_loop(images, labels, k, **kw)) == 0.0


def test_recorded_steps_use_the_recorded_learning_rate():
    # full batch, no momentum or decay: p_{s+1} = p_s - lr_s * grad(p_s), checked by recomputing grad
    images, labels = toy()
    cfg = EvalConfig(epochs=4, batch_size=64, n_models=1, momentum=0.0, weight_decay=0.0, lr=0.05,
                     augment="none")
    models = train_models(images, labels, net_cfg=NET, eval_cfg=cfg, num_classes=4, record_every=1,
                          device="cpu", quiet=True)
    traj = models.trajectory
    assert [float(c["lr"]) for c in traj] == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.005])
    for s in range(4):
        net = models.module(0).train()
        net.load_state_dict({n: traj[s][n][0] for n in models.params})
        tr.batch_loss(net(images), labels, None).backward()
        for name, p in net.named_parameters():
            expected = traj[s][name][0] - float(traj[s]["lr"]) * p.grad
            assert torch.allclose(traj[s + 1][name][0], expected, atol=1e-6)


class RecordingDSA(DSA):
    """A DSA that keeps the params and inputs of every apply call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def apply(self, x, params):
        self.calls.append((x, params))
        return super().apply(x, params)


def test_dsa_draws_one_op_per_model_and_batch_with_per_sample_magnitudes():
    # the reference's DiffAugment mode 'S': one op per call (minibatch), magnitudes per sample
    images, labels = toy(n_per_class=3)           # 12 images, batch 6: 2 steps per epoch
    cfg = EvalConfig(epochs=2, batch_size=6, n_models=4, augment="dsa")
    kw = {"net_cfg": NET, "eval_cfg": cfg, "num_classes": 4, "seed": 0, "device": "cpu",
          "quiet": True}
    aug = RecordingDSA(AugConfig(), flip=False)
    train_models(images, labels, aug=aug, engine="unrolled", **kw)
    calls, plain_apply = list(aug.calls), DSA(AugConfig(), flip=False).apply
    assert len(calls) == 4
    for x, rows in calls:
        ops = rows.ops.view(4, 6)
        assert (ops == ops[:, :1]).all()          # one op within each model's batch
        for block in rows.brightness.view(4, 6):
            assert block.unique().numel() == 6    # magnitudes drawn per sample
        # the concatenated blocks transform as each model's block alone
        blocks = [plain_apply(xk, rows.index(torch.arange(6 * k, 6 * k + 6)))
                  for k, xk in enumerate(x.split(6))]
        assert torch.allclose(plain_apply(x, rows), torch.cat(blocks), atol=1e-6)
    assert any(rows.ops.view(4, 6)[:, 0].unique().numel() > 1 for _, rows in calls)
    # the plain loop draws model k's rows exactly as the batched run does
    loop_aug = RecordingDSA(AugConfig(), flip=False)
    train_model_loop(images, labels, 2, aug=loop_aug, **kw)
    assert len(loop_aug.calls) == 4
    for (_, rows), (_, loop_rows) in zip(calls, loop_aug.calls):
        block = rows.index(torch.arange(12, 18))
        assert torch.equal(block.ops, loop_rows.ops) and torch.equal(block.scale, loop_rows.scale)


def test_momentum_is_reset_at_the_learning_rate_decay():
    # full batch, 2 epochs: step 0 at lr, step 1 at lr / 10 with a fresh optimiser, so
    # p2 = p1 - (lr / 10) (grad(p1) + wd p1) with no momentum term (as the reference's new SGD)
    images, labels = toy()
    lr, wd = 0.05, 0.01
    cfg = EvalConfig(epochs=2, batch_size=64, n_models=2, lr=lr, momentum=0.9, weight_decay=wd,
                     augment="none")
    kw = {"net_cfg": NET, "eval_cfg": cfg, "num_classes": 4, "seed": 1, "device": "cpu",
          "quiet": True}
    models = train_models(images, labels, record_every=1, engine="unrolled", **kw)
    p0, p1, p2 = models.trajectory
    assert float(p1["lr"]) == pytest.approx(lr / 10)
    for k in range(2):
        net = models.module(k).train()
        net.load_state_dict({n: p1[n][k] for n in models.params})
        tr.batch_loss(net(images), labels, None).backward()
        for name, p in net.named_parameters():
            reset = p1[name][k] - lr / 10 * (p.grad + wd * p1[name][k])
            assert torch.allclose(p2[name][k], reset, atol=1e-6)
        # kept momentum would add 0.9 * buf_1 = 0.9 * (p0 - p1) / lr: a visibly different step
        kept = p1["classifier.weight"][k] - lr / 10 * (
            0.9 * (p0["classifier.weight"][k] - p1["classifier.weight"][k]) / lr
            + net.classifier.weight.grad + wd * p1["classifier.weight"][k])
        assert not torch.allclose(p2["classifier.weight"][k], kept, atol=1e-6)
        ref = train_model_loop(images, labels, k, **kw)
        assert max_diff(models, k, ref) == 0.0


@pytest.mark.parametrize("n,batch,epochs,every,expected", [(8, 64, 5, 2, 3), (20, 8, 3, 1, 10),
                                                            (20, 8, 3, 4, 3)])
def test_record_every_counts_checkpoints(n, batch, epochs, every, expected):
    images, labels = toy(n_per_class=n // 4)
    cfg = EvalConfig(epochs=epochs, batch_size=batch, n_models=2, augment="none")
    models = train_models(images, labels, net_cfg=NET, eval_cfg=cfg, num_classes=4,
                          record_every=every, device="cpu", quiet=True)
    assert len(models.trajectory) == expected
    assert [int(c["step"]) for c in models.trajectory] == [every * i for i in range(expected)]
    assert models.trajectory[0]["features.0.weight"].shape[0] == 2
    last = models.trajectory[-1]
    if int(last["step"]) == epochs * -(-n // batch):
        assert torch.equal(last["classifier.weight"], models.params["classifier.weight"])


def test_one_hot_soft_labels_equal_hard_labels():
    images, labels = toy()
    kw = dict(net_cfg=NET, eval_cfg=EVAL, num_classes=4, seed=1, device="cpu", quiet=True)
    hard = train_models(images, labels, **kw)
    soft = train_models(images, torch.nn.functional.one_hot(labels, 4).float(), **kw)
    for name in hard.params:
        assert torch.allclose(hard.params[name], soft.params[name], atol=1e-6)


def test_sample_weights_ones_and_zero():
    images, labels = toy(n_per_class=3)
    kw = dict(net_cfg=NET, eval_cfg=EvalConfig(epochs=3, batch_size=64, n_models=2, augment="none"),
              num_classes=4, seed=3, device="cpu", quiet=True)
    plain = train_models(images, labels, **kw)
    ones = train_models(images, labels, sample_weights=torch.ones(12), **kw)
    weights = torch.ones(12)
    weights[4] = 0.0
    zeroed = train_models(images, labels, sample_weights=weights, **kw)
    keep = torch.arange(12) != 4
    without = train_models(images[keep], labels[keep], **kw)
    for name in plain.params:
        assert torch.equal(plain.params[name], ones.params[name])
        assert torch.allclose(zeroed.params[name], without.params[name], atol=1e-6)
    assert not torch.allclose(zeroed.params["classifier.bias"], plain.params["classifier.bias"])


def test_separable_toy_set_is_learned_perfectly():
    images, labels = toy(n_per_class=5)
    cfg = EvalConfig(epochs=30, batch_size=8, n_models=2, augment="none")
    models = train_models(images, labels, net_cfg=NET, eval_cfg=cfg, num_classes=4,
                          device="cpu", quiet=True)
    assert torch.equal(accuracy(models, (images, labels)), torch.ones(2))


def test_module_k_equals_predict_k_and_batchnorm_trains_unrolled():
    images, labels = toy()
    bn = NetConfig(width=8, depth=2, norm="batchnorm")
    models = train_models(images, labels, net_cfg=bn, eval_cfg=EVAL, num_classes=4, seed=4,
                          device="cpu", quiet=True)
    assert models.engine == "unrolled" and "features.1.running_mean" in models.buffers
    logits = models.predict(images, batch_size=3)
    assert logits.shape == (3, 8, 4)
    for k in range(3):
        with torch.no_grad():
            assert torch.allclose(models.module(k)(images), logits[k], atol=1e-6)
        ref = train_model_loop(images, labels, k, net_cfg=bn, eval_cfg=EVAL, num_classes=4,
                               seed=4, device="cpu", quiet=True)
        assert torch.equal(models.buffers["features.1.running_var"][k], ref.features[1].running_var)
        assert max_diff(models, k, ref) == 0.0


@pytest.mark.parametrize("change,match", [
    (dict(labels=torch.zeros(7, dtype=torch.int64)), "labels of shape"),
    (dict(n_models=0), "n_models"),
    (dict(labels=torch.full((8,), 4)), r"\[0, 4\)"),
    (dict(labels=torch.zeros(8, 3)), "soft labels"),
    (dict(sample_weights=-torch.ones(8)), "sample_weights"),
    (dict(record_every=0), "record_every"),
    (dict(images=torch.randn(8, 1, 8, 6)), "square"),
    (dict(engine="vmap", net_cfg=NetConfig(width=8, depth=2, norm="batchnorm")), "BatchNorm"),
])
def test_invalid_inputs_raise_before_compute(monkeypatch, change, match):
    images, labels = toy()
    kw = dict(net_cfg=NET, eval_cfg=EVAL, num_classes=4, device="cpu", quiet=True) | change
    if "engine" not in change:   # everything but the engine check fails before a net is built
        monkeypatch.setattr(ddrepro.models, "build_net", lambda *a, **k: pytest.fail("built a net first"))
    with pytest.raises(ValueError, match=match):
        train_models(kw.pop("images", images), kw.pop("labels", labels), **kw)


def test_evaluate_caches_and_agrees_with_the_loop(monkeypatch, tmp_path):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    images, labels = toy(n_per_class=2)
    test = as_imagedata(*toy(n_per_class=10, seed=1))
    syn = SyntheticSet(images, labels, (0.0,), (1.0,))
    cfg = EvalConfig(epochs=3, batch_size=8, n_models=2, augment="dsa")
    kw = dict(net_cfg=NET, eval_cfg=cfg, seed=0, flip=False, device="cpu", quiet=True)
    batched = evaluate(syn, test, **kw)
    loop = evaluate_loop(syn, test, **kw)
    assert isinstance(batched, EvalResult) and batched.accs.shape == (2,)
    assert torch.equal(batched.accs, loop.accs)
    assert batched.mean == pytest.approx(float(batched.accs.mean()))
    monkeypatch.setattr(ev, "train_models", lambda *a, **k: pytest.fail("cache missed"))
    again = evaluate(syn, test, **kw)
    assert torch.equal(again.accs, batched.accs)


def test_evaluate_augments_as_eval_config_says(monkeypatch, tmp_path):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    test = as_imagedata(*toy(n_per_class=5, seed=1))
    syn = SyntheticSet(*toy(n_per_class=2), (0.0,), (1.0,))
    seen = []
    real_train_models = ev.train_models

    def spy(*args, **kwargs):
        seen.append(kwargs["aug"])
        return real_train_models(*args, **kwargs)

    monkeypatch.setattr(ev, "train_models", spy)
    kw = dict(net_cfg=NET, seed=0, flip=False, device="cpu", quiet=True)
    results = {augment: evaluate(syn, test, eval_cfg=EvalConfig(epochs=2, batch_size=8, n_models=2,
                                                                  augment=augment),
                                  keep_models=True, **kw)
               for augment in ("dsa", "dc", "none")}
    assert [type(a).__name__ for a in seen] == ["DSA", "DCAugment", "NoneType"]  # three cache keys
    assert results["dc"].meta["eval"]["augment"] == "dc" and results["dc"].meta["aug"]["crop"] == 4
    assert results["none"].meta["aug"] is None and results["dsa"].meta["aug"]["cutout"] == 0.5
    weights = {k: r.models.params["classifier.weight"] for k, r in results.items()}
    assert not torch.equal(weights["dc"], weights["none"]) and not torch.equal(weights["dc"], weights["dsa"])


def test_evaluate_across_and_train_full(monkeypatch, tmp_path):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    train = as_imagedata(*toy(n_per_class=5))
    test = as_imagedata(*toy(n_per_class=5, seed=1))
    syn = SyntheticSet(*toy(n_per_class=1), (0.0,), (1.0,))
    cfg = EvalConfig(epochs=2, batch_size=8, n_models=2, augment="none")
    archs = [NET, NetConfig(name="mlp", width=16, depth=2)]
    results = evaluate_across(syn, test, archs, eval_cfg=cfg, flip=False, device="cpu", quiet=True,
                              cache=False)
    assert list(results) == ["convnet-width8-depth2", "mlp-width16-depth2"]
    assert all(r.accs.shape == (2,) for r in results.values())
    full = train_full(train, test, net_cfg=NET, eval_cfg=cfg, device="cpu", quiet=True, cache=False)
    assert full.accs.shape == (2,) and full.meta["n_train"] == 20
    with pytest.raises(ValueError, match="distinct"):
        evaluate_across(syn, test, [NET, NET], eval_cfg=cfg, flip=False, cache=False)


# -- per-example questions ------------------------------------------------------

def test_logit_confidence_is_lira_log_odds():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 2, 2])
    p = logits.softmax(-1).gather(-1, labels.expand(3, 5).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(ev.logit_confidence(logits, labels), torch.log(p / (1 - p)), atol=1e-12)


def test_probes_groups_and_kept_models(monkeypatch, tmp_path):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    syn = SyntheticSet(*toy(n_per_class=2), (0.0,), (1.0,))
    test = as_imagedata(*toy(n_per_class=6, seed=1))
    test = test.with_attrs(aligned=(torch.arange(len(test)) % 3 == 0))
    members = as_imagedata(*toy(n_per_class=3, seed=2))
    cfg = EvalConfig(epochs=3, batch_size=8, n_models=2, augment="none")
    kw = dict(net_cfg=NET, eval_cfg=cfg, seed=0, flip=False, device="cpu", quiet=True)
    result = evaluate(syn, test, probes={"members": members}, probe_flip=True, group_by="aligned",
                      keep_models=True, **kw)
    out = result.probes["members"]
    assert out["logits"].shape == (2, 12, 4) and out["phi"].shape == out["loss"].shape == (2, 12)
    logits = result.models.predict(members.images)
    assert torch.allclose(out["logits"], logits)
    assert torch.allclose(out["logits_flip"], result.models.predict(members.images.flip(-1)))
    assert torch.allclose(out["loss"], torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), members.labels.repeat(2), reduction="none").view(2, 12), atol=1e-6)
    correct = result.models.predict(test.images).argmax(2) == test.labels
    aligned = test.attrs["aligned"]
    assert set(result.groups) == {"0", "1"}
    assert torch.allclose(result.groups["1"], correct[:, aligned].float().mean(1))
    assert torch.allclose(result.accs, correct.float().mean(1))
    # everything comes back from the cache, models included
    monkeypatch.setattr(tr, "train_models", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(ev, "train_models", lambda *a, **k: pytest.fail("retrained"))
    again = evaluate(syn, test, probes={"members": members}, probe_flip=True, group_by="aligned",
                     keep_models=True, **kw)
    assert torch.equal(again.probes["members"]["phi"], out["phi"])
    assert torch.equal(again.models.params["classifier.weight"], result.models.params["classifier.weight"])
    with pytest.raises(ValueError, match="not an attribute"):
        evaluate(syn, test, group_by="colour", **kw)


def test_evaluate_many_equals_separate_evaluations_and_shares_their_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    sets = [SyntheticSet(*toy(n_per_class=n, seed=s), (0.0,), (1.0,)) for n, s in ((1, 0), (2, 1), (3, 2))]
    soft_images, soft_labels = toy(n_per_class=2, seed=3)
    sets.append(SyntheticSet(soft_images, torch.nn.functional.one_hot(soft_labels, 4).float() * 0.9 + 0.025,
                             (0.0,), (1.0,)))
    test = as_imagedata(*toy(n_per_class=5, seed=4))
    probes = {"p": as_imagedata(*toy(n_per_class=2, seed=5))}
    cfg = EvalConfig(epochs=3, batch_size=4, n_models=2, augment="dsa")
    kw = dict(net_cfg=NET, eval_cfg=cfg, flip=False, probes=probes, device="cpu", quiet=True)
    seeds = [3, 1, 4, 1]
    many = ev.evaluate_many(sets, test, seeds=seeds, engine="unrolled", **kw)
    for syn, seed, result in zip(sets, seeds, many):
        alone = evaluate(syn, test, seed=seed, cache=False, engine="unrolled", **kw)
        assert torch.equal(result.accs, alone.accs)
        assert torch.equal(result.probes["p"]["phi"], alone.probes["p"]["phi"])
    # each set's result was cached under evaluate()'s own key
    monkeypatch.setattr(ev, "train_models", lambda *a, **k: pytest.fail("cache missed"))
    hit = evaluate(sets[1], test, seed=1, engine="unrolled", **kw)
    assert torch.equal(hit.accs, many[1].accs)
    with pytest.raises(ValueError, match="one seed per set"):
        ev.evaluate_many(sets, test, seeds=[0], **kw)


def test_an_expert_trajectory_is_a_cached_artifact(monkeypatch, tmp_path):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path))
    train = as_imagedata(*toy(n_per_class=4))
    test = as_imagedata(*toy(n_per_class=3, seed=1))
    cfg = EvalConfig(epochs=2, batch_size=8, n_models=1, augment="none")
    kw = dict(net_cfg=NET, eval_cfg=cfg, keep_models=True, record_every=1, device="cpu", quiet=True)
    expert = train_full(train, test, **kw).models
    assert len(expert.trajectory) == 5                   # step 0 + 2 epochs x 2 batches
    monkeypatch.setattr(ev, "train_models", lambda *a, **k: pytest.fail("retrained"))
    again = train_full(train, test, **kw).models
    for name in expert.params:
        assert torch.equal(again.params_at(2)[name], expert.params_at(2)[name])
    with pytest.raises(ValueError, match="keep_models=True"):
        train_full(train, test, **(kw | {"keep_models": False}))
