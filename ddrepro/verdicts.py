"""Verdicts that can fail: typed criteria judged from an interval, never from a point.

A scorecard row (:class:`ddrepro.scorecard.Scorecard`) pairs a claim with a
:class:`Criterion` and an :class:`~ddrepro.intervals.Estimate` (a point and its
interval over what was repeated independently). :meth:`Criterion.judge` gives one
of five outcomes:

- **reproduced**: the whole interval satisfies the claim;
- **not reproduced**: the whole interval contradicts it;
- **inconclusive**: the interval straddles the criterion: the run was too small to tell
  (:meth:`Criterion.units_to_decide` says how many units would, from the measured spread);
- **not checked**: the run measured it but the profile cannot test the claim;
- **not run**: the run could not attempt it (data absent, a GPU needed).

The kinds (``KINDS``):

- ``at_least`` / ``at_most`` a threshold (an accuracy, an attack success rate);
- ``within`` a band ``[low, high]`` (a slope, a ratio);
- ``better``: the estimate is a *paired* difference (A - B on shared seeds or targets),
  and the claim is that it exceeds ``margin`` (>= 0): a difference credibly below the
  margin refutes it;
- ``equivalent``: "no effect", "no leakage", "not distinguishable", "the defence stops it":
  a two one-sided test, the ``1 - 2 alpha`` interval (90 % at alpha = 0.05) wholly inside
  ``[-margin, margin]`` (or ``[center - margin, center + margin]``); a difference credibly
  outside the margin refutes it. Without a margin a "no effect" claim cannot be judged.

Every criterion names its ``source``: the paper's words (e.g. "AUC < 0.51", Fig. 2) or the
argued choice that fixed it, so a reader can disagree with the number, not guess it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .intervals import Estimate

OUTCOMES = ("reproduced", "not reproduced", "inconclusive", "not checked", "not run")
KINDS = ("at_least", "at_most", "within", "better", "equivalent")
EQUIVALENCE_CONFIDENCE = 0.90  # two one-sided tests at alpha = 0.05


def _number(name: str, value: float | None) -> None:
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"Criterion.{name} = {value!r}: a finite number is required for this kind.")


@dataclass(frozen=True)
class Criterion:
    """A claim's test: ``kind`` with its ``threshold`` / ``low``-``high`` band / ``margin``.

    ``unit`` names the independent unit the interval must resample (targets,
    seeds, target models, ...); ``source`` where the numbers come from.
    """

    kind: str
    threshold: float | None = None
    low: float | None = None
    high: float | None = None
    margin: float | None = None
    center: float = 0.0
    unit: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Criterion.kind = {self.kind!r}; choose one of {', '.join(KINDS)}.")
        if self.kind in ("at_least", "at_most"):
            _number("threshold", self.threshold)
        elif self.kind == "within":
            _number("low", self.low)
            _number("high", self.high)
            if not self.low < self.high:
                raise ValueError(f"Criterion 'within': low {self.low} must be below high {self.high}.")
        elif self.kind == "better":
            _number("margin", 0.0 if self.margin is None else self.margin)
            if (self.margin or 0.0) < 0:
                raise ValueError(f"Criterion 'better': margin {self.margin} must be >= 0.")
        else:  # equivalent
            if self.margin is None:
                raise ValueError("Criterion 'equivalent' needs a margin: a 'no effect' claim without "
                                 "one cannot be judged (say how small an effect counts as none).")
            _number("margin", self.margin)
            if self.margin <= 0:
                raise ValueError(f"Criterion 'equivalent': margin {self.margin} must be > 0.")
        if not str(self.source).strip():
            raise ValueError("Criterion.source is empty: say where the number comes from (the paper's "
                             "words, or the argued choice).")

    # -- the bounds a reproduced claim's interval must lie within --------------------------------
    def _bounds(self) -> tuple[float, float]:
        if self.kind == "at_least":
            return self.threshold, math.inf
        if self.kind == "at_most":
            return -math.inf, self.threshold
        if self.kind == "within":
            return self.low, self.high
        if self.kind == "better":
            return self.margin or 0.0, math.inf
        return self.center - self.margin, self.center + self.margin

    def interval_for(self, estimate: Estimate) -> Estimate:
        """The interval this kind reads: the estimate's own, or the 90 % one for equivalence."""
        if self.kind == "equivalent":
            return estimate.at(EQUIVALENCE_CONFIDENCE)
        return estimate

    def judge(self, estimate: Estimate) -> str:
        """reproduced / not reproduced / inconclusive, from the interval alone."""
        est = self.interval_for(estimate)
        lo, hi = self._bounds()
        if self.kind == "better":  # strict: a difference equal to the margin is no gain
            if est.low > lo:
                return "reproduced"
            return "not reproduced" if est.high < lo else "inconclusive"
        if lo <= est.low and est.high <= hi:
            return "reproduced"
        if est.high < lo or est.low > hi:
            return "not reproduced"
        return "inconclusive"

    def units_to_decide(self, estimate: Estimate) -> int | None:
        """How many units an interval of the measured spread would need to decide the claim
        (its half width below the point's distance to the nearest bound); None when the point
        sits on a bound or the estimate has no spread to scale."""
        est = self.interval_for(estimate)
        lo, hi = self._bounds()
        distance = min(abs(est.point - b) for b in (lo, hi) if math.isfinite(b))
        if distance == 0:
            return None
        if est.counts is not None:  # Clopper-Pearson is lopsided near 0 and 1: search, do not scale
            return _trials_to_decide(self, est)
        if not math.isfinite(est.half_width) or est.half_width == 0 or est.n < 2:
            return None
        return max(est.n + 1, math.ceil(est.n * (est.half_width / distance) ** 2))

    def text(self, source: bool = True) -> str:
        """The criterion as a row shows it, e.g. ``>= 40, over targets (the paper's 'over 40 %')``;
        ``source=False`` leaves the source out (the short form a sentence uses)."""
        fmt = lambda x: f"{x:.4g}"
        if self.kind == "at_least":
            body = f">= {fmt(self.threshold)}"
        elif self.kind == "at_most":
            body = f"<= {fmt(self.threshold)}"
        elif self.kind == "within":
            body = f"within [{fmt(self.low)}, {fmt(self.high)}]"
        elif self.kind == "better":
            body = f"paired difference > {fmt(self.margin or 0.0)}"
        else:
            center = f"{fmt(self.center)} " if self.center else ""
            body = f"equivalent to {center or '0 '}within +-{fmt(self.margin)} (90 % interval)"
        unit = f", over {self.unit}" if self.unit else ""
        return f"{body}{unit} ({self.source})" if source else f"{body}{unit}"


def _trials_to_decide(criterion: Criterion, est: Estimate, limit: int = 100_000) -> int | None:
    """The smallest number of trials at the observed rate whose Clopper-Pearson interval decides."""
    from .intervals import proportion_estimate

    k, n = est.counts
    rate = k / n
    size = n + 1
    while size <= limit:
        trial = proportion_estimate(round(rate * size), size, unit=est.unit, confidence=est.confidence)
        if criterion.judge(trial) != "inconclusive":
            return size
        size = size + 1 if size < 200 else int(size * 1.05)
    return None


def criterion_from_row(row: dict) -> Criterion:
    """A :class:`Criterion` from one row of a chapter's ``criteria.csv`` (empty cells: None)."""
    def num(key: str) -> float | None:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
            return None
        return float(value)

    return Criterion(kind=str(row["kind"]).strip(), threshold=num("threshold"), low=num("low"),
                     high=num("high"), margin=num("margin"), center=num("center") or 0.0,
                     unit=str(row.get("unit") or "").strip(), source=str(row.get("source") or "").strip())


__all__ = ["Criterion", "EQUIVALENCE_CONFIDENCE", "KINDS", "OUTCOMES", "criterion_from_row"]
