"""The reproduction scorecard: one row per claim a chapter checks.

A chapter builds a :class:`Scorecard` and judges every claim of its paper with
:meth:`Scorecard.judge`: what the paper reports, what we measured as an
:class:`~ddrepro.intervals.Estimate` (a point and its interval over the
independent unit), and a :class:`~ddrepro.verdicts.Criterion` (from the
chapter's ``criteria.csv``) that turns the interval into one of five outcomes.
It shows the table and saves it as JSON beside its executed copy. The book's scorecard page gathers every chapter's JSON with
:func:`collect`, so no number on that page is typed by hand.

Where the JSON goes: ``save(path)``, else ``$DDREPRO_SCORECARD`` (set by the
runner, see :mod:`ddrepro.runner`), else nowhere (an interactive session).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .artifacts import atomic_write_bytes
from .intervals import Estimate
from .verdicts import OUTCOMES, Criterion, criterion_from_row

ENV_PATH = "DDREPRO_SCORECARD"
SUFFIX = ".scorecard.json"
COLUMNS = ("chapter", "claim", "paper", "ours", "interval", "detectable", "criterion", "verdict",
           "profile", "note")
# what collect() keeps per row: the table's columns, the page it came from, and what a sentence needs
COLLECTED = (*COLUMNS, "page", "rule", "key", "decide")


VERDICTS = OUTCOMES  # reproduced, not reproduced, inconclusive, not checked, not run



@dataclass(frozen=True)
class Row:
    """One claim: the paper's number, ours (the point), its interval and the smallest difference
    the run could detect, the criterion, the outcome; ``key`` names the criterion's row in the
    chapter's ``criteria.csv``, ``decide`` how many units would decide an inconclusive row."""

    claim: str
    paper: str
    ours: str
    criterion: str
    verdict: str
    note: str = ""
    interval: str = "-"
    detectable: str = "-"
    key: str = ""
    decide: str = ""
    rule: str = ""

    def sentence(self) -> str:
        """The finding as a sentence, glued from the row (never typed): what a page says."""
        said = {"reproduced": "holds", "not reproduced": "does not hold",
                "inconclusive": "is undecided", "not checked": "is not tested at this profile",
                "not run": "was not run"}[self.verdict]
        text = f"{self.claim}: {said}"
        if self.verdict not in ("not run",):
            text += f" (ours {self.interval if self.interval != '-' else self.ours}; paper {self.paper}"
            text += f"; criterion {self.rule or self.criterion})"
        if self.verdict == "inconclusive" and self.decide:
            text += f"; about {self.decide} would decide it"
        if self.note:
            text += f"; {self.note}"
        return text + "."


