"""The likelihood-ratio attack, LiRA (Carlini et al., S&P 2022), online and offline.

Shadow models are trained on random halves of a pool of examples, so every
example is IN (a training member) for some shadows and OUT for the others.
For each example the attack fits Gaussians to the shadows' logit-scaled
confidence ``phi = z_y - logsumexp_{j != y} z_j`` (Eq. 4 of Carlini et al.;
:func:`ddrepro.evaluate.logit_confidence`) when IN and when OUT, and scores
the target model's ``phi`` on that example:

* online (their Algorithm 1): ``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)``;
* offline: a one-sided test against OUT only (their offline variant),
  ``log Pr[Z <= (phi - mu_out) / s_out]``: large when phi is unusually high.

Several queries of one example (the image and its mirror) get a Gaussian each
and their scores are averaged, as in the authors' code. With few shadows the
per-example variance is noisy: ``global_variance`` pools one variance over all
examples (the residuals around each example's own mean), as the authors advise
for small shadow counts.

How each side is fitted is an option (``fit``), closer to or further from the
authors' released code (``research/mi_lira_2021/plot.py`` in tensorflow/privacy):

* ``"mean"`` (the default, the paper's Algorithm 1): mean and unbiased std;
* ``"reference"``: the released code's fit, the *median* as the centre and the
  std as the spread;
* ``"median"``: median and the MAD scaled by 1.4826 (equal to the std for a
  Gaussian), robust to a few shadows whose training went astray.

With ``global_variance`` the spread is pooled over examples around each
example's own centre (the residuals' variance, or for ``"median"`` the MAD of
the residuals). The released code's "fixed variance" is instead the std of all
IN (OUT) values together, between-example spread of the centres included; that
is wider than the pooled residuals whenever the examples' centres differ, which
is why the per-example centre is kept here.

Metrics come from the kept libraries: ROC and AUC from scikit-learn, the AUC's
bootstrap interval from :func:`scipy.stats.bootstrap`, Clopper-Pearson
intervals from the beta quantiles
(:data:`scipy.stats.beta`, tested equal to :func:`scipy.stats.binomtest`). The empirical privacy budget at an
operating point is ``ln(TPR / FPR)`` (Kairouz et al. 2015; Dong et al. Sec. 4.3),
with a lower confidence bound ``ln(TPR_low / FPR_high)`` from those intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor

# 1 / Phi^-1(3/4): a Gaussian's MAD times this is its std (one constant for the package)
from ..filtering import MAD_TO_SD as MAD_TO_STD
from ..intervals import clopper_pearson

MIN_STD = 1e-6  # floor on fitted standard deviations (a constant phi would divide by zero)
FITS = ("mean", "reference", "median")  # how each side's Gaussian is fitted (module docstring)


def balanced_membership(n: int, models: int, seed: int = 0) -> Tensor:
    """``(models, n)`` bool: example j is IN for exactly ``models // 2`` models, chosen at random.

    The authors' shadow split (every example has as many IN as OUT shadows);
    each model then trains on about half of the pool.
    """
    if isinstance(models, bool) or not isinstance(models, int) or models < 2:
        raise ValueError(f"models = {models!r}: LiRA needs >= 2 models (IN and OUT for each example).")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n = {n!r} must be an integer >= 1 (the pool size).")
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.rand(models, n, generator=gen).argsort(0).argsort(0)
    return ranks < models // 2


def _as_queries(name: str, phi: Tensor, lead: tuple[int, ...]) -> Tensor:
    if not isinstance(phi, Tensor) or phi.dim() not in (len(lead), len(lead) + 1) \
            or tuple(phi.shape[:len(lead)]) != lead:
        what = tuple(phi.shape) if isinstance(phi, Tensor) else type(phi).__name__
        raise ValueError(f"{name} must be shaped {lead} or {lead} + (queries,), got {what}.")
    phi = phi.detach().double().cpu()
    if not torch.isfinite(phi).all():
        raise ValueError(f"{name} holds NaN or inf; check the models' logits.")
    return phi if phi.dim() == len(lead) + 1 else phi.unsqueeze(-1)


def _check_fit(fit: str) -> None:
    if fit not in FITS:
        raise ValueError(f"fit = {fit!r}: choose one of {FITS} (module docstring).")


def _fit(phi: Tensor, mask: Tensor, global_variance: bool, fit: str = "mean"
         ) -> tuple[Tensor, Tensor]:
    """Per example and query: centre and spread of ``phi`` over the shadows where ``mask`` holds
    (``fit``: mean and std, median and std, or median and 1.4826 MAD)."""
    w = mask.double().unsqueeze(-1)                       # (K, n, 1)
    count = w.sum(0)                                      # (n, 1)
    if fit == "mean":
        centre = (phi * w).sum(0) / count                 # (n, q)
    else:  # numpy's nanmedian averages the two middle values (torch's returns the lower one)
        masked = torch.where(w.bool(), phi, torch.tensor(float("nan"), dtype=phi.dtype))
        centre = torch.from_numpy(np.nanmedian(masked.numpy(), axis=0))
    if fit == "median":
        dev = torch.where(w.bool(), (phi - centre).abs(), torch.tensor(float("nan"), dtype=phi.dtype))
        dev = dev.numpy()
        mad = np.nanmedian(dev.reshape(-1, dev.shape[-1]), axis=0) if global_variance \
            else np.nanmedian(dev, axis=0)
        std = (MAD_TO_STD * torch.from_numpy(np.asarray(mad))).expand_as(centre)
        return centre, std.clamp_min(MIN_STD)
    resid2 = (phi - (phi * w).sum(0) / count).pow(2) * w  # std about the mean in both fits
    if global_variance:
        var = resid2.sum((0, 1)) / (count.sum() - count.numel()).clamp_min(1)  # (q,)
        std = var.sqrt().expand_as(centre)
    else:
        std = (resid2.sum(0) / (count - 1)).sqrt()       # unbiased per example
    return centre, std.clamp_min(MIN_STD)


def lira_scores(target_phi: Tensor, shadow_phi: Tensor, shadow_in: Tensor, *, online: bool = True,
                global_variance: bool = False, fit: str = "mean") -> Tensor:
    """LiRA's membership score per example (higher: more likely a member of the target's set).

    ``target_phi`` ``(n,)`` or ``(n, q)`` (q queries, e.g. the image and its
    flip), ``shadow_phi`` ``(K, n[, q])`` from K shadow models, ``shadow_in``
    ``(K, n)`` bool, whether example j was in shadow k's training set.
    Per-example variances need >= 2 IN and >= 2 OUT shadows per example
    (>= 1 with ``global_variance``); offline needs only the OUT side. ``fit``: how
    each side is fitted (``"mean"``, ``"reference"``, ``"median"``; module docstring).
    """
    _check_fit(fit)
    if not isinstance(shadow_in, Tensor) or shadow_in.dtype != torch.bool or shadow_in.dim() != 2:
        raise ValueError("shadow_in must be a (K, n) bool tensor: shadow k trained on example j.")
    k, n = shadow_in.shape
    if k < 2:
        raise ValueError(f"{k} shadow model(s): LiRA needs >= 2 shadows; train more.")
    target = _as_queries("target_phi", target_phi, (n,))
    shadows = _as_queries("shadow_phi", shadow_phi, (k, n))
    if shadows.shape[-1] != target.shape[-1]:
        raise ValueError(f"target has {target.shape[-1]} queries per example, shadows "
                         f"{shadows.shape[-1]}; query both the same way.")
    need = 1 if global_variance else 2
    sides = [("OUT", ~shadow_in)] + ([("IN", shadow_in)] if online else [])
    for side, mask in sides:
        fewest = int(mask.sum(0).min())
        if fewest < need:
            raise ValueError(f"some example has only {fewest} {side} shadow(s), fewer than {need}; "
                             "train more shadows, draw them with balanced_membership, or pass "
                             "global_variance=True.")
    mu_out, sd_out = _fit(shadows, ~shadow_in, global_variance, fit)
    x = target.numpy()
    if online:
        mu_in, sd_in = _fit(shadows, shadow_in, global_variance, fit)
        score = (stats.norm.logpdf(x, mu_in.numpy(), sd_in.numpy())
                 - stats.norm.logpdf(x, mu_out.numpy(), sd_out.numpy()))
    else:
        score = stats.norm.logcdf(x, mu_out.numpy(), sd_out.numpy())
    return torch.from_numpy(score.mean(-1))


def leave_one_out_scores(phi: Tensor, member: Tensor, targets: Sequence[int], *, online: bool = True,
                         global_variance: bool = False, fit: str = "mean") -> tuple[Tensor, Tensor]:
    """Each model in ``targets`` attacked in turn with all *other* models as its shadows.

    ``phi`` ``(K, n[, q])``, ``member`` ``(K, n)`` bool. Returns scores and true
    membership, both ``(len(targets), n)``; pooled, they are the authors'
    evaluation over several targets (not independent: they share examples).
    """
    if not isinstance(member, Tensor) or member.dtype != torch.bool or member.dim() != 2:
        raise ValueError("member must be a (K, n) bool tensor: model k trained on example j.")
    k = member.shape[0]
    targets = list(targets)
    if not targets or any(not 0 <= t < k for t in targets):
        raise ValueError(f"targets must be a non-empty list of model indices in [0, {k}), got {targets}.")
    if k < 3:
        raise ValueError(f"{k} models: leaving one out as the target needs >= 3 (>= 2 shadows).")
    scores = []
    for t in targets:
        rest = [j for j in range(k) if j != t]
        scores.append(lira_scores(phi[t], phi[rest], member[rest], online=online,
                                  global_variance=global_variance, fit=fit))
    return torch.stack(scores), member[targets].clone()


# -- how well an attack separates members from non-members ---------------------------

def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} = {value!r} must lie strictly between 0 and 1.")


def empirical_epsilon(tp, positives, fp, negatives, confidence: float = 0.95
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``ln(TPR / FPR)`` at operating points and the lower bound ``ln(TPR_low / FPR_high)``.

    TPR_low and FPR_high are the Clopper-Pearson bounds of the two-sided
    interval at ``confidence``. The point value is inf when FPR = 0 < TPR and
    -inf when TPR = 0; the bound is clipped at 0 (no evidence of leakage).
    Scalars or arrays (one entry per operating point).
    """
    tp, fp = np.asarray(tp, dtype=float), np.asarray(fp, dtype=float)
    tpr, fpr = tp / positives, fp / negatives
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.where(tpr > 0, np.log(tpr) - np.log(fpr), -np.inf)
        tpr_low = clopper_pearson(tp, np.broadcast_to(positives, tp.shape), confidence)[0]
        fpr_high = clopper_pearson(fp, np.broadcast_to(negatives, fp.shape), confidence)[1]
        lower = np.where(tpr_low > 0, np.log(tpr_low) - np.log(fpr_high), 0.0)
    return point, np.maximum(lower, 0.0)


