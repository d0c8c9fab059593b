"""Fast, tested statistics for the prediction study (design.md §3 "Prediction", "Fair
comparisons"): a vectorised Gaussian naive Bayes, midrank AUC, DeLong variances and the paired
DeLong test, ROC curves on a grid, repeated stratified cross-validation of many feature sets at
once and nested ("best available") selection.

Gaussian naive Bayes (the model of ``sklearn.naive_bayes.GaussianNB`` with its default
``var_smoothing`` = 1e-9). For classes c ∈ {0, 1} with training frequencies π_c, per-class
feature means μ_cj and (population) variances s²_cj, and ε = var_smoothing · max_j Var(x_j)
(the largest variance of a feature over all training runs),

    ln p(c, x) = ln π_c − ½ Σ_j [ ln 2π(s²_cj + ε) + (x_j − μ_cj)² / (s²_cj + ε) ],

and the posterior log-odds of the event is ln p(1, x) − ln p(0, x).

Standardised features decompose. The classifier is fitted to features standardised on the
training runs (z_j = (x_j − m_j)/sd_j), so every feature has unit training variance and
ε = var_smoothing for EVERY feature set. The log-odds of a set S is then (in z units)

    L_S(x) = ln(π_1/π_0) + Σ_{j∈S} τ_j(z_j),
    τ_j(z) = −½ ln(v_1j / v_0j) − ½ [(z − μ_1j)²/v_1j − (z − μ_0j)²/v_0j],  v_cj = s²_cj + ε,

a sum of per-feature terms. :func:`nb_terms` computes τ_j for all features of a fold once
(on the raw features with ε_j = var_smoothing · Var_train(x_j), algebraically identical),
and the log-odds of any number of sets is one matrix product with a 0/1 membership matrix.
This is what makes thousands of fits (nested selection) cheap; it equals GaussianNB on the
standardised set up to rounding (tested to 1e-10).

AUC and DeLong (DeLong, DeLong & Clarke-Pearson 1988; fast midrank form of Sun & Xu 2014).
For m positive scores X_i and n negative scores Y_j, ψ(x, y) = 1 if x > y, ½ if x = y, else 0.
Placement values V10_i = (1/n) Σ_j ψ(X_i, Y_j), V01_j = (1/m) Σ_i ψ(X_i, Y_j); the AUC is the
mean of either. With midranks T_z over all m + n scores, T_x within the positives and T_y within
the negatives, V10_i = (T_z(X_i) − T_x(X_i))/n and V01_j = 1 − (T_z(Y_j) − T_y(Y_j))/m, so
everything costs a few sorts (O(N log N)). For k scores on the same runs,
S10 = cov(V10) and S01 = cov(V01) (k × k, ddof = 1), and Cov(AUC) = S10/m + S01/n. The paired
test of AUC_a − AUC_b uses Var = c (S10/m + S01/n) cᵀ with c = (1, −1), z = Δ/SE, two-sided
p = 2 Φ(−|z|).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr
from sklearn.model_selection import StratifiedKFold

VAR_SMOOTHING = 1e-9
FPR_GRID = np.linspace(0.0, 1.0, 101)
Z95 = 1.959963984540054


# --------------------------------------------------------------------------------------------
# Gaussian naive Bayes
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GaussianNBModel:
    """Fitted two-class Gaussian naive Bayes: ``log_prior`` (2,), ``mean`` and ``var`` (2, p)
    (``var`` includes ``epsilon``)."""

    log_prior: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    epsilon: float


def gnb_fit(X, y, var_smoothing: float = VAR_SMOOTHING) -> GaussianNBModel:
    """Fit Gaussian naive Bayes to X (n × p) and binary y (both classes present)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(bool)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"need X (n × p) and y (n,), got {X.shape} and {y.shape}")
    if y.all() or not y.any():
        raise ValueError("both classes must be present")
    eps = var_smoothing * float(np.var(X, axis=0).max()) if X.shape[1] else 0.0
    mean = np.stack([X[~y].mean(axis=0), X[y].mean(axis=0)])
    var = np.stack([X[~y].var(axis=0), X[y].var(axis=0)]) + eps
    prior = np.array([(~y).mean(), y.mean()])
    return GaussianNBModel(np.log(prior), mean, var, eps)


