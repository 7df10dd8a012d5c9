"""Profiles: one place defines them; overrides are validated before any compute."""

import dataclasses

import pytest

import ddrepro
from ddrepro.config import DMConfig, EvalConfig, GMConfig, replace_checked
from ddrepro.profiles import PROFILES, get_profile


def test_three_profiles_exist_and_paper_uses_the_papers_defaults():
    assert set(PROFILES) == {"smoke", "cpu", "paper"}
    paper = get_profile("paper")
    assert paper.dm == DMConfig() and paper.dm.steps == 20_000 and paper.dm.batch_real == 256
    assert paper.eval.epochs == 1000 and paper.eval.lr == 0.01
    assert paper.net.width == 128 and paper.net.depth == 3
    assert paper.ipcs == (1, 10, 50)
    assert paper.dsa.dsa and not paper.dc.dsa


def test_profiles_shrink_from_paper_to_smoke():
    smoke, cpu, paper = (get_profile(n) for n in ("smoke", "cpu", "paper"))
    assert smoke.dm.steps < cpu.dm.steps < paper.dm.steps
    assert smoke.eval.epochs < cpu.eval.epochs < paper.eval.epochs


def test_dotted_overrides_apply_and_coerce_strings():
    prof = get_profile("cpu", {"dm.steps": "12", "eval.augment": "dc", "ipcs": [1], "kip.lr_img": "0.5"})
    assert prof.dm.steps == 12 and prof.eval.augment == "dc" and prof.ipcs == (1,) and prof.kip.lr_img == 0.5
    # untouched sections are the profile's own
    assert prof.dc == get_profile("cpu").dc


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("laptop", {}, "Unknown profile 'laptop'"),
        ("cpu", {"dm.stepz": 3}, "Unknown profile field 'dm.stepz'"),
        ("cpu", {"colour": 3}, "Unknown profile field 'colour'"),
        ("cpu", {"dm.steps": 0}, "DMConfig.steps = 0 is invalid"),
        ("cpu", {"dm.steps": "1.5"}, "expects an integer"),
        ("cpu", {"eval.momentum": 1.5}, "EvalConfig.momentum = 1.5"),
        ("cpu", {"ipcs": [0, 1]}, "every ipc must be >= 1"),
        ("cpu", {"methods": ["dm", "gan"]}, "unknown method"),
        ("cpu", {"eval.augment": "maybe"}, "EvalConfig.augment = 'maybe'"),
        ("cpu", {"eval.augment": True}, "expects a string"),
        ("cpu", {"eval.dsa": "false"}, "Unknown profile field 'eval.dsa'"),
        ("cpu", {"aug.crop": 1.5}, "AugConfig.crop = 1.5"),
    ],
)
def test_bad_profile_input_is_a_clear_error(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_profile(name, overrides)


def test_configs_are_frozen_and_replace_names_valid_fields():
    cfg = EvalConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="valid fields"):
        replace_checked(GMConfig(), lr=1.0)
    assert replace_checked(GMConfig(), lr_img=1.0).lr_img == 1.0


def test_condenser_config_lookup():
    prof = ddrepro.get_profile("smoke")
    assert prof.condenser_config("dm") is prof.dm
    assert prof.condenser_config("random") is None
    with pytest.raises(ValueError, match="Unknown condenser 'gan'"):
        prof.condenser_config("gan")


