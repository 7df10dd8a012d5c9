"""Watching a condensation, resuming a killed one, provenance, weights, many condensations."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from ddrepro.condense import condense, condense_many
from ddrepro.condense import tracking
from ddrepro.condense.kip import krr_loss
from ddrepro.config import DMConfig, GMConfig, KIPConfig, NetConfig
from helpers import toy_image_data

NET = NetConfig(width=8, depth=2)
CONFIGS = {
    "dm": DMConfig(steps=7, batch_real=6),
    "dsa": GMConfig(steps=7, outer_loops=2, inner_loops=1, batch_real=5, batch_train=4, dsa=True),
    "kip": KIPConfig(steps=7, batch_real=20),
}


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(method, real, **kw):
    return condense(method, real, 2, config=CONFIGS[method], seed=3, net_cfg=NET, device="cpu",
                    quiet=True, **kw)


def test_records_and_snapshots_follow_the_run_without_changing_it(cache):
    real = toy_image_data(n_per_class=10, classes=4)
    plain = run("dm", real, cache=False)
    watched = run("dm", real, record_every=3, snapshot_every=5, cache=False)
    assert torch.equal(plain.images, watched.images)
    h = watched.history
    assert h["step"].tolist() == [0, 3, 6, 7]            # the initial set, every 3rd step, the last
    assert h["snapshot_step"].tolist() == [0, 5, 7]
    assert torch.equal(h["snapshots"][-1], watched.images)
    assert torch.isnan(h["loss"][0]) and torch.isfinite(h["loss"][1:]).all()
    assert h["moved"][0] == 0 and h["moved"][-1] > 0
    # the barycentre distance, recomputed by hand for the final set (std 1: pixels = values)
    real_means = torch.stack([real.images[real.labels == c].mean(0) for c in range(4)])
    by_hand = (watched.images.view(4, 2, 1, 8, 8).mean(1) - real_means).flatten(1).norm(dim=1)
    assert torch.allclose(h["bary_dist"][-1], by_hand, atol=1e-6)
    start = watched.history["snapshots"][0]
    assert torch.allclose(h["moved"][-1], (watched.images - start).norm() / start.norm())


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_an_interrupted_run_resumes_to_the_same_result(cache, monkeypatch, method):
    real = toy_image_data(n_per_class=10, classes=4)
    uninterrupted = run(method, real, record_every=2, cache=False)
    original_save = tracking.Resume.save
    saved_at = []

    def save_then_stop(self, next_step, *args):
        original_save(self, next_step, *args)
        saved_at.append(next_step)
        if next_step == 4:
            raise KeyboardInterrupt  # the user stops the run after the state of step 4 is saved

    monkeypatch.setattr(tracking.Resume, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(method, real, record_every=2, checkpoint_every=2)
    assert saved_at == [2, 4] and list((cache / tracking.STATE_KIND).glob("*.pt"))
    monkeypatch.setattr(tracking.Resume, "save", original_save)
    steps_run = []
    from ddrepro.condense.base import Context

    real_steps = Context.steps

    def counting(self, total, desc=None, **kw):
        for step in real_steps(self, total, desc, **kw):
            steps_run.append(step)
            yield step

    monkeypatch.setattr(Context, "steps", counting)
    resumed = run(method, real, record_every=2, checkpoint_every=2)
    assert steps_run == [4, 5, 6]                      # continued from the saved state
    assert torch.equal(resumed.images, uninterrupted.images)
    assert torch.equal(resumed.labels, uninterrupted.labels)
    assert torch.equal(resumed.history["bary_dist"], uninterrupted.history["bary_dist"])
    assert not list((cache / tracking.STATE_KIND).glob("*.pt"))   # cleaned up once cached


def test_a_killed_long_condensation_resumes_at_its_last_state(tmp_path):
    code = """
        import os, signal, sys, torch
        sys.path.insert(0, {tests!r})
        from helpers import toy_image_data
        from ddrepro.condense import condense, dm, tracking
        from ddrepro.config import DMConfig, NetConfig
        calls = []
        reinit = dm.reinitialise_
        dm.reinitialise_ = lambda *a: calls.append(1) or reinit(*a)
        if os.environ.get("KILL_AT"):
            save = tracking.Resume.save
            def save_and_die(self, next_step, *args):
                save(self, next_step, *args)
                if next_step == int(os.environ["KILL_AT"]):
                    os.kill(os.getpid(), signal.SIGKILL)
            tracking.Resume.save = save_and_die
        real = toy_image_data(n_per_class=10, classes=4)
        cache = os.environ.get("NO_CACHE") is None
        syn = condense("dm", real, 2, config=DMConfig(steps=30, batch_real=6), seed=1,
                       net_cfg=NetConfig(width=8, depth=2), device="cpu", quiet=True,
                       checkpoint_every=5, cache=cache)
        torch.save(syn.images, os.environ["OUT"])
        print(len(calls))
    """.format(tests=os.path.dirname(__file__) + "/..")

    def go(**env):
        full_env = {**os.environ, "DDREPRO_CACHE": str(tmp_path / "cache"), **env}
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                              capture_output=True, text=True, timeout=300)

    killed = go(KILL_AT="15", OUT=str(tmp_path / "never.pt"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = go(OUT=str(tmp_path / "resumed.pt"))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split()[-1] == "15"            # 15 of 30 steps were left to run
    straight = go(OUT=str(tmp_path / "straight.pt"), NO_CACHE="1")
    assert straight.stdout.split()[-1] == "30"
    assert torch.equal(torch.load(tmp_path / "resumed.pt"), torch.load(tmp_path / "straight.pt"))


def test_init_and_selected_indices_point_into_the_root_set(cache):
    root = toy_image_data(n_per_class=10, classes=4)
    part = root.take(torch.arange(5, 40))
    syn = condense("random", part, 2, seed=0, quiet=True)
    assert torch.equal(syn.images, root.images[syn.meta["init_indices"]])
    herded = condense("herding", part, 2, seed=0, net_cfg=NET, device="cpu", quiet=True)
    assert torch.equal(herded.images, root.images[herded.meta["selected_indices"]])
    noise = run("dm", part, init="noise", cache=False)
    assert noise.meta["init_indices"] is None


def test_weights_are_honoured_or_refused(cache):
    real = toy_image_data(n_per_class=6, classes=3).with_weights(torch.ones(18))
    for method in ("random", "herding"):
        with pytest.raises(ValueError, match="cannot honour per-sample weights"):
            condense(method, real, 1, net_cfg=NET, cache=False)
    # KIP: weights on the targets' squared residuals; a zero weight removes the target
    gen = torch.Generator().manual_seed(0)
    k_ts, y_t, y_s = torch.rand(5, 3, generator=gen), torch.randn(5, 2, generator=gen), torch.randn(3, 2, generator=gen)
    k_ss = torch.eye(3) + 0.1
    w = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0])
    assert torch.allclose(krr_loss(k_ts, k_ss, y_t, y_s, 0.1, torch.ones(5)), krr_loss(k_ts, k_ss, y_t, y_s, 0.1))
    keep = w > 0
    assert torch.allclose(krr_loss(k_ts, k_ss, y_t, y_s, 0.1, w),
                          krr_loss(k_ts[keep], k_ss, y_t[keep], y_s, 0.1, w[keep]))


def test_gradient_matching_uses_the_weighted_real_loss(cache):
    real = toy_image_data(n_per_class=8, classes=3)
    cfg = GMConfig(steps=2, outer_loops=1, inner_loops=1, batch_real=8, batch_train=4)
    plain = condense("dc", real, 1, config=cfg, net_cfg=NET, device="cpu", quiet=True, cache=False)
    ones = condense("dc", real.with_weights(torch.ones(24)), 1, config=cfg, net_cfg=NET,
                    device="cpu", quiet=True, cache=False)
    weighted = condense("dc", real.with_weights(torch.arange(24.0) % 5 + 0.5), 1, config=cfg,
                        net_cfg=NET, device="cpu", quiet=True, cache=False)
    assert torch.allclose(plain.images, ones.images, atol=1e-6)
    assert not torch.equal(plain.images, weighted.images)
    # the loss itself: a zero weight is the same as leaving the image out of the real batch
    from ddrepro.condense.gm import matching_loss
    from ddrepro.nets import build_net

    net = build_net(NET, 1, 3, 8, seed=0)
    real_by_class = torch.stack([real.images[real.labels == c][:4] for c in range(3)])
    syn = torch.randn(3, 1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    w = torch.ones(3, 4)
    w[:, 0] = 0.0
    assert torch.allclose(matching_loss(net, real_by_class, syn, real_weights=w),
                          matching_loss(net, real_by_class[:, 1:], syn), atol=1e-6)
    assert torch.allclose(matching_loss(net, real_by_class, syn, real_weights=torch.ones(3, 4)),
                          matching_loss(net, real_by_class, syn), atol=1e-6)


def test_condense_many_equals_separate_runs_and_is_cached(cache, monkeypatch):
    real = toy_image_data(n_per_class=10, classes=4)
    gen = torch.Generator().manual_seed(0)
    halves = [torch.randperm(40, generator=gen)[:20] for _ in range(3)]
    halves[1] = torch.zeros(40, dtype=torch.bool).index_fill_(0, halves[1], True)  # a mask works too
    many = condense_many("dm", real, 1, subsets=halves, seeds=[0, 1, 2],
                         config=DMConfig(steps=3, batch_real=4), net_cfg=NET, device="cpu")
    for subset, seed, syn in zip(halves, [0, 1, 2], many):
        alone = condense("dm", real.take(subset), 1, config=DMConfig(steps=3, batch_real=4),
                         seed=seed, net_cfg=NET, device="cpu", quiet=True, cache=False)
        assert torch.equal(syn.images, alone.images)
        members = real.take(subset).source_index
        assert set(syn.meta["init_indices"].tolist()) <= set(members.tolist())
    import ddrepro.condense.dm as dm

    monkeypatch.setattr(dm, "distribution_matching_run", lambda *a, **k: pytest.fail("recomputed"))
    again = condense_many("dm", real, 1, subsets=halves, seeds=[0, 1, 2],
                          config=DMConfig(steps=3, batch_real=4), net_cfg=NET, device="cpu")
    assert all(torch.equal(a.images, b.images) for a, b in zip(many, again))
    with pytest.raises(ValueError, match="one per subset"):
        condense_many("dm", real, 1, subsets=halves, seeds=[0])
    with pytest.raises(ValueError, match="bool mask of length 40"):
        condense_many("dm", real, 1, subsets=[torch.ones(3, dtype=torch.bool)])