def _text(value: Any) -> str:
    """Numbers become text here so the table shows exactly what the chapter chose to print."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_label(profile: str, overrides: dict[str, Any]) -> str:
    """``cpu``, or ``cpu + dm.steps=5, ipcs=[1]`` for a run with overrides (not plain ``cpu``)."""
    if not overrides:
        return profile
    return profile + " + " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


class Scorecard:
    """Rows ``(claim, paper, ours, criterion, verdict)`` of one chapter run at one profile.

    ``overrides``: the run's dotted profile overrides; a ``-p dm.steps 5`` run
    is not a plain ``cpu`` run, and its scorecard says so.
    """

    def __init__(self, chapter: str, profile: str, overrides: dict[str, Any] | None = None) -> None:
        if not str(chapter).strip():
            raise ValueError("Scorecard chapter is empty; pass the chapter's title, e.g. '2 Privacy'.")
        self.chapter = str(chapter)
        self.profile = str(getattr(profile, "name", profile))
        self.overrides = dict(overrides or {})
        self.rows: list[Row] = []

    @property
    def label(self) -> str:
        return run_label(self.profile, self.overrides)

    def judge(self, claim: str, paper: Any, estimate: Estimate, criterion: Criterion, *,
              key: str = "", note: str = "", checked: bool = True) -> Row:
        """Judge one claim from ``estimate``'s interval by ``criterion`` (:mod:`ddrepro.verdicts`).

        ``checked=False`` records the measurement as "not checked" (the profile cannot test
        the claim, e.g. a paper-scale number at ``cpu``).
        """
        if not str(claim).strip():
            raise ValueError("Scorecard.judge: claim is empty; say which claim the row checks.")
        if not isinstance(estimate, Estimate) or not isinstance(criterion, Criterion):
            raise ValueError("Scorecard.judge takes an intervals.Estimate and a verdicts.Criterion.")
        outcome = criterion.judge(estimate) if checked else "not checked"
        shown = criterion.interval_for(estimate)
        decide = criterion.units_to_decide(estimate) if outcome == "inconclusive" else None
        exact = estimate.method.startswith("exact")
        row = Row(str(claim), _text(paper), _text(estimate.point), criterion.text(), outcome,
                  str(note), interval=shown.text(), key=str(key),
                  detectable="-" if exact else _text(shown.detectable),
                  decide=f"{decide} {estimate.unit}" if decide else "", rule=criterion.text(source=False))
        return self._add(row)

    def _add(self, row: Row) -> Row:
        """Append ``row``; one row per claim and key (a loop over seeds must not repeat a cell's row)."""
        if any((r.claim, r.key) == (row.claim, row.key) for r in self.rows):
            raise ValueError(f"Scorecard: the claim {row.claim!r} (key {row.key!r}) already has a row; "
                             "judge each claim once (from an estimate over its units, not once per unit).")
        self.rows.append(row)
        return row

    def row(self, key: str) -> Row:
        """The row judged under criterion ``key`` (for a sentence on the page: ``card.row(k).sentence()``)."""
        hits = [r for r in self.rows if r.key == key]
        if len(hits) != 1:
            raise LookupError(f"{len(hits)} rows carry criterion key {key!r}.")
        return hits[0]

    def not_run(self, claim: str, paper: Any, criterion: str | Criterion, reason: str, *,
                key: str = "") -> Row:
        """Record a claim this run could not attempt, and why (data absent, GPU needed, ...)."""
        if not str(reason).strip():
            raise ValueError("Scorecard.not_run: give the reason the claim was not run.")
        text = criterion.text() if isinstance(criterion, Criterion) else str(criterion)
        row = Row(str(claim), _text(paper), "-", text, "not run", str(reason), key=str(key))
        return self._add(row)

    def to_frame(self) -> pd.DataFrame:
        records = [{"chapter": self.chapter, **asdict(r), "profile": self.label} for r in self.rows]
        return pd.DataFrame.from_records(records, columns=list(COLUMNS))

    def to_markdown(self) -> str:
        """A pipe table (claim, paper, ours, interval, detectable, criterion, verdict); notes
        follow the verdict. The criterion is its short form: its source is in the chapter's
        ``criteria.csv``, which the index page shows."""
        head = ("| claim | paper | ours | interval | detectable | criterion | verdict |\n"
                "| --- | --- | --- | --- | --- | --- | --- |\n")
        body = "".join(
            f"| {_cell(r.claim)} | {_cell(r.paper)} | {_cell(r.ours)} | {_cell(r.interval)} | "
            f"{_cell(r.detectable)} | {_cell(r.rule or r.criterion)} | "
            f"{_cell(r.verdict + (f' ({r.note})' if r.note else ''))} |\n"
            for r in self.rows
        )
        return f"Scorecard, {self.chapter} (profile `{self.label}`)\n\n" + head + body

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def show(self) -> "Scorecard":
        """Display the table in a notebook (returns self, so it can end a cell)."""
        from IPython.display import Markdown, display

        display(Markdown(self.to_markdown()))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "profile": self.profile, "overrides": self.overrides,
                "rows": [asdict(r) for r in self.rows]}

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the rows as JSON (atomically); returns the path, or None when nowhere is set."""
        target = path if path is not None else os.environ.get(ENV_PATH)
        if not target:
            return None
        target = Path(target)
        atomic_write_bytes(target, json.dumps(self.to_json(), indent=1).encode())
        return target


def paper_table(path: str | Path = "paper.csv") -> pd.DataFrame:
    """A chapter's ``paper.csv`` (docs/paper_tables.md): every number of its papers, one per row."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no paper table at {str(path)!r}; run the chapter from its own folder "
                         "(JupyterLab and `ddrepro run` both do).")
    return pd.read_csv(path)