def gnb_joint_log_likelihood(model: GaussianNBModel, X) -> np.ndarray:
    """ln p(c, x) for c = 0, 1: array (n, 2) (sklearn's ``predict_joint_log_proba``)."""
    X = np.asarray(X, dtype=float)
    out = np.empty((X.shape[0], 2))
    for c in (0, 1):
        out[:, c] = (model.log_prior[c] - 0.5 * np.sum(np.log(2 * np.pi * model.var[c]))
                     - 0.5 * np.sum((X - model.mean[c]) ** 2 / model.var[c], axis=1))
    return out


def gnb_log_odds(model: GaussianNBModel, X) -> np.ndarray:
    """Posterior log-odds ln P(1|x) − ln P(0|x) = ln p(1, x) − ln p(0, x)."""
    jll = gnb_joint_log_likelihood(model, X)
    return jll[:, 1] - jll[:, 0]


def standardise(train, *others):
    """(train − m)/sd and the same map applied to ``others``; m, sd from ``train`` (ddof 0).

    A column constant on ``train`` (sd = 0) is divided by 1 instead (the caller flags it).
    """
    train = np.asarray(train, dtype=float)
    m = train.mean(axis=0)
    sd = train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return ((train - m) / sd,) + tuple((np.asarray(o, dtype=float) - m) / sd for o in others)


def nb_terms(X_train, y_train, X_test, var_smoothing: float = VAR_SMOOTHING):
    """Per-feature naive Bayes log-likelihood-ratio terms τ_j of the model fitted to the
    features standardised on ``X_train`` (module docstring).

    Standardisation is done implicitly: with z = (x − m)/sd, the class means and variances of
    z are (μ − m)/sd and s²/sd², so (z − μ_z)²/(s²_z + ε) = (x − μ)²/(s² + ε sd²). The terms are
    therefore computed on the raw features with ε_j = var_smoothing · Var_train(x_j), which is
    GaussianNB on standardised features exactly (up to rounding). Returns (ln(π_1/π_0), terms
    of shape (n_test, p)); the log-odds of a set S is the first plus the sum of its columns of
    the second.
    """
    y = np.asarray(y_train).astype(bool)
    X1, X0 = X_train[y], X_train[~y]
    m1, m0 = X1.mean(axis=0), X0.mean(axis=0)
    n1, n0 = X1.shape[0], X0.shape[0]
    ss1 = ((X1 - m1) ** 2).sum(axis=0)
    ss0 = ((X0 - m0) ** 2).sum(axis=0)
    # total variance from the class sums of squares (law of total variance)
    n = n1 + n0
    total_var = (ss1 + ss0) / n + n1 * n0 * (m1 - m0) ** 2 / n**2
    # a column constant on the training runs (flagged by the caller) gets ε = var_smoothing
    eps = var_smoothing * np.where(total_var > 0, total_var, 1.0)
    v1 = ss1 / n1 + eps
    v0 = ss0 / n0 + eps
    prior = float(np.log(n1) - np.log(n0))
    terms = (-0.5 * np.log(v1 / v0)
             - 0.5 * ((X_test - m1) ** 2 / v1 - (X_test - m0) ** 2 / v0))
    return prior, terms


# --------------------------------------------------------------------------------------------
# ranks, AUC, DeLong
# --------------------------------------------------------------------------------------------

