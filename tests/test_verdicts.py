"""Every criterion kind can fail: synthetic estimates where the claim is false (not reproduced),
too small to tell (inconclusive) and true (reproduced); rows, sentences and criteria tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddrepro.intervals import exact_estimate, paired_estimate, proportion_estimate, unit_estimate
from ddrepro.scorecard import Row, Scorecard, collect, criteria_table
from ddrepro.verdicts import Criterion

SRC = "test"


def spread(center: float, n: int, sd: float = 1.0, seed: int = 0) -> list[float]:
    """n values with mean exactly ``center`` and sample sd exactly ``sd``."""
    x = np.random.default_rng(seed).normal(size=n)
    x = (x - x.mean()) / x.std(ddof=1)
    return list(center + sd * x)


CASES = [
    # kind and its numbers; a true estimate, a too-small one, a false one
    (Criterion("at_least", threshold=40, source=SRC), spread(60, 30, 5), spread(42, 3, 5), spread(20, 30, 5)),
    (Criterion("at_most", threshold=10, source=SRC), spread(2, 30, 2), spread(9, 3, 5), spread(30, 30, 2)),
    (Criterion("within", low=0.7, high=1.3, source=SRC), spread(1.0, 30, 0.2), spread(1.2, 3, 0.3),
     spread(2.0, 30, 0.2)),
    (Criterion("better", margin=1.0, source=SRC), spread(5, 30, 2), spread(2, 3, 2), spread(-2, 30, 2)),
    (Criterion("equivalent", margin=2.0, source=SRC), spread(0.1, 30, 1), spread(0.5, 3, 2), spread(6, 30, 1)),
]


@pytest.mark.parametrize("criterion, true_values, small_values, false_values", CASES,
                         ids=[c[0].kind for c in CASES])
def test_each_kind_reproduces_fails_and_says_when_it_cannot_tell(criterion, true_values, small_values,
                                                                 false_values):
    est = lambda v: unit_estimate(v, unit="seeds")
    assert criterion.judge(est(true_values)) == "reproduced"
    assert criterion.judge(est(small_values)) == "inconclusive"
    assert criterion.judge(est(false_values)) == "not reproduced"
    # an inconclusive row says how many units would decide it, more than it had
    assert criterion.units_to_decide(est(small_values)) > 3


def test_a_point_alone_never_decides_one_unit_is_inconclusive():
    lone = unit_estimate([99.0], unit="seeds")
    assert Criterion("at_least", threshold=40, source=SRC).judge(lone) == "inconclusive"
    assert Criterion("equivalent", margin=1, source=SRC).judge(unit_estimate([0.0], unit="seeds")) == "inconclusive"


def test_equivalence_reads_the_90_percent_interval_and_needs_a_margin():
    values = spread(0.0, 12, 1.0)
    crit = Criterion("equivalent", margin=0.55, source=SRC)
    e95 = unit_estimate(values, unit="targets")
    assert e95.high > 0.55 > e95.at(0.90).high  # the TOST reads the narrower 90 % interval
    assert crit.judge(e95) == "reproduced"
    with pytest.raises(ValueError, match="needs a margin"):
        Criterion("equivalent", source=SRC)
    with pytest.raises(ValueError, match="source is empty"):
        Criterion("at_least", threshold=1)
    with pytest.raises(ValueError, match="kind"):
        Criterion("bigger", threshold=1, source=SRC)


def test_better_is_a_paired_difference_and_a_tiny_gain_below_the_margin_refutes_it():
    a = spread(80.0, 25, 1.0, seed=1)
    b = [x - 0.2 for x in a]  # a consistent 0.2-point gain
    diff = paired_estimate(a, b, unit="seeds")
    assert Criterion("better", margin=0.0, source=SRC).judge(diff) == "reproduced"
    assert Criterion("better", margin=1.0, source=SRC).judge(diff) == "not reproduced"


def test_proportions_and_exact_quantities():
    # 0 of 8 against "at most 1 in 8" is no evidence: Clopper-Pearson reaches 37 %
    stop = Criterion("at_most", threshold=0.125, source=SRC)
    assert stop.judge(proportion_estimate(0, 8, unit="targets")) == "inconclusive"
    assert stop.judge(proportion_estimate(0, 60, unit="targets")) == "reproduced"
    assert stop.judge(proportion_estimate(40, 60, unit="targets")) == "not reproduced"
    assert Criterion("at_most", threshold=1e-6, source=SRC).judge(exact_estimate(0.0)) == "reproduced"


def test_a_scorecard_row_shows_interval_power_and_the_sentence_follows_the_outcome(tmp_path):
    card = Scorecard("9 Test", "smoke")
    crit = Criterion("at_least", threshold=40, unit="targets", source="the paper's 'over 40 %'")
    row = card.judge("DM poisoning succeeds", "100", unit_estimate(spread(42, 3, 5), unit="targets"),
                     crit, key="asr_dm")
    assert row.verdict == "inconclusive" and "[" in row.interval and float(row.detectable) > 0
    assert "targets would decide it" in row.sentence() and card.row("asr_dm") is row
    assert "| interval | detectable |" in card.to_markdown()
    path = card.save(tmp_path / "x.scorecard.json")
    # change the saved outcome: the rendered sentence changes with it
    data = json.loads(path.read_text())
    data["rows"][0]["verdict"] = "not reproduced"
    path.write_text(json.dumps(data))
    frame = collect(tmp_path)
    changed = Row(**{k: frame.iloc[0][k] for k in Row.__dataclass_fields__ if k in frame.columns})
    assert changed.sentence() != row.sentence() and "does not hold" in changed.sentence()
    assert frame.iloc[0]["page"] == "x"
    # the book's table shows the short criterion, its source on hover, and links the page
    from ddrepro.scorecard import frame_html

    table = frame_html(frame, here=".")
    import html

    assert 'href="x.html"' in table and f'title="{html.escape(row.criterion)}"' in table
    assert f">{html.escape(row.rule)}</span>" in table


def test_criteria_table_reads_a_chapter_csv(tmp_path):
    (tmp_path / "criteria.csv").write_text(
        "key,claim,kind,threshold,low,high,margin,center,unit,source\n"
        "asr,attack works,at_least,40,,,,,targets,paper: over 40 %\n"
        "leak,no leakage,equivalent,,,,0.02,0.5,target models,paper: AUC < 0.51 (argued margin)\n")
    table = criteria_table(tmp_path / "criteria.csv")
    assert table["asr"].threshold == 40 and table["leak"].center == 0.5 and table["leak"].margin == 0.02
    assert "0.5 within +-0.02" in table["leak"].text()


def test_proportions_recompute_at_90_percent_and_search_the_trials_that_decide():
    est = proportion_estimate(0, 8, unit="targets")
    assert est.at(0.90).high < est.high and est.at(0.90).counts == (0, 8)
    stops = Criterion("equivalent", margin=0.2, source=SRC)
    assert stops.judge(est) == "inconclusive"
    needed = stops.units_to_decide(est)
    assert stops.judge(proportion_estimate(0, needed, unit="targets")) == "reproduced"
    assert stops.judge(proportion_estimate(0, needed - 1, unit="targets")) == "inconclusive"


def test_the_sentence_uses_the_short_criterion():
    card = Scorecard("9 Test", "smoke")
    crit = Criterion("at_least", threshold=40, unit="targets", source="a very long source " * 5)
    row = card.judge("claim", "100", unit_estimate(spread(60, 30, 5), unit="targets"), crit)
    assert "a very long source" in row.criterion and "a very long source" not in row.sentence()