def paper_row(frame: pd.DataFrame, /, **key: Any) -> pd.Series:
    """The one row of ``frame`` whose columns equal ``key`` (``LookupError`` unless exactly one)."""
    unknown = sorted(set(key) - set(frame.columns))
    if unknown:
        raise ValueError(f"paper table has no column {', '.join(unknown)}; it has {', '.join(frame.columns)}.")
    hit = frame
    for column, want in key.items():
        hit = hit[hit[column] == want]
    if len(hit) != 1:
        raise LookupError(f"{len(hit)} rows of the paper table match {key}; add a column to the key.")
    return hit.iloc[0]


def criteria_table(path: str | Path = "criteria.csv") -> dict[str, Criterion]:
    """A chapter's ``criteria.csv``: ``key -> Criterion`` (columns ``key, claim, kind, threshold,
    low, high, margin, center, unit, source``). Notebook, scorecard and index page all read it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no criteria table at {str(path)!r}; run the chapter from its own folder.")
    frame = pd.read_csv(path, dtype={"key": str})
    if frame["key"].duplicated().any():
        raise ValueError(f"{path}: duplicate criterion keys {sorted(frame.key[frame.key.duplicated()])}.")
    return {row["key"]: criterion_from_row(row) for row in frame.to_dict("records")}


def criteria_claims(path: str | Path = "criteria.csv") -> dict[str, str]:
    """A chapter's ``criteria.csv`` as ``key -> claim`` (what each criterion tests, in words)."""
    keys = criteria_table(path)  # validates the file
    claims = pd.read_csv(path, dtype={"key": str}).set_index("key")["claim"].to_dict()
    return {key: str(claims[key]) for key in keys}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def collect(build_dir: str | Path) -> pd.DataFrame:
    """Every ``*.scorecard.json`` under ``build_dir``, ordered by chapter title (titles are numbered)."""
    root = Path(build_dir)
    if not root.is_dir():
        raise ValueError(f"scorecard.collect: {str(root)!r} is not a directory; pass the build stage dir.")
    frames = []
    for path in sorted(root.rglob(f"*{SUFFIX}")):
        data = json.loads(path.read_text())
        label = run_label(data["profile"], data.get("overrides", {}))
        records = [{"chapter": data["chapter"], **Row(**row).__dict__, "profile": label,
                    "page": str(path.relative_to(root))[: -len(SUFFIX)]}
                   for row in data.get("rows", [])]
        frames.append(pd.DataFrame.from_records(records, columns=list(COLLECTED)))
    if not frames:
        return empty_frame()
    # Chapter titles start with their number ("1 Basics", "1 Basics: budget study", "2 Privacy"):
    # ordering by title follows the book, whatever the file names.
    return pd.concat(frames, ignore_index=True).sort_values("chapter", kind="stable",
                                                            ignore_index=True)


def chapter_rows(frame: pd.DataFrame, folder: str) -> pd.DataFrame:
    """The collected rows of the pages under ``folder`` (e.g. ``"book/03_poisoning"``)."""
    prefix = folder.rstrip("/") + "/"
    return frame[frame["page"].astype(str).str.startswith(prefix)]


def criterion_key(row_key: str, criteria: Sequence[str]) -> str | None:
    """The criterion a row was judged by: the longest of ``criteria`` that is the row's key or
    its stem (a criterion judged at several settings names its rows ``key_setting`` or
    ``key@setting``; ``fig7_convnet_slow`` is its own criterion, not a setting of ``fig7_convnet``)."""
    found = [k for k in criteria if row_key == k or row_key.startswith((k + "_", k + "@"))]
    return max(found, key=len) if found else None


