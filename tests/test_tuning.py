"""Step sizes chosen on validation (ddrepro.tuning): the argmax, the validation split only, bad input first."""

import math

import pytest

from ddrepro import experiment, get_profile
from ddrepro.config import DMConfig, EvalConfig, NetConfig
from ddrepro.condense.mtt import MTTConfig
from ddrepro.tuning import StepSizeChoice, best_value, validation_sweep
from helpers import toy_image_data


def test_best_value_is_the_argmax_and_the_first_on_a_tie():
    assert best_value({3.0: 0.70, 10.0: 0.74, 30.0: 0.71}) == 10.0
    assert best_value({30.0: 0.5, 3.0: 0.5, 10.0: 0.4}) == 30.0  # the order given, not the smallest


@pytest.mark.parametrize("scores", [{}, {1.0: math.nan, 3.0: 0.5}])
def test_best_value_refuses_no_scores_and_nan(scores):
    with pytest.raises(ValueError, match="best_value"):
        best_value(scores)


@pytest.mark.parametrize("kwargs, field", [
    ({"values": ()}, "values"), ({"values": (0.0, 1.0)}, "values"), ({"values": (1.0, 1.0)}, "values"),
    ({"values": (math.inf,)}, "values"), ({"values": (True,)}, "values"), ({"ipc": 0}, "ipc"),
    ({"chosen": (("mnist",),)}, "chosen"), ({"chosen": (("mnist", -1.0),)}, "chosen"),
    ({"chosen": (("mnist", 1.0), ("mnist", 3.0))}, "chosen"), ({"chosen": ((3, 1.0),)}, "chosen"),
])
def test_step_size_choice_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"StepSizeChoice.{field} = "):
        StepSizeChoice(**kwargs)


def test_a_bad_override_raises_before_compute_and_lists_become_pairs():
    with pytest.raises(ValueError, match="StepSizeChoice.values"):
        get_profile("smoke", {"mtt_lr_img.values": [0, 10]})
    prof = get_profile("smoke", {"mtt_lr_img.chosen": [["mnist", 3], ["fashion_mnist", 30]]})
    assert prof.mtt_lr_img.chosen == (("mnist", 3.0), ("fashion_mnist", 30.0))
    hash(prof.mtt_lr_img)  # frozen and hashable again


def test_apply_sets_the_chosen_step_per_data_set_and_leaves_others():
    choice = StepSizeChoice(values=(3.0, 10.0), chosen=(("mnist", 10.0), ("fashion_mnist", 3.0)))
    cfg = MTTConfig(lr_img=1000.0)
    assert choice.apply(cfg, "fashion_mnist") == MTTConfig(lr_img=3.0)
    assert choice.apply(cfg, "cifar10") == cfg  # none chosen: the config's own
    with pytest.raises(ValueError, match="lr_img"):
        choice.apply(NetConfig(), "mnist")
    assert choice.stale({"mnist": 10.0, "fashion_mnist": 3.0}, 1000.0) == {}
    assert choice.stale({"mnist": 30.0, "kmnist": 1.0}, 1000.0) == {"mnist": (10.0, 30.0), "kmnist": (1000.0, 1.0)}
    assert choice.stale({"kmnist": 1000.0}, 1000.0) == {}  # none chosen, but the default is the best


def test_cpu_profile_chooses_a_step_per_data_set_and_keeps_mnist_config():
    prof = get_profile("cpu")
    assert {name for name, _ in prof.mtt_lr_img.chosen} == set(prof.data.datasets)
    # MNIST's value is the section's own: its MTT runs keep their cache keys
    assert prof.mtt_lr_img.apply(prof.mtt, "mnist") == prof.mtt


def split():
    full = toy_image_data(n_per_class=12, classes=4)
    val = full.subset_per_class(3, seed=1)
    return full.without(val).subset_per_class(6, seed=0), val


SWEEP = dict(seed=0, net_cfg=NetConfig(width=8, depth=2), aug_cfg=None,
             eval_cfg=EvalConfig(epochs=1, n_models=1), device="cpu", quiet=True)


def test_sweep_scores_every_value_on_the_validation_split_only(monkeypatch):
    real, val = split()
    calls = []

    def fake(**kw):  # records what the sweep asks the engine for; scores by step size
        calls.append(kw)
        return None, type("R", (), {"mean": kw["config"].lr_img / 100})()

    monkeypatch.setattr(experiment, "condense_and_evaluate", fake)
    results = validation_sweep("mtt", real, val, 1, MTTConfig(), (3.0, 30.0, 10.0), **SWEEP)
    assert list(results) == [3.0, 30.0, 10.0]
    assert [c["config"].lr_img for c in calls] == [3.0, 30.0, 10.0]
    assert all(c["test"] is val and c["real"] is real and c["method"] == "mtt" for c in calls)
    assert best_value({v: r.mean for v, r in results.items()}) == 30.0


@pytest.mark.parametrize("values, config, match", [
    ((), MTTConfig(), "values"), ((0.0,), MTTConfig(), "values"), ((10.0,), NetConfig(), "lr_img"),
])
def test_sweep_refuses_bad_input_before_any_run(monkeypatch, values, config, match):
    monkeypatch.setattr(experiment, "condense_and_evaluate", lambda **kw: pytest.fail("ran"))
    real, val = split()
    with pytest.raises(ValueError, match=match):
        validation_sweep("mtt", real, val, 1, config, values, **SWEEP)


def test_sweep_refuses_validation_images_that_are_training_images(monkeypatch):
    monkeypatch.setattr(experiment, "condense_and_evaluate", lambda **kw: pytest.fail("ran"))
    real, _ = split()
    with pytest.raises(ValueError, match="also training images"):
        validation_sweep("dm", real, real.subset_per_class(2, seed=0), 1, DMConfig(), (1.0,), **SWEEP)


def test_a_choice_records_what_it_was_chosen_on_and_refuses_overlap():
    from ddrepro.tuning import choose

    pick = choose("poisoning rate", {0.01: 0.0, 0.03: 0.5, 0.05: 0.5}, chosen_on="validation targets 8-15",
                  rows=[f"target:{t}" for t in range(8, 16)])
    assert pick.value == 0.03  # the first of a tie
    assert "validation targets 8-15" in pick.text() and "0.03: 0.5" in pick.text()
    pick.check_disjoint([f"target:{t}" for t in range(8)], "the evaluated targets")
    with pytest.raises(ValueError, match="chosen on 1 of the evaluated targets"):
        pick.check_disjoint(["target:0", "target:9"], "the evaluated targets")
    with pytest.raises(ValueError, match="say what the value was chosen on"):
        choose("epochs", {5: 0.1}, chosen_on=" ")


def test_row_ids_name_images_by_data_set_and_source_index():
    from helpers import toy_image_data

    from ddrepro.tuning import row_ids

    data = toy_image_data(n_per_class=2, classes=2)
    ids = row_ids(data)
    assert len(ids) == 4 and ids[0].startswith(f"{data.name}:")