def midranks(a) -> np.ndarray:
    """Midranks (1-based, ties get the mean of their ranks) along axis 0 of a 1-D or 2-D array."""
    a = np.asarray(a, dtype=float)
    one_d = a.ndim == 1
    # sort rows of the transposed, contiguous copy (much faster than strided axis-0 sorts)
    s = np.ascontiguousarray(a[None, :] if one_d else a.T)
    k, n = s.shape
    order = np.argsort(s, axis=1, kind="stable")
    s = np.take_along_axis(s, order, axis=1)
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    if new.all():
        sorted_rank = np.broadcast_to(np.arange(1.0, n + 1.0), s.shape)
    else:
        idx = np.broadcast_to(np.arange(n), s.shape)
        last = np.ones(s.shape, dtype=bool)
        last[:, :-1] = new[:, 1:]
        start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
        end = np.minimum.accumulate(np.where(last, idx, n)[:, ::-1], axis=1)[:, ::-1]
        sorted_rank = (start + end) / 2.0 + 1.0
    ranks = np.empty(s.shape)
    np.put_along_axis(ranks, order, sorted_rank, axis=1)
    return ranks[0] if one_d else ranks.T


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
    r = midranks(s)
    a = (r[y].sum(axis=0) - m * (m + 1) / 2.0) / (m * n)
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
    if se > 0:
        p = float(2 * ndtr(-abs(delta) / se))
    else:
        p = 1.0 if delta == 0 else 0.0
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
    p = float(2 * ndtr(-abs(delta) / se)) if se > 0 else (1.0 if delta == 0 else 0.0)
    return PairedDeLong(auc_a, auc_b, delta, se, delta - Z95 * se, delta + Z95 * se, p)


def roc_on_grid(scores, y, grid=FPR_GRID) -> np.ndarray:
    """TPR of the ROC curve (thresholds at the distinct scores, ties as one step, linear
    between the vertices as ``sklearn.metrics.roc_curve``) evaluated on the FPR ``grid``."""
    s, y, _ = _check_scores(scores, y)
    s = s[:, 0]
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    last = np.r_[ss[1:] != ss[:-1], True]
    tps = np.cumsum(yy)[last]
    fps = np.cumsum(~yy)[last]
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return np.interp(grid, fpr, tpr)


# --------------------------------------------------------------------------------------------
# cross-validation of many feature sets at once
# --------------------------------------------------------------------------------------------

def stratified_splits(y, folds: int, seed: int):
    """``StratifiedKFold(folds, shuffle=True, random_state=seed)`` splits of range(len(y))."""
    y = np.asarray(y).astype(int)
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
                .split(np.zeros((y.size, 1)), y))


def _fold_scores(X, y, train, test, membership):
    """Log-odds of every set (columns of ``membership``, p × s) on ``test`` from a fit on
    ``train``, and the columns constant on ``train``."""
    Xtr = X[train]
    constant = (Xtr == Xtr[:1]).all(axis=0)
    prior, terms = nb_terms(Xtr, y[train], X[test])
    return prior + terms @ membership, constant


@dataclass
class SetScores:
    """Out-of-fold log-odds of several feature sets under repeated stratified k-fold CV.

    ``oof[r, i, s]``: log-odds of run i from the model of set s fitted without i's fold in
    repeat r. ``bad[s]``: '' or why set s cannot be scored (a member constant in a training
    fold); its scores are then meaningless.
    """

    oof: np.ndarray
    bad: list[str]


