"""Scorecard rows: verdicts judged from an interval only, JSON round trip, collection for the book."""

from __future__ import annotations

import pytest

from ddrepro import scorecard
from ddrepro.intervals import exact_estimate, unit_estimate
from ddrepro.scorecard import Scorecard
from ddrepro.verdicts import Criterion

NEAR = Criterion("within", low=0.45, high=0.55, source="test")
HIGH = Criterion("at_least", threshold=0, source="test")


def _judge(card, claim, values, criterion=HIGH, **kw):
    return card.judge(claim, 1, unit_estimate(values, unit="seeds"), criterion, **kw)


def test_outcomes_follow_the_interval_and_a_point_cannot_be_scored():
    card = Scorecard("2 Privacy", "smoke")
    card.judge("claim a", 0.5, exact_estimate(0.49), NEAR)
    _judge(card, "claim b", [-3.0, -2.9, -3.1], note="tiny run")
    _judge(card, "claim c", [1.0, 2.0], checked=False)
    _judge(card, "claim d", [-1.0, 2.0])
    assert list(card.to_frame()["verdict"]) == ["reproduced", "not reproduced", "not checked", "inconclusive"]
    assert list(card.to_frame()["ours"]) == ["0.49", "-3", "1.5", "0.5"]
    assert not hasattr(card, "add")  # no row is judged from a point and a boolean
    with pytest.raises(ValueError, match="Estimate"):
        card.judge("e", 1, 0.5, NEAR)


def test_markdown_table_has_a_row_per_claim_and_escapes_pipes():
    card = Scorecard("3 Poisoning", "cpu")
    card.judge("ASR | RDM-DC", "0 %", exact_estimate(0.0), Criterion("at_most", threshold=0.04, source="t"))
    text = card._repr_markdown_()
    assert text.count("\n| ") == 3  # header, separator, one row
    assert "ASR \\| RDM-DC" in text


def test_save_uses_env_path_and_collect_reads_all(tmp_path, monkeypatch):
    first = Scorecard("2 Privacy", "smoke")
    _judge(first, "a", [1.0, 1.1, 0.9])
    assert first.save(tmp_path / "02" / "ch.scorecard.json").is_file()
    monkeypatch.setenv(scorecard.ENV_PATH, str(tmp_path / "03" / "ch.scorecard.json"))
    second = Scorecard("3 Poisoning", "smoke")
    _judge(second, "b", [-1.0, -1.1, -0.9])
    _judge(second, "c", [1.0, 2.0], checked=False)
    assert second.save() == tmp_path / "03" / "ch.scorecard.json"
    table = scorecard.collect(tmp_path)
    assert list(table["chapter"]) == ["2 Privacy", "3 Poisoning", "3 Poisoning"]
    assert list(table["verdict"]) == ["reproduced", "not reproduced", "not checked"]
    summary = scorecard.summary_markdown(table)
    assert "| 3 Poisoning | smoke | 0 | 1 | 0 | 1 | 0 |" in summary


def test_save_without_a_destination_writes_nothing(monkeypatch):
    monkeypatch.delenv(scorecard.ENV_PATH, raising=False)
    assert Scorecard("x", "cpu").save() is None


