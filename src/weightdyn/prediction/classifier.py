"""Gaussian naive Bayes, fitted fold by fold and feature by feature, and repeated stratified
cross-validation of many feature sets at once (docs/methods.md §3 "Prediction").

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

a sum of per-feature terms. :func:`fold_fit` computes τ_j for all features of a fold once
(on the raw features with ε_j = var_smoothing · Var_train(x_j), algebraically identical),
and the log-odds of any number of sets is one matrix product with a 0/1 membership matrix.
This is what makes thousands of fits (nested selection, :mod:`.nested`) cheap; it equals
GaussianNB on the standardised set up to rounding (tested to 1e-10).

Cross-validation: ``repeats`` × stratified ``folds``-fold CV, random_state = seed + r for repeat
r; standardisation and fit use the training fold only; the out-of-fold log-odds of each repeat
are summarised by :mod:`weightdyn.prediction.statistics` (auc_mean, auc_std, DeLong interval,
mean ROC).

:func:`cross_validated_auc` and :func:`single_feature_auc` score one feature set (the
reference API; :func:`weightdyn.prediction.predict_combination` computes exactly this for
every set). scikit-learn (the folds, the reference AUC) is imported when first used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .features import computability
from .statistics import FPR_GRID, delong_variance, summarise_scores

__all__ = [
    "VAR_SMOOTHING", "CVResult", "FoldFit", "GaussianNBModel", "SetScores", "SingleAUC",
    "cross_validated_auc", "cv_set_scores", "fold_fit", "gnb_fit", "gnb_joint_log_likelihood",
    "gnb_log_odds", "single_feature_auc", "standardise", "stratified_splits",
]

VAR_SMOOTHING = 1e-9


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


@dataclass(frozen=True)
class FoldFit:
    """Naive Bayes fitted to one training fold, feature by feature (module docstring): the log
    prior ratio ``prior`` = ln(π_1/π_0), the class variances ``v1``, ``v0`` (p,) with ε, the
    test-run part of the terms ``half_sq`` = ½ [(x − μ_1)²/v_1 − (x − μ_0)²/v_0] (n_test × p)
    and the features ``constant`` on the training fold; τ_j = −½ ln(v_1j/v_0j) − half_sq_j.

    Every number of a feature is computed from that feature's column alone: the same for any
    other columns beside it, as long as X has at least two (NumPy sums the rows of a
    single-column matrix pairwise, those of a wider one in order, column by column).
    """

    prior: float
    v1: np.ndarray
    v0: np.ndarray
    half_sq: np.ndarray
    constant: np.ndarray

    def terms(self, cols=slice(None)) -> np.ndarray:
        """τ of the features ``cols`` on the test runs: (n_test, len(cols))."""
        return np.subtract(-0.5 * np.log(self.v1[cols] / self.v0[cols]), self.half_sq[:, cols])

    def scores(self, membership, cols=slice(None)):
        """Log-odds of every set (columns of ``membership``, len(cols) × s) over the features
        ``cols`` on the test runs, and which of those features are constant on the training
        fold."""
        return self.prior + self.terms(cols) @ membership, self.constant[cols]


def fold_fit(X_train, y_train, X_test, var_smoothing: float = VAR_SMOOTHING) -> FoldFit:
    """Naive Bayes fitted to the features standardised on ``X_train`` (both classes present),
    with its terms on ``X_test``.

    Standardisation is done implicitly: with z = (x − m)/sd, the class means and variances of
    z are (μ − m)/sd and s²/sd², so (z − μ_z)²/(s²_z + ε) = (x − μ)²/(s² + ε sd²). The terms are
    therefore computed on the raw features with ε_j = var_smoothing · Var_train(x_j), which is
    GaussianNB on standardised features exactly (up to rounding); the log-odds of a set S is
    ``prior`` plus the sum of its columns of :meth:`FoldFit.terms`.
    """
    y = np.asarray(y_train).astype(bool)
    X1, X0 = X_train[y], X_train[~y]
    m1, m0 = X1.mean(axis=0), X0.mean(axis=0)
    n1, n0 = X1.shape[0], X0.shape[0]
    ss1 = _squared(X1 - m1).sum(axis=0)
    ss0 = _squared(X0 - m0).sum(axis=0)
    # total variance from the class sums of squares (law of total variance)
    n = n1 + n0
    total_var = (ss1 + ss0) / n + n1 * n0 * (m1 - m0) ** 2 / n**2
    # a column constant on the training runs (flagged) gets ε = var_smoothing
    eps = var_smoothing * np.where(total_var > 0, total_var, 1.0)
    v1 = ss1 / n1 + eps
    v0 = ss0 / n0 + eps
    half_sq = _squared(X_test - m1)
    half_sq /= v1
    d0 = _squared(X_test - m0)
    d0 /= v0
    half_sq -= d0
    half_sq *= 0.5
    return FoldFit(float(np.log(n1) - np.log(n0)), v1, v0, half_sq,
                   X_train.min(axis=0) == X_train.max(axis=0))


def _squared(a):
    """a² in place (``a`` is a temporary)."""
    return np.square(a, out=a)


# --------------------------------------------------------------------------------------------
# cross-validation of many feature sets at once
# --------------------------------------------------------------------------------------------

def stratified_splits(y, folds: int, seed: int):
    """``StratifiedKFold(folds, shuffle=True, random_state=seed)`` splits of range(len(y)), as
    read-only arrays (remembered: the same labels recur for every feature set, time and
    repeat)."""
    return list(_splits(np.asarray(y).astype(np.int64).tobytes(), folds, seed))


@functools.lru_cache(maxsize=128)
def _splits(labels: bytes, folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    y = np.frombuffer(labels, dtype=np.int64)
    out = []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(
            np.zeros((y.size, 1)), y):
        train.setflags(write=False)
        test.setflags(write=False)
        out.append((train, test))
    return tuple(out)


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
            oof[r][test], constant = fold_fit(X[train], y[train], X[test]).scores(M)
            if constant.any():
                hit = (M[constant] > 0)
                for s in np.flatnonzero(hit.any(axis=0)):
                    if not bad[s]:
                        j = np.flatnonzero(constant)[int(np.argmax(hit[:, s]))]
                        bad[s] = (f"feature {names[j]} has no variance in training fold {k} "
                                  f"(repeat {r})")
    return SetScores(oof, bad)


# --------------------------------------------------------------------------------------------
# one feature set (reference API)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CVResult:
    """Cross-validated naive Bayes scores of one feature set for one event.

    When ``computable`` is False, ``reason`` says why and every score field is None.
    ``repeat_auc[r]`` is the pooled out-of-fold AUC of repeat r; ``auc_mean``/``auc_std`` their
    mean and std; ``auc_ci_low/high`` the DeLong interval (:mod:`.statistics`). ``mean_tpr`` is
    the repeat-mean of the pooled out-of-fold ROC curve on ``fpr`` = FPR_GRID.
    ``oof_log_odds[i]`` is the repeat-mean out-of-fold posterior log-odds of run i (NaN for
    dropped runs, see ``used``), ``oof_proba`` its logistic transform.
    """

    computable: bool
    reason: str
    n_positive: int
    n_negative: int
    n_dropped: int
    folds: int
    repeats: int = 1
    auc_mean: float | None = None
    auc_std: float | None = None
    auc_ci_low: float | None = None
    auc_ci_high: float | None = None
    repeat_auc: np.ndarray | None = None
    fpr: np.ndarray | None = None
    mean_tpr: np.ndarray | None = None
    oof_proba: np.ndarray | None = None
    oof_log_odds: np.ndarray | None = None
    used: np.ndarray | None = None


@dataclass(frozen=True)
class SingleAUC:
    """AUC of a raw feature used as a score for the event.

    ``auc`` keeps the direction (< 0.5: the feature is lower in the event class);
    ``auc_oriented`` = max(auc, 1 − auc), direction chosen on the same data (optimistic).
    """

    computable: bool
    reason: str
    n_positive: int
    n_negative: int
    n_dropped: int
    auc: float | None = None
    auc_oriented: float | None = None


def cross_validated_auc(X, y, folds: int = 5, seed: int = 0, feature_names=None,
                        repeats: int = 1) -> CVResult:
    """Gaussian naive Bayes on the feature set X (runs × features), repeated stratified k-fold
    CV (``repeats`` × ``folds``, random_state = seed + r), standardised on each training fold;
    scores are the posterior log-odds ln P(E|x) − ln P(¬E|x) (:mod:`.statistics` for the
    summary statistics). :func:`weightdyn.prediction.predict_combination` computes exactly this
    for every set."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    X, y, used, names, (n_pos, n_neg, n_drop), reason = computability(X, y, folds, feature_names)
    head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=n_drop, folds=folds,
                repeats=repeats)
    if reason:
        return CVResult(False, reason, **head)
    from scipy.special import expit

    scores = cv_set_scores(X, y, np.ones((X.shape[1], 1)), folds, repeats, seed, names)
    if scores.bad[0]:
        return CVResult(False, scores.bad[0], **head)
    oof = scores.oof[:, :, 0]
    summary = summarise_scores(oof, y)
    repeat_auc, _ = delong_variance(oof.T, y)
    full = np.full(used.shape, np.nan)
    full[used] = oof.mean(axis=0)
    return CVResult(True, "", **head, auc_mean=summary.auc_mean, auc_std=summary.auc_std,
                    auc_ci_low=summary.auc_ci_low, auc_ci_high=summary.auc_ci_high,
                    repeat_auc=np.asarray(repeat_auc), fpr=FPR_GRID.copy(),
                    mean_tpr=summary.mean_tpr, oof_proba=expit(full), oof_log_odds=full,
                    used=used)


def single_feature_auc(x, y, min_per_class: int = 5, name: str = "x") -> SingleAUC:
    """AUC of the raw feature x as a score for y: P(x_pos > x_neg) + ½ P(x_pos = x_neg).

    Same computability rules as :func:`cross_validated_auc` with ``min_per_class`` in place of
    ``folds`` (no per-fold rule).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    X, yk, _, _, (n_pos, n_neg, n_drop), reason = computability(
        x[:, None], y, min_per_class, [name])
    head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=n_drop)
    if reason:
        return SingleAUC(False, reason, **head)
    from sklearn.metrics import roc_auc_score

    value = float(roc_auc_score(yk, X[:, 0]))
    return SingleAUC(True, "", **head, auc=value, auc_oriented=max(value, 1.0 - value))