def found_sentence(frame: pd.DataFrame, headline: Sequence[str] = (),
                   criteria: Mapping[str, str] | None = None) -> str:
    """What a chapter found, glued from its collected rows: the count per outcome at each profile
    that ran, then the sentence of each ``headline`` criterion's row, or its outcomes when it was
    judged at several settings (``criteria``: the chapter's :func:`criteria_claims`, so that a
    row goes to the right criterion and a criterion is named by its claim; default: the headline
    keys, named by their first row's claim)."""
    if frame.empty:
        return ("No page of this chapter has recorded scorecard rows in this build yet: run the "
                "chapter (`ddrepro book` runs every page), and this sentence reports what it found.")
    parts = []
    for profile, group in frame.groupby("profile", sort=False):
        counts = [f"{n} {v}" for v in VERDICTS if (n := int((group["verdict"] == v).sum()))]
        pages = group["page"].nunique()
        parts.append(f"at {profile} ({pages} page{'s' if pages > 1 else ''}), {len(group)} claims: "
                     + ", ".join(counts))
    text = "Measured " + "; ".join(parts) + "."
    names = [f.name for f in fields(Row)]
    owner = frame["key"].astype(str).map(lambda k: criterion_key(k, list(criteria or headline)))
    claims = dict(criteria or {})
    for key in headline:
        match = frame[owner == key]
        if len(match) == 1:
            text += " " + Row(**{name: match.iloc[0][name] for name in names}).sentence()
        elif len(match) > 1:
            counts = [f"{n} {v}" for v in VERDICTS if (n := int((match["verdict"] == v).sum()))]
            name = claims.get(key) or str(match.iloc[0]["claim"])
            name = re.sub(r"\s*\([^()]*\)$", "", name)  # its unit in brackets, not its words
            text += f" {name}, at {len(match)} settings: " + ", ".join(counts) + "."
    return text


def empty_frame() -> pd.DataFrame:
    """The scorecard table with no rows (nothing executed yet)."""
    return pd.DataFrame(columns=list(COLLECTED))


def summary_markdown(frame: pd.DataFrame) -> str:
    """Per chapter: how many claims came out in each of the five outcomes."""
    verdicts = VERDICTS
    lines = ["| chapter | profile | " + " | ".join(verdicts) + " |", "|" + " --- |" * (2 + len(verdicts))]
    for (chapter, profile), group in frame.groupby(["chapter", "profile"], sort=False):
        counts = [str(int((group["verdict"] == v).sum())) for v in verdicts]
        lines.append(f"| {_cell(str(chapter))} | {profile} | " + " | ".join(counts) + " |")
    return "\n".join(lines) + "\n"


def outcome_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per (chapter, outcome): one row per chapter, one column per outcome (all five)."""
    if frame.empty:
        return pd.DataFrame(columns=list(VERDICTS))
    counts = frame.groupby(["chapter", "verdict"]).size().unstack(fill_value=0)
    return counts.reindex(columns=list(VERDICTS), fill_value=0)


def frame_html(frame: pd.DataFrame, here: str = "book") -> str:
    """The rows as an HTML table a reader can sort and filter (``book/_static/ddrepro_tables.js``),
    each claim linking to the page that produced it (``here``: the linking page's folder)."""
    import html
    import posixpath

    cols = ["chapter", "claim", "paper", "ours", "interval", "detectable", "criterion", "verdict", "profile"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    lines = []
    for rec in frame.to_dict("records"):
        cells = []
        for c in cols:
            text = html.escape(str(rec.get(c, "")))
            if c == "verdict" and rec.get("note"):
                text += f" <small>({html.escape(str(rec['note']))})</small>"
            if c == "claim" and rec.get("page"):
                href = posixpath.relpath(str(rec["page"]), here) + ".html"
                text = f'<a href="{html.escape(href)}">{text}</a>'
            if c == "criterion" and rec.get("rule"):  # the short form; the source on hover
                text = f'<span title="{html.escape(str(rec["criterion"]))}">{html.escape(str(rec["rule"]))}</span>'
            cells.append(f"<td>{text}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div style="overflow-x: auto"><table class="ddrepro-sortable table"><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(lines)}</tbody></table></div>")


__all__ = [
    "chapter_rows", "criteria_claims", "criterion_key", "found_sentence", "outcome_counts", "frame_html",
    "Scorecard", "Row", "VERDICTS", "collect", "criteria_table", "empty_frame", "paper_row",
    "paper_table", "run_label",
    "summary_markdown", "ENV_PATH", "SUFFIX",
]