def test_collect_rejects_a_missing_dir(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        scorecard.collect(tmp_path / "nope")


def test_a_run_with_overrides_says_so_everywhere(tmp_path):
    card = Scorecard("1 Basics", "cpu", overrides={"dm.steps": 5, "ipcs": [1]})
    _judge(card, "a", [1.0, 1.1, 0.9])
    assert "profile `cpu + dm.steps=5, ipcs=[1]`" in card.to_markdown()
    card.save(tmp_path / "c.scorecard.json")
    assert list(scorecard.collect(tmp_path)["profile"]) == ["cpu + dm.steps=5, ipcs=[1]"]
    plain = Scorecard("1 Basics", "cpu")
    assert "profile `cpu`)" in plain.to_markdown()


def test_a_claim_gets_one_row_not_one_per_unit():
    # a page looping over per-seed results must judge a cell once, from its estimate over seeds
    card = Scorecard("4 Bias", "cpu")
    _judge(card, "DM at 95 %", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="already has a row"):
        _judge(card, "DM at 95 %", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="already has a row"):
        card.not_run("DM at 95 %", 1, "-", "again")
    assert len(card.rows) == 1


def test_not_run_rows_carry_their_reason():
    card = Scorecard("1 Basics", "cpu")
    card.not_run("CIFAR-10 ipc 1", 26.0, "within 2 points", "CIFAR-10 is not under the data root")
    row = card.to_frame().iloc[0]
    assert row["verdict"] == "not run" and row["ours"] == "-"
    assert "not run (CIFAR-10 is not under the data root)" in card.to_markdown()
    with pytest.raises(ValueError, match="reason"):
        card.not_run("x", 1, "-", " ")
    assert "| 1 Basics | cpu | 0 | 0 | 0 | 0 | 1 |" in scorecard.summary_markdown(card.to_frame())


def test_paper_rows_are_found_by_key_and_must_be_unique(tmp_path):
    (tmp_path / "paper.csv").write_text("table,method,ipc,value\nTable 1,dm,1,89.7\nTable 1,dm,10,97.5\n"
                                        "Table 2,dm,1,88.0\n")
    table = scorecard.paper_table(tmp_path / "paper.csv")
    assert scorecard.paper_row(table, table="Table 1", method="dm", ipc=10).value == 97.5
    with pytest.raises(LookupError, match="2 rows"):
        scorecard.paper_row(table, method="dm", ipc=1)
    with pytest.raises(ValueError, match="no column seed"):
        scorecard.paper_row(table, seed=0)
    with pytest.raises(ValueError, match="no paper table"):
        scorecard.paper_table(tmp_path / "missing.csv")


def test_the_index_sentence_is_glued_from_the_chapters_rows_and_follows_an_outcome(tmp_path):
    card = Scorecard("3 Poisoning", "cpu")
    _judge(card, "Attack works", [1.0, 1.1, 0.9], key="works")
    _judge(card, "Defence helps", [0.5, 0.6, 0.4], key="helps@0.01")
    _judge(card, "Defence helps", [-1.0, 2.0], key="helps@0.02")
    card.save(tmp_path / "book" / "03_poisoning" / "page.scorecard.json")
    other = Scorecard("4 Bias", "cpu")
    _judge(other, "Elsewhere", [1.0, 1.2], key="works")
    other.save(tmp_path / "book" / "04_bias" / "page.scorecard.json")
    rows = scorecard.chapter_rows(scorecard.collect(tmp_path), "book/03_poisoning")
    assert len(rows) == 3
    text = scorecard.found_sentence(rows, ["works", "helps", "absent"])
    assert text.startswith("Measured at cpu (1 page), 3 claims: 2 reproduced, 1 inconclusive.")
    assert "Attack works: holds" in text
    assert "Defence helps, at 2 settings: 1 reproduced, 1 inconclusive." in text
    # the same chapter with the attack's row failing: the sentence says so
    flipped = Scorecard("3 Poisoning", "cpu")
    _judge(flipped, "Attack works", [-1.0, -1.1, -0.9], key="works")
    flipped.save(tmp_path / "book" / "03_poisoning" / "page.scorecard.json")
    text = scorecard.found_sentence(scorecard.chapter_rows(scorecard.collect(tmp_path), "book/03_poisoning"),
                                    ["works"])
    assert "1 not reproduced" in text and "Attack works: does not hold" in text
    assert "nothing" not in text
    assert "has recorded" in scorecard.found_sentence(scorecard.empty_frame(), ["works"])


def test_a_row_belongs_to_the_longest_criterion_its_key_names():
    criteria = ["fig7_convnet", "fig7_convnet_slow", "above_dm"]
    assert scorecard.criterion_key("fig7_convnet_slow", criteria) == "fig7_convnet_slow"
    assert scorecard.criterion_key("fig7_convnet_slow_x", criteria) == "fig7_convnet_slow"
    assert scorecard.criterion_key("fig7_convnet@2", criteria) == "fig7_convnet"
    assert scorecard.criterion_key("above_dm_mnist_ipc1", criteria) == "above_dm"
    assert scorecard.criterion_key("above_dmx", criteria) is None
    card = Scorecard("1 Basics", "cpu")
    _judge(card, "Wide", [1.0, 1.1, 0.9], key="fig7_convnet_a")
    _judge(card, "Slow", [-1.0, -1.1, -0.9], key="fig7_convnet_slow")
    frame = card.to_frame().assign(key=[r.key for r in card.rows], page="book/x/p", decide="", rule="")
    claims = {key: f"claim of {key} (points)" for key in criteria}
    text = scorecard.found_sentence(frame, ["fig7_convnet"], claims)
    assert "Wide: holds" in text and "Slow" not in text
    _judge(card, "Wide, mnist", [1.0, 1.2, 0.8], key="fig7_convnet_b")
    frame = card.to_frame().assign(key=[r.key for r in card.rows], page="book/x/p", decide="", rule="")
    text = scorecard.found_sentence(frame, ["fig7_convnet"], claims)
    assert "claim of fig7_convnet, at 2 settings: 2 reproduced." in text