def cv_set_scores(X, y, membership, folds: int, repeats: int, seed: int,
                  feature_names=None) -> SetScores:
    """Repeated stratified k-fold CV (``repeats`` × ``folds``, random_state = seed + r) of all
    sets given by the 0/1 ``membership`` matrix (p × s) over the finite feature matrix X (n × p).
    Standardisation and the naive Bayes fit use the training fold only."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(bool)
    M = np.asarray(membership, dtype=float)
    names = feature_names if feature_names is not None else [f"#{j}" for j in range(X.shape[1])]
    oof = np.empty((repeats, X.shape[0], M.shape[1]))
    bad = [""] * M.shape[1]
    for r in range(repeats):
        for k, (train, test) in enumerate(stratified_splits(y, folds, seed + r)):
            oof[r][test], constant = _fold_scores(X, y, train, test, M)
            if constant.any():
                hit = (M[constant] > 0)
                for s in np.flatnonzero(hit.any(axis=0)):
                    if not bad[s]:
                        j = np.flatnonzero(constant)[int(np.argmax(hit[:, s]))]
                        bad[s] = (f"feature {names[j]} has no variance in training fold {k} "
                                  f"(repeat {r})")
    return SetScores(oof, bad)


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


# --------------------------------------------------------------------------------------------
# nested selection: the best set available, chosen without the scoring fold
# --------------------------------------------------------------------------------------------

@dataclass
class NestedResult:
    """Nested "best of a group of candidate sets" pseudo-predictors.

    ``oof[g]`` (R, n): out-of-fold log-odds of group g's pseudo-predictor; ``choice[g]`` (R,
    folds): index (into the candidate list) of the set chosen in each outer fold, −1 if no
    candidate of the group could be fitted there; ``splits[r]`` the outer (train, test) splits.
    """

    oof: dict
    choice: dict
    splits: list


def nested_best(X, y, membership, groups: dict, folds: int, repeats: int, seed: int,
                inner_seed: int | None = None) -> NestedResult:
    """Nested cross-validated choice of the best candidate set within each group.

    Outer CV: ``repeats`` × stratified ``folds`` (random_state = seed + r). In each outer
    training fold an inner stratified ``folds``-fold CV (one repeat, random_state =
    ``inner_seed``, default ``seed``) gives every candidate set (column of ``membership``) its
    pooled inner out-of-fold AUC; per group (``{name: candidate indices}``) the candidate with
    the highest inner AUC is chosen (a candidate with a member constant in an inner or outer
    training fold is not eligible), fitted on the whole outer training fold and used to score
    the outer test fold. The outer test fold is never seen by the choice.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(bool)
    M = np.asarray(membership, dtype=float)
    inner_seed = seed if inner_seed is None else inner_seed
    n = X.shape[0]
    oof = {g: np.full((repeats, n), np.nan) for g in groups}
    choice = {g: np.full((repeats, folds), -1, dtype=int) for g in groups}
    all_splits = []
    for r in range(repeats):
        splits = stratified_splits(y, folds, seed + r)
        all_splits.append(splits)
        for k, (train, test) in enumerate(splits):
            inner_auc = _inner_auc(X[train], y[train], M, folds, inner_seed)
            scores, constant = _fold_scores(X, y, train, test, M)
            eligible = np.isfinite(inner_auc) & ~(M[constant] > 0).any(axis=0)
            for g, members in groups.items():
                members = np.asarray(members, dtype=int)
                ok = members[eligible[members]]
                if ok.size == 0:
                    continue
                best = int(ok[np.argmax(inner_auc[ok])])
                choice[g][r, k] = int(np.flatnonzero(members == best)[0])
                oof[g][r, test] = scores[:, best]
    return NestedResult(oof, choice, all_splits)


def _inner_auc(X, y, M, folds, seed):
    """Pooled inner out-of-fold AUC of every set (NaN where a member is constant in an inner
    training fold or a class has fewer than ``folds`` runs)."""
    if min(int(y.sum()), int((~y).sum())) < folds:
        return np.full(M.shape[1], np.nan)
    scores = np.empty((X.shape[0], M.shape[1]))
    invalid = np.zeros(M.shape[1], dtype=bool)
    for train, test in stratified_splits(y, folds, seed):
        scores[test], constant = _fold_scores(X, y, train, test, M)
        invalid |= (M[constant] > 0).any(axis=0)
    a = np.asarray(auc(scores, y), dtype=float)
    a[invalid] = np.nan
    return a
