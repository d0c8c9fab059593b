"""Prediction of the final training loss from stability indicators (design.md §3, §5 fig. 9).

Outcome events (thresholds from the paper, configurable):

* ``E_low  = {c_f < low}``                         (ideal runs, default low = 4),
* ``E_high = {c_f > high or c_f not finite}``      (failed runs, default high = 100).

Each event is predicted from a feature matrix X (runs × features) by a Gaussian naive Bayes
classifier scored with stratified k-fold cross-validation (ROC curve, AUC); the AUC of a single
raw feature used as a score is the model-free check.

Computability rules (shared by :func:`cross_validated_auc` and :func:`single_feature_auc`);
a set that breaks one is reported with ``computable=False`` and a ``reason``, never raised and
never as NaN:

1. at least one feature;
2. rows (runs) with any non-finite feature value are dropped and counted (``n_dropped``); the
   AUC refers to the remaining runs, and their out-of-fold predictions are NaN;
3. at least ``folds`` (``min_per_class``) runs of each class among the remaining runs;
4. no feature constant over the remaining runs;
5. (cross-validation only) no feature constant within any training fold, since a Gaussian
   with zero variance has no density.

A feature with zero variance within one class only is fine: features are standardised on the
training fold (an affine map per feature, which leaves the naive Bayes posterior unchanged) and
GaussianNB adds ``var_smoothing`` × (largest variance = 1) to every class variance.

Invalid *arguments* (wrong shapes, folds < 2, labels that are not binary) raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.special import expit
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import GaussianNB

LOW, MIDDLE, HIGH = 0, 1, 2
CLASS_LABELS = ("low", "middle", "high")
EVENTS = ("low", "high")
FPR_GRID = np.linspace(0.0, 1.0, 101)


def _check_thresholds(low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"loss thresholds must satisfy low < high, got low={low!r}, high={high!r}")


def classify(final_loss, low: float = 4.0, high: float = 100.0) -> np.ndarray:
    """Outcome class per run: LOW (c_f < low), HIGH (c_f > high or non-finite), MIDDLE otherwise.

    Returns an int8 array of codes; ``CLASS_LABELS[code]`` is the class name.
    """
    e = outcome_events(final_loss, low, high)
    return np.where(e["low"], LOW, np.where(e["high"], HIGH, MIDDLE)).astype(np.int8)


def outcome_events(final_loss, low: float = 4.0, high: float = 100.0) -> dict[str, np.ndarray]:
    """The binary events {'low': c_f < low, 'high': c_f > high or c_f non-finite} (bool arrays)."""
    _check_thresholds(low, high)
    c = np.asarray(final_loss, dtype=float)
    finite = np.isfinite(c)
    return {"low": finite & (c < low), "high": ~finite | (c > high)}


@dataclass(frozen=True)
class CVResult:
    """Cross-validated naive Bayes scores of one feature set for one event.

    When ``computable`` is False, ``reason`` says why and every score field is None.
    ``mean_tpr`` is the fold-mean of each fold's ROC curve (right-continuous, piecewise linear)
    evaluated on ``fpr`` = FPR_GRID. ``oof_proba[i]`` is P(event | x_i) from the model fitted
    without run i (NaN for dropped runs, see ``used``); ``oof_log_odds`` is its logit, the score
    the AUCs are computed from (no ties from probabilities saturating at 0 or 1).
    """

    computable: bool
    reason: str
    n_positive: int
    n_negative: int
    n_dropped: int
    folds: int
    auc_mean: float | None = None
    auc_std: float | None = None
    fold_auc: np.ndarray | None = None
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


def _prepare(X, y, min_per_class: int, feature_names):
    """Apply rules 1–4; return (X kept, y kept, used mask, names, counts, reason or '')."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (runs × features), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with {X.shape[0]} entries, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must be binary (bool or 0/1)")
    y = y.astype(bool)
    names = list(feature_names) if feature_names is not None else [f"#{j}" for j in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} feature names for {X.shape[1]} features")
    used = np.isfinite(X).all(axis=1)
    X, yk = X[used], y[used]
    counts = (int(yk.sum()), int((~yk).sum()), int((~used).sum()))
    if X.shape[1] == 0:
        return X, yk, used, names, counts, "no features"
    if min(counts[:2]) < min_per_class:
        return X, yk, used, names, counts, (
            f"too few runs per class: {counts[0]} positive, {counts[1]} negative "
            f"(need {min_per_class} of each)")
    constant = np.ptp(X, axis=0) == 0
    if constant.any():
        return X, yk, used, names, counts, (
            f"feature {names[int(np.argmax(constant))]} has no variance")
    return X, yk, used, names, counts, ""


