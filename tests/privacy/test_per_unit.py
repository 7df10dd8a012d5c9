"""per_unit: one LiRA AUC per independent target model, and the log-log scaling slope."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ddrepro.privacy.lira import balanced_membership, leave_one_out_scores, lira_scores
from ddrepro.privacy.per_unit import per_target_auc, scaling_slope


def _study(shadows=8, targets=4, n=200, signal=3.0, seed=0):
    """Balanced shadows, then targets with independent random halves; phi = noise + signal * IN."""
    gen = torch.Generator().manual_seed(1000 + seed)  # not balanced_membership's stream
    member = torch.cat([balanced_membership(n, shadows, seed=seed),
                        torch.rand(targets, n, generator=gen) < 0.5])
    phi = torch.randn(shadows + targets, n, generator=gen, dtype=torch.float64) + signal * member.double()
    return phi, member


def test_one_auc_per_target_near_one_with_signal():
    phi, member = _study(signal=4.0)
    aucs = per_target_auc(phi, member, shadows=8)
    assert aucs.shape == (4,)
    assert (aucs > 0.95).all()


def test_no_signal_gives_auc_near_half_and_spread_over_targets():
    phi, member = _study(shadows=10, targets=6, n=2000, signal=0.0)
    aucs = per_target_auc(phi, member, shadows=10)
    assert abs(aucs.mean() - 0.5) < 0.03
    assert aucs.std() > 0  # one value per target, not one pooled value repeated


def test_leave_one_out_over_balanced_shadows_is_biased():
    """Why per_target_auc attacks only the independent targets: leaving a balanced shadow out
    tells the attack its membership through the IN/OUT counts of the others, even on noise."""
    phi, member = _study(shadows=6, targets=0, n=2000, signal=0.0)
    scores, truth = leave_one_out_scores(phi, member, list(range(6)), global_variance=True)
    aucs = [roc_auc_score(truth[t].numpy(), scores[t].numpy()) for t in range(6)]
    assert np.mean(aucs) < 0.49  # members score lower: 2 IN vs 3 OUT shadows left, a noisier IN fit


def test_matches_lira_scores_per_target():
    phi, member = _study(shadows=6, targets=2, n=100, signal=1.0, seed=3)
    aucs = per_target_auc(phi, member, shadows=6, global_variance=False)
    for i, t in enumerate((6, 7)):
        s = lira_scores(phi[t], phi[:6], member[:6], global_variance=False)
        assert aucs[i] == pytest.approx(roc_auc_score(member[t].numpy(), s.numpy()))


def test_bad_input_raises():
    phi, member = _study(shadows=4, targets=2)
    with pytest.raises(ValueError, match="bool"):
        per_target_auc(phi, member.int(), shadows=4)
    with pytest.raises(ValueError, match="shadows"):
        per_target_auc(phi, member, shadows=6)
    with pytest.raises(ValueError, match="shaped"):
        per_target_auc(phi[:, :5], member, shadows=4)
    all_in = member.clone()
    all_in[5] = True
    with pytest.raises(ValueError, match="all or none"):
        per_target_auc(phi, all_in, shadows=4)


def test_scaling_slope():
    sizes = [1, 2, 5, 10]
    assert scaling_slope(sizes, [3 * s for s in sizes]) == pytest.approx(1.0)
    assert scaling_slope(sizes, [0.7] * 4) == pytest.approx(0.0, abs=1e-12)
    assert scaling_slope(sizes, [s ** 2 for s in sizes]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="distinct"):
        scaling_slope([1], [1.0])
    with pytest.raises(ValueError, match="positive"):
        scaling_slope([1, 2], [0.0, 1.0])


def test_tpr_at_reads_the_roc_at_or_below_the_fpr():
    from ddrepro.privacy.per_unit import tpr_at

    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    scores = np.array([9.0, 8.0, 2.0, 1.0, 7.0, 0.5, 0.4, 0.3])
    # FPR 0: only the two scores above the highest non-member; FPR 1/4 allows that non-member
    assert tpr_at(scores, truth, 0.2) == 0.5
    assert tpr_at(scores, truth, 0.25) == 1.0
    with pytest.raises(ValueError, match="fpr"):
        tpr_at(scores, truth, 0.0)


def test_one_tpr_per_target_high_with_signal_and_low_without():
    from ddrepro.privacy.per_unit import per_target_tpr

    phi, member = _study(signal=4.0, n=1000)
    tpr = per_target_tpr(phi, member, 8, 0.01)
    assert tpr.shape == (4,) and (tpr > 0.5).all()
    phi, member = _study(signal=0.0, n=1000)
    assert (per_target_tpr(phi, member, 8, 0.01) < 0.1).all()