def test_study_sections_take_dotted_overrides_and_validate():
    prof = get_profile("cpu", {"privacy.shadows": "32", "poison.eps": [0.1], "bias.ratios": [0, 80, 95, 100],
                               "ead.t_m": 5, "effects.pairs": 20})
    assert prof.privacy.shadows == 32 and prof.poison.eps == (0.1,)
    assert prof.bias.ratios == (0.0, 80.0, 95.0, 100.0) and prof.ead.t_m == 5
    assert prof.effects.pairs == 20
    # a float | str field: a number where the string is one, else the string
    assert get_profile("cpu", {"bias.debias_bandwidth": "0.1"}).bias.debias_bandwidth == 0.1
    assert get_profile("cpu", {"bias.debias_bandwidth": "cv"}).bias.debias_bandwidth == "cv"
    for bad, match in [({"privacy.shadows": 1}, "shadows"), ({"privacy.fprs": [1.5]}, "fprs"),
                       ({"poison.eps": [0.0]}, "eps"), ({"poison.rate": 0.5}, "rate"),
                       ({"bias.ratios": [101]}, "ratios"), ({"bias.severity": 5}, "severity"),
                       ({"ead.t_m": 0}, "t_m"), ({"bias.debias_bandwidth": "wide"}, "bandwidth")]:
        with pytest.raises(ValueError, match=match):
            get_profile("cpu", bad)


def test_r_ipc_below_one_image_per_class_is_refused():
    privacy = get_profile("cpu").privacy
    assert privacy.ipc_for(0.002, 500) == 1 and privacy.ipc_for(0.01, 500) == 5
    with pytest.raises(ValueError, match="< 1 image per class"):
        privacy.ipc_for(0.002, 200)


def test_methods_come_from_the_condenser_registry():
    from ddrepro.condense import CONDENSERS, register

    with pytest.raises(ValueError, match="known: .*dm"):
        get_profile("cpu", {"methods": ["dm", "no-such-method"]})

    @register("test-only-method", None, replace=True)
    def run(ctx, syn_images, syn_labels):
        return syn_images, syn_labels

    try:
        prof = get_profile("cpu", {"methods": ["dm", "test-only-method"]})
        assert prof.condenser_config("test-only-method") is None
        assert prof.condenser_config("dm") is prof.dm          # the profile's section wins
    finally:
        CONDENSERS._items.pop("test-only-method")


def test_a_section_checks_its_fields_against_each_other_before_any_compute():
    # -p bias.ratios [1.5] alone once ran 47 s and failed with KeyError 'dm/r0/s4' in a cell
    with pytest.raises(ValueError, match=r"dsa_ratios .* subset of ratios \(1.5,\)"):
        get_profile("cpu", {"bias.ratios": [1.5]})
    prof = get_profile("cpu", {"bias.ratios": [1.5], "bias.dsa_ratios": [], "bias.full_ratios": [1.5],
                               "bias.debias_ratios": [1.5]})
    assert prof.bias.ratios == (1.5,)


def test_study_sections_are_registered_by_their_packages_not_the_engine():
    from ddrepro.profiles import SECTIONS, section_names

    owners = {name: SECTIONS.get(name).owner for name in SECTIONS.names()}
    assert owners["poison"] == "ddrepro.poisoning.profile"
    assert owners["privacy"] == "ddrepro.privacy.profile" and owners["bias"] == "ddrepro.bias.profile"
    assert {"toy", "budget", "effects", "mtt_lr_img", "critique", "generators"} <= set(owners)
    assert {"dm", "ead", "mtt"} <= set(section_names()) and "sections" not in section_names()
    # a section reads like an engine field, and an unknown one says which exist
    assert get_profile("smoke").poison.rate == 0.01
    with pytest.raises(AttributeError, match="no section 'poisson'.*poison"):
        get_profile("smoke").poisson
    with pytest.raises(ValueError, match="is a section"):
        get_profile("smoke", {"poison": 3})


def test_register_section_refuses_engine_names_and_wrong_values():
    from dataclasses import dataclass

    from ddrepro.profiles import register_section

    @dataclass(frozen=True)
    class Tiny:
        n: int = 1

    with pytest.raises(ValueError, match="engine field"):
        register_section("dm", Tiny, smoke=Tiny(), cpu=Tiny())
    with pytest.raises(ValueError, match="the cpu value is a int"):
        register_section("tiny_test_section", Tiny, smoke=Tiny(), cpu=3)