def cross_validated_auc(X, y, folds: int = 5, seed: int = 0, feature_names=None) -> CVResult:
    """Gaussian naive Bayes, stratified k-fold CV (shuffled, ``random_state=seed``).

    Per fold: standardise on the training runs, fit GaussianNB, score the held-out runs by the
    posterior log-odds ln P(E|x) − ln P(¬E|x); AUC_k = roc_auc_score on the held-out runs.
    auc_mean/auc_std are the mean and the population std (ddof=0) of the k fold AUCs.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    X, y, used, names, (n_pos, n_neg, n_drop), reason = _prepare(X, y, folds, feature_names)
    head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=n_drop, folds=folds)
    if reason:
        return CVResult(False, reason, **head)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y))
    for k, (train, _) in enumerate(splits):
        constant = np.ptp(X[train], axis=0) == 0
        if constant.any():
            return CVResult(False, f"feature {names[int(np.argmax(constant))]} has no variance "
                                   f"in training fold {k}", **head)
    log_odds = np.empty(X.shape[0])
    fold_auc = np.empty(folds)
    tpr = np.empty((folds, FPR_GRID.size))
    for k, (train, test) in enumerate(splits):
        mu, sd = X[train].mean(axis=0), X[train].std(axis=0)
        model = GaussianNB().fit((X[train] - mu) / sd, y[train])
        jll = model.predict_joint_log_proba((X[test] - mu) / sd)
        log_odds[test] = jll[:, 1] - jll[:, 0]
        fold_auc[k] = roc_auc_score(y[test], log_odds[test])
        fpr_k, tpr_k, _ = roc_curve(y[test], log_odds[test])
        tpr[k] = np.interp(FPR_GRID, fpr_k, tpr_k)
    full_log_odds = np.full(used.shape, np.nan)
    full_log_odds[used] = log_odds
    return CVResult(
        True, "", **head,
        auc_mean=float(fold_auc.mean()), auc_std=float(fold_auc.std()), fold_auc=fold_auc,
        fpr=FPR_GRID.copy(), mean_tpr=tpr.mean(axis=0),
        oof_proba=expit(full_log_odds), oof_log_odds=full_log_odds, used=used,
    )


def single_feature_auc(x, y, min_per_class: int = 5, name: str = "x") -> SingleAUC:
    """AUC of the raw feature x as a score for y: P(x_pos > x_neg) + ½ P(x_pos = x_neg).

    Same computability rules as :func:`cross_validated_auc` with ``min_per_class`` in place of
    ``folds`` (no per-fold rule).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    X, yk, _, _, (n_pos, n_neg, n_drop), reason = _prepare(x[:, None], y, min_per_class, [name])
    head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=n_drop)
    if reason:
        return SingleAUC(False, reason, **head)
    auc = float(roc_auc_score(yk, X[:, 0]))
    return SingleAUC(True, "", **head, auc=auc, auc_oriented=max(auc, 1.0 - auc))


