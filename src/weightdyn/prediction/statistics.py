"""AUC, DeLong variances, the paired DeLong test and ROC curves for the prediction study
(docs/methods.md §3 "Prediction", "Fair comparisons").

AUC and DeLong (DeLong, DeLong & Clarke-Pearson 1988; fast midrank form of Sun & Xu 2014).
For m positive scores X_i and n negative scores Y_j, ψ(x, y) = 1 if x > y, ½ if x = y, else 0.
Placement values V10_i = (1/n) Σ_j ψ(X_i, Y_j), V01_j = (1/m) Σ_i ψ(X_i, Y_j); the AUC is the
mean of either. With midranks T_z over all m + n scores, T_x within the positives and T_y within
the negatives, V10_i = (T_z(X_i) − T_x(X_i))/n and V01_j = 1 − (T_z(Y_j) − T_y(Y_j))/m, so
everything costs a few sorts (O(N log N)). For k scores on the same runs,
S10 = cov(V10) and S01 = cov(V01) (k × k, ddof = 1), and Cov(AUC) = S10/m + S01/n. The paired
test of AUC_a − AUC_b uses Var = c (S10/m + S01/n) cᵀ with c = (1, −1), z = Δ/SE, two-sided
p = 2 Φ(−|z|).

Summaries of repeated cross-validation (R repeats of out-of-fold scores of one predictor):

* ``auc_mean``  = mean over repeats of the pooled out-of-fold AUC;
* ``auc_std``   = std over repeats (CV instability, not an uncertainty);
* ``auc_ci_low/high`` = auc_mean ± 1.96 √(mean over repeats of the DeLong variance), in [0, 1];
* ``mean_tpr``  = repeat-mean of the pooled out-of-fold ROC curve on :data:`FPR_GRID`;
* paired comparison of two predictors on the same runs (:func:`delong_paired_repeats`):
  Δ = difference of the two auc_mean, its 95 % CI from the mean paired DeLong variance,
  two-sided p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FPR_GRID", "Z95", "PairedDeLong", "ScoreSummary", "auc", "delong_covariance",
    "delong_paired", "delong_paired_repeats", "delong_placements", "delong_variance",
    "midranks", "roc_on_grid", "summarise_many", "summarise_scores",
]

#: false-positive rates on which every ROC curve is reported
FPR_GRID = np.linspace(0.0, 1.0, 101)
#: two-sided 95 % normal quantile Φ⁻¹(0.975)
Z95 = 1.959963984540054


# --------------------------------------------------------------------------------------------
# ranks, AUC, DeLong
# --------------------------------------------------------------------------------------------

def midranks(a) -> np.ndarray:
    """Midranks (1-based, ties get the mean of their ranks) along axis 0 of a 1-D or 2-D array."""
    a = np.asarray(a, dtype=float)
    one_d = a.ndim == 1
    # sort rows of the transposed, contiguous copy (much faster than strided axis-0 sorts)
    s = np.ascontiguousarray(a[None, :] if one_d else a.T)
    order, sorted_rank = _sorted_midranks(s)
    ranks = np.empty(s.shape)
    np.put_along_axis(ranks, order, sorted_rank, axis=1)
    return ranks[0] if one_d else ranks.T


def _sorted_midranks(s):
    """(order, midranks in sorted order) of each row of the 2-D array ``s``.

    The order within a tie does not matter (tied values get the same midrank), so the fast
    unstable sort gives exactly the ranks of a stable one.
    """
    order = np.argsort(s, axis=1)
    s = np.take_along_axis(s, order, axis=1)
    n = s.shape[1]
    new = np.empty(s.shape, dtype=bool)
    new[:, 0] = True
    np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
    if new.all():
        return order, np.broadcast_to(np.arange(1.0, n + 1.0), s.shape)
    # ties: groups of equal values in the flattened rows (each row starts a group); midrank =
    # mean position in the row + 1 (exact: sums of integers, halved)
    flat = new.ravel()
    starts = np.flatnonzero(flat)
    ends = np.append(starts[1:], flat.size) - 1
    mid = (starts + ends) / 2.0 - (starts // n) * n + 1.0
    return order, mid[np.cumsum(flat) - 1].reshape(s.shape)


def _check_scores(scores, y):
    s = np.asarray(scores, dtype=float)
    y = np.asarray(y).astype(bool)
    one_d = s.ndim == 1
    if one_d:
        s = s[:, None]
    if s.ndim != 2 or y.shape != (s.shape[0],):
        raise ValueError(f"scores (n,) or (n, k) and y (n,) needed, got {s.shape}, {y.shape}")
    if y.all() or not y.any():
        raise ValueError("both classes must be present")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y, one_d


def auc(scores, y) -> np.ndarray | float:
    """AUC = P(score_pos > score_neg) + ½ P(=) by midranks (Mann–Whitney), per column."""
    s, y, one_d = _check_scores(scores, y)
    m, n = int(y.sum()), int((~y).sum())
    order, sorted_rank = _sorted_midranks(np.ascontiguousarray(s.T))
    # rank sum of the positives: a sum of half-integers, exact in any order
    rank_sum = (sorted_rank * y[order]).sum(axis=1)
    a = (rank_sum - m * (m + 1) / 2.0) / (m * n)
    return float(a[0]) if one_d else a


def delong_placements(scores, y):
    """(V10 (m, k), V01 (n, k), AUC (k,)) by midranks (Sun & Xu 2014); 1-D scores give k = 1."""
    s, y, _ = _check_scores(scores, y)
    m, n = int(y.sum()), int((~y).sum())
    tz = midranks(s)
    tx = midranks(s[y])
    ty = midranks(s[~y])
    v10 = (tz[y] - tx) / n
    v01 = 1.0 - (tz[~y] - ty) / m
    return v10, v01, v10.mean(axis=0)


def delong_covariance(scores, y):
    """(AUC (k,), covariance matrix (k, k)) = S10/m + S01/n (module docstring)."""
    v10, v01, a = delong_placements(scores, y)
    m, n = v10.shape[0], v01.shape[0]
    s10 = np.atleast_2d(np.cov(v10, rowvar=False)) if m > 1 else np.zeros((a.size, a.size))
    s01 = np.atleast_2d(np.cov(v01, rowvar=False)) if n > 1 else np.zeros((a.size, a.size))
    return a, s10 / m + s01 / n


def delong_variance(scores, y):
    """(AUC, DeLong variance) per column (arrays of shape (k,); floats for 1-D scores)."""
    s = np.asarray(scores, dtype=float)
    v10, v01, a = delong_placements(s, y)
    m, n = v10.shape[0], v01.shape[0]
    var = ((v10.var(axis=0, ddof=1) / m if m > 1 else 0.0)
           + (v01.var(axis=0, ddof=1) / n if n > 1 else 0.0))
    var = np.broadcast_to(np.asarray(var, dtype=float), a.shape).copy()
    if s.ndim == 1:
        return float(a[0]), float(var[0])
    return a, var


@dataclass(frozen=True)
class PairedDeLong:
    """Paired DeLong test of AUC_a − AUC_b on the same runs."""

    auc_a: float
    auc_b: float
    delta: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float


def delong_paired(score_a, score_b, y) -> PairedDeLong:
    """DeLong test for two correlated AUCs: Δ = AUC_a − AUC_b, SE, 95 % CI Δ ± 1.96 SE and
    the two-sided p-value 2Φ(−|Δ|/SE) (p = 1 when SE = 0 and Δ = 0)."""
    a, cov = delong_covariance(np.column_stack([score_a, score_b]), y)
    delta = float(a[0] - a[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    p = _two_sided_p(delta, se)
    return PairedDeLong(float(a[0]), float(a[1]), delta, se, delta - Z95 * se,
                        delta + Z95 * se, p)


def delong_paired_repeats(oof_a, oof_b, y) -> PairedDeLong:
    """Paired comparison of two predictors scored by repeated CV on the same runs, with the
    definitions of :func:`summarise_scores`: ``oof_a``, ``oof_b`` (R, n) out-of-fold scores of
    R repeats. Δ = mean over repeats of (AUC_a,r − AUC_b,r) = auc_mean_a − auc_mean_b,
    SE = √(mean over repeats of the paired DeLong variance of AUC_a,r − AUC_b,r), 95 % CI
    Δ ± 1.96 SE, p = 2Φ(−|Δ|/SE)."""
    oof_a, oof_b = np.atleast_2d(oof_a), np.atleast_2d(oof_b)
    if oof_a.shape != oof_b.shape:
        raise ValueError(f"score shapes differ: {oof_a.shape} and {oof_b.shape}")
    tests = [delong_paired(a, b, y) for a, b in zip(oof_a, oof_b)]
    auc_a = float(np.mean([t.auc_a for t in tests]))
    auc_b = float(np.mean([t.auc_b for t in tests]))
    delta = auc_a - auc_b
    se = float(np.sqrt(np.mean([t.se ** 2 for t in tests])))
    p = _two_sided_p(delta, se)
    return PairedDeLong(auc_a, auc_b, delta, se, delta - Z95 * se, delta + Z95 * se, p)


def _two_sided_p(delta: float, se: float) -> float:
    """2Φ(−|Δ|/SE); for SE = 0: 1 if Δ = 0, else 0."""
    if se > 0:
        from scipy.special import ndtr

        return float(2 * ndtr(-abs(delta) / se))
    return 1.0 if delta == 0 else 0.0


def roc_on_grid(scores, y, grid=FPR_GRID) -> np.ndarray:
    """TPR of the ROC curve (thresholds at the distinct scores, ties as one step, linear
    between the vertices as ``sklearn.metrics.roc_curve``) evaluated on the FPR ``grid``."""
    s, y, _ = _check_scores(scores, y)
    s = s[:, 0]
    # a tie is one step (its last member's cumulative counts), whatever its internal order
    order = np.argsort(-s)
    ss, yy = s[order], y[order]
    last = np.r_[ss[1:] != ss[:-1], True]
    tps = np.cumsum(yy)[last]
    fps = np.cumsum(~yy)[last]
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return np.interp(grid, fpr, tpr)


# --------------------------------------------------------------------------------------------
# summaries of repeated cross-validation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreSummary:
    """AUC summary of out-of-fold scores (R repeats): mean and std over repeats of the pooled
    AUC, 95 % interval auc_mean ± 1.96 √(mean DeLong variance), repeat-mean ROC on FPR_GRID."""

    auc_mean: float
    auc_std: float
    auc_ci_low: float
    auc_ci_high: float
    mean_tpr: np.ndarray


def summarise_scores(oof, y, grid=FPR_GRID) -> ScoreSummary:
    """Score summary of ``oof`` (R, n) out-of-fold scores of one predictor for labels y."""
    oof = np.atleast_2d(np.asarray(oof, dtype=float))
    a, var = delong_variance(oof.T, y)
    mean = float(a.mean())
    half = Z95 * float(np.sqrt(max(float(var.mean()), 0.0)))
    tpr = np.mean([roc_on_grid(o, y, grid) for o in oof], axis=0)
    return ScoreSummary(mean, float(a.std()), max(0.0, mean - half), min(1.0, mean + half), tpr)


def summarise_many(oof, y, grid=FPR_GRID):
    """:func:`summarise_scores` for the sets along the last axis of ``oof`` (R, n, s):
    arrays auc_mean, auc_std, ci_low, ci_high (s,) and mean_tpr (s, grid)."""
    R, _, S = oof.shape
    aucs = np.empty((R, S))
    var = np.empty((R, S))
    tpr = np.zeros((S, np.size(grid)))
    for r in range(R):
        aucs[r], var[r] = delong_variance(oof[r], y)
        for s in range(S):
            tpr[s] += roc_on_grid(oof[r, :, s], y, grid) / R
    mean = aucs.mean(axis=0)
    half = Z95 * np.sqrt(np.clip(var.mean(axis=0), 0.0, None))
    return mean, aucs.std(axis=0), np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1), tpr