@dataclass
class AttackReport:
    """ROC of an attack's scores against true membership, and the numbers read off it."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    auc_ci: tuple[float, float]
    positives: int
    negatives: int
    at_fpr: dict[float, dict[str, float]] = field(default_factory=dict)
    best_epsilon: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        """A flat dict for a table: AUC, its interval, TPR and epsilon at each FPR."""
        out = {"AUC": self.auc, "AUC low": self.auc_ci[0], "AUC high": self.auc_ci[1]}
        for at, point in self.at_fpr.items():
            out[f"TPR @ {100 * at:g}% FPR"] = point["tpr"]
            out[f"eps @ {100 * at:g}% FPR"] = point["epsilon"]
            out[f"eps low @ {100 * at:g}% FPR"] = point["epsilon_low"]
        return out


def attack_report(scores: Tensor, is_member: Tensor, *, fprs: Sequence[float] = (0.001, 0.01),
                  confidence: float = 0.95, n_bootstrap: int = 200, seed: int = 0) -> AttackReport:
    """ROC (scikit-learn), AUC with a bootstrap interval (SciPy), and per target FPR the
    operating point with the largest TPR at FPR <= target, its ``ln(TPR/FPR)`` and CP bound.

    ``best_epsilon``: the operating point (among FPR >= 1 / negatives) with the
    largest lower bound, as the paper reports one empirical epsilon per method;
    picking the best of many thresholds is a selection, so read that bound as optimistic.
    """
    for at in fprs:
        _check_rate("fpr", at)
    _check_rate("confidence", confidence)
    s = scores.detach().double().cpu().flatten().numpy()
    y = is_member.detach().bool().cpu().flatten().numpy()
    if s.shape != y.shape or not np.isfinite(s).all():
        raise ValueError("scores and is_member must have the same number of entries, scores finite.")
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"{positives} members and {negatives} non-members: need both.")
    fpr, tpr, _ = roc_curve(y, s)
    auc = float(roc_auc_score(y, s))
    boot = stats.bootstrap((s, y), lambda a, b: roc_auc_score(b, a), paired=True, vectorized=False,
                           n_resamples=n_bootstrap, confidence_level=confidence,
                           method="percentile", rng=np.random.default_rng(seed))
    report = AttackReport(fpr, tpr, auc, (float(boot.confidence_interval.low),
                                          float(boot.confidence_interval.high)), positives, negatives)
    tp, fp = np.rint(tpr * positives).astype(int), np.rint(fpr * negatives).astype(int)
    points, lows = empirical_epsilon(tp, positives, fp, negatives, confidence)
    for at in fprs:
        i = int(np.nonzero(fpr <= at)[0][-1])  # roc_curve starts at (0, 0)
        report.at_fpr[at] = {"tpr": float(tpr[i]), "fpr": float(fpr[i]),
                             "epsilon": float(points[i]), "epsilon_low": float(lows[i])}
    usable = np.nonzero(fp >= 1)[0]
    best = int(usable[np.argmax(lows[usable])])
    report.best_epsilon = {"epsilon": float(points[best]), "epsilon_low": float(lows[best]),
                           "tpr": float(tpr[best]), "fpr": float(fpr[best])}
    return report


__all__ = ["AttackReport", "FITS", "MAD_TO_STD", "MIN_STD", "attack_report", "balanced_membership",
           "empirical_epsilon", "leave_one_out_scores", "lira_scores"]