def feature_matrix(features: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Stack ``features[name]`` (1-D, one value per run) as columns: X of shape (runs, len(names))."""
    missing = [n for n in names if n not in features]
    if missing:
        raise KeyError(f"unknown features {missing}; available: {sorted(features)}")
    shapes = {np.shape(v) for v in features.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"features must be 1-D arrays of equal length, got shapes {sorted(shapes)}")
    (n_runs,) = shapes.pop()
    columns = [np.asarray(features[k], dtype=float) for k in names]
    return np.column_stack(columns) if columns else np.empty((n_runs, 0))


AUC_COLUMNS = ("activation", "initialization", "event", "feature", "family", "t",
               "available_time", "auc_mean", "auc_std", "single_auc", "n_positive", "n_negative",
               "n_dropped", "computable", "reason")
#: probability thresholds of the early-stopping sweep
STOP_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def feature_sets(d: int) -> dict[str, tuple[str, list[str]]]:
    """Feature sets {name: (family, members)} for d exponents: each Λ_i, all Λ, CLV angles,
    CLV growth rates, CLV 5–8 growth rates (d ≥ 8) and all of them combined."""
    ftle = [f"ftle_{i}" for i in range(1, d + 1)]
    growth = [f"clv_growth_{i}" for i in range(1, d + 1)]
    angles = [f"clv_angle_{i}-{j}" for i in range(1, d + 1) for j in range(i + 1, d + 1)]
    sets = {name: ("FTLE", [name]) for name in ftle}
    sets["ftle_all"] = ("FTLE", ftle)
    sets["clv_angles"] = ("CLV", angles)
    sets["clv_growth"] = ("CLV", growth)
    if d >= 8:
        sets["clv_growth_5_8"] = ("CLV", growth[4:8])
    sets["combined"] = ("combined", ftle + growth + angles)
    return sets


def features_at(gathered, t: float, lag: int) -> dict[str, np.ndarray]:
    """Per-run features known at t* = ``t`` (FTLEs from 0 to t*) or at t* + L (fixed-lag CLVs
    with lag ``lag`` steps), from a gathered dataset (weightdyn.gather)."""
    ftle = gathered["ftle_at"].sel(prediction_time=t).transpose("network", "exponent").values
    angle = gathered["clv_angle_lagged"].sel(prediction_time=t, lag=lag).transpose(
        "network", "pair").values
    growth = gathered["clv_growth_lagged"].sel(prediction_time=t, lag=lag).transpose(
        "network", "exponent").values
    out = {f"ftle_{i + 1}": ftle[:, i] for i in range(ftle.shape[1])}
    out.update({f"clv_growth_{i + 1}": growth[:, i] for i in range(growth.shape[1])})
    pairs = gathered["pair"].values
    out.update({f"clv_angle_{pair}": angle[:, k] for k, pair in enumerate(pairs)})
    return out


def predict_combination(gathered, cfg: dict):
    """Prediction of both events at every prediction time from every feature set.

    Returns ``(dataset, rows)``: the dataset holds the AUCs, mean ROC curves, the time at which
    each predictor is available (t* for FTLE sets, t* + L for CLV sets) and the early-stopping
    trade-off of the best E_high predictor per t*; ``rows`` are the auc.csv rows (AUC_COLUMNS).
    Runs without finite features at t* (diverged before) are dropped from the classifier
    (``n_dropped``) and, for early stopping, count as stopped (they have failed already).
    """
    pcfg = cfg["prediction"]
    folds, seed, lag = int(pcfg["folds"]), int(pcfg["cv_seed"]), int(pcfg["clv_lag"])
    times = [float(t) for t in gathered["prediction_time"].values]
    eta, steps = float(cfg["training"]["learning_rate"]), int(cfg["training"]["steps"])
    events = outcome_events(gathered["final_loss"].values, cfg["classes"]["low"],
                            cfg["classes"]["high"])
    sets = feature_sets(gathered.sizes["exponent"])
    names = list(sets)
    shape = (len(EVENTS), len(names), len(times))
    auc_mean, auc_std = np.full(shape, np.nan), np.full(shape, np.nan)
    tpr = np.full(shape + (FPR_GRID.size,), np.nan)
    available = np.empty((len(names), len(times)))
    stop = {key: np.full((len(times), STOP_THRESHOLDS.size), np.nan)
            for key in ("saved", "low", "high")}
    stop_feature = []
    rows = []
    for k, t in enumerate(times):
        features = features_at(gathered, t, lag)
        lagged_time = float(gathered["lagged_available_time"].sel(lag=lag, prediction_time=t))
        best = (-np.inf, None, None)
        for j, name in enumerate(names):
            family, members = sets[name]
            available[j, k] = t if family == "FTLE" else lagged_time
            X = feature_matrix(features, members)
            for e, event in enumerate(EVENTS):
                cv = cross_validated_auc(X, events[event], folds, seed, members)
                single = (single_feature_auc(X[:, 0], events[event], folds, members[0])
                          if len(members) == 1 else None)
                if cv.computable:
                    auc_mean[e, j, k], auc_std[e, j, k] = cv.auc_mean, cv.auc_std
                    tpr[e, j, k] = cv.mean_tpr
                    if event == "high" and cv.auc_mean > best[0]:
                        best = (cv.auc_mean, name, np.where(cv.used, cv.oof_proba, 1.0))
                rows.append(dict(
                    activation=gathered.attrs["activation"],
                    initialization=gathered.attrs["initialization"], event=event, feature=name,
                    family=family, t=t, available_time=available[j, k],
                    auc_mean=cv.auc_mean, auc_std=cv.auc_std,
                    single_auc=single.auc if single is not None else None,
                    n_positive=cv.n_positive, n_negative=cv.n_negative, n_dropped=cv.n_dropped,
                    computable=cv.computable, reason=cv.reason))
        stop_feature.append(best[1] or "")
        if best[1] is not None:
            j = names.index(best[1])
            curve = early_stopping_curve(best[2], events["low"], events["high"],
                                         int(round(available[j, k] / eta)), steps, STOP_THRESHOLDS)
            stop["saved"][k] = curve.compute_saved
            if curve.low_stopped is not None:
                stop["low"][k] = curve.low_stopped
            if curve.high_caught is not None:
                stop["high"][k] = curve.high_caught
    ETF = ("event", "feature", "prediction_time")
    ds = xr.Dataset(
        {
            "auc_mean": (ETF, auc_mean, {"long_name": "cross-validated ROC AUC (mean over folds; "
                                                      "NaN: not computable)", "units": "1"}),
            "auc_std": (ETF, auc_std, {"long_name": "standard deviation of the fold AUCs",
                                       "units": "1"}),
            "roc_tpr": (ETF + ("fpr",), tpr, {"long_name": "fold-mean true-positive rate",
                                              "units": "1"}),
            "available_time": (("feature", "prediction_time"), available,
                               {"long_name": "flow time at which the predictor is available",
                                "units": "1"}),
            "family": ("feature", [sets[n][0] for n in names], {"long_name": "feature family"}),
            "stop_compute_saved": (("prediction_time", "threshold"), stop["saved"],
                                   {"long_name": "fraction of all training steps not run",
                                    "units": "1"}),
            "stop_low_lost": (("prediction_time", "threshold"), stop["low"],
                              {"long_name": "fraction of E_low runs stopped", "units": "1"}),
            "stop_high_caught": (("prediction_time", "threshold"), stop["high"],
                                 {"long_name": "fraction of E_high runs stopped", "units": "1"}),
            "stop_feature": ("prediction_time", stop_feature,
                             {"long_name": "feature set used for early stopping (best for E_high)"}),
        },
        coords={"event": list(EVENTS), "feature": names, "prediction_time": times,
                "fpr": FPR_GRID, "threshold": STOP_THRESHOLDS},
        attrs={"activation": gathered.attrs["activation"],
               "initialization": gathered.attrs["initialization"],
               "headline_time": float(pcfg["headline_time"]), "folds": folds, "clv_lag": lag},
    )
    return ds, rows


@dataclass(frozen=True)
class EarlyStopping:
    """Early-stopping trade-off per threshold (arrays aligned with ``thresholds``).

    A fraction whose denominator class is empty is None.
    """

    thresholds: np.ndarray
    n_stopped: np.ndarray
    compute_saved: np.ndarray
    low_stopped: np.ndarray | None
    high_caught: np.ndarray | None


def early_stopping_curve(p_high, is_low, is_high, stop_step: int, total_steps: int,
                         thresholds) -> EarlyStopping:
    """Stop every run with p_high > threshold at step ``stop_step`` (the step t*/η at which the
    prediction is available, including any CLV lag).

    compute_saved = n_stopped (total_steps − stop_step) / (n_runs total_steps);
    low_stopped = #(stopped ∧ E_low) / #E_low; high_caught = #(stopped ∧ E_high) / #E_high.
    p_high must be finite: give runs without a prediction (e.g. dropped for non-finite
    features) an explicit value first.
    """
    p = np.asarray(p_high, dtype=float)
    is_low = np.asarray(is_low, dtype=bool)
    is_high = np.asarray(is_high, dtype=bool)
    thr = np.asarray(thresholds, dtype=float)
    if p.ndim != 1 or p.size == 0 or is_low.shape != p.shape or is_high.shape != p.shape:
        raise ValueError(f"p_high, is_low, is_high must be 1-D, non-empty, of equal length, got "
                         f"{p.shape}, {is_low.shape}, {is_high.shape}")
    if not np.isfinite(p).all():
        raise ValueError("p_high contains non-finite values; assign runs without a prediction "
                         "an explicit probability")
    if not 0 <= stop_step <= total_steps or total_steps <= 0:
        raise ValueError(f"need 0 <= stop_step <= total_steps and total_steps > 0, got "
                         f"stop_step={stop_step}, total_steps={total_steps}")

    def n_above(values):
        return values.size - np.searchsorted(np.sort(values), thr, side="right")

    def fraction(mask):
        return n_above(p[mask]) / mask.sum() if mask.any() else None

    n_stopped = n_above(p)
    return EarlyStopping(
        thresholds=thr, n_stopped=n_stopped,
        compute_saved=n_stopped * (total_steps - stop_step) / (p.size * total_steps),
        low_stopped=fraction(is_low), high_caught=fraction(is_high))
