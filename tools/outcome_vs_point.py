"""Each scorecard row's outcome from its interval beside what its point alone says.

Issue 22's check of the verdict migration: the same criterion (the chapter's
``criteria.csv``) applied to the point estimate, the rule most rows had
before the migration, set beside the row's outcome from its interval, with the
units that would decide an inconclusive row. Reads an executed build's stage:

    python tools/outcome_vs_point.py _build/stage > outcomes.tsv
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

from ddrepro.scorecard import SUFFIX, criteria_table

JUDGED = ("reproduced", "not reproduced", "inconclusive")


def point_alone(criterion, point: float) -> str:
    """The criterion applied to ``point`` as if it were an interval of width zero."""
    c, ok = criterion, None
    if c.kind == "at_least":
        ok = point >= c.threshold
    elif c.kind == "at_most":
        ok = point <= c.threshold
    elif c.kind == "within":
        ok = c.low <= point <= c.high
    elif c.kind == "better":
        ok = point > c.margin
    elif c.kind == "equivalent":
        ok = abs(point - c.center) <= c.margin
    return "reproduced" if ok else "not reproduced"


def rows(stage: Path):
    for path in sorted(stage.rglob(f"*{SUFFIX}")):
        table = path.parent / "criteria.csv"
        criteria = criteria_table(table) if table.is_file() else {}
        for row in json.loads(path.read_text())["rows"]:
            key = row.get("key", "")
            # a row's key is its criterion's, or that key with a suffix (``_dc``, ``@0.01``)
            base = max((k for k in criteria if key == k or key.startswith((k + "_", k + "@"))),
                       key=len, default=None)
            point = re.match(r"\s*(-?[\d.]+(?:e-?\d+)?)", row.get("interval") or "")
            alone = (point_alone(criteria[base], float(point.group(1)))
                     if base and point and row["verdict"] in JUDGED else "")
            yield (path.name[: -len(SUFFIX)], key, row["verdict"], alone, row.get("interval", ""),
                   row.get("decide", ""), row["claim"])


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    out = csv.writer(sys.stdout, delimiter="\t")
    out.writerow(["page", "key", "outcome", "point_alone", "interval", "units_to_decide", "claim"])
    out.writerows(rows(Path(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
