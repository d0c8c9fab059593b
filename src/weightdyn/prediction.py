"""Prediction of the final training loss from quantities known early in training
(design.md §3 "Prediction", "Baselines", "Fair comparisons"; §5 figures 6, 7, 9).

Outcome events (thresholds configurable):

* ``E_high = {c_f > high or c_f not finite}``  (failed runs; always reported),
* ``E_low  = {c_f < low}``                     (reported only where the middle class
  low ≤ c_f ≤ high holds at least ``min_middle_fraction`` of the runs; otherwise E_low is the
  complement of E_high up to a handful of runs and is omitted, with a note).

Each event is predicted from a feature set by Gaussian naive Bayes (weightdyn.classifier),
standardised inside each training fold, scored by repeated stratified k-fold CV
(``repeats`` × ``folds``, random_state = cv_seed + r). Per set, event and prediction time t*:

* ``auc_mean``  = mean over repeats of the pooled out-of-fold AUC;
* ``auc_std``   = std over repeats (CV instability, not an uncertainty);
* ``auc_ci_low/high`` = auc_mean ± 1.96 √(mean over repeats of the DeLong variance), in [0, 1];
* ``single_auc`` = AUC of the raw feature used as a score (single-member sets; model-free).

Feature families (d = number of parameters = number of exponents):

* ``baseline`` (at t*): ``loss`` (ln C(t*)), ``loss_slope`` (d ln C/dt before t*),
  ``gradient_norm`` (ln |∇C(t*)|), ``theta0`` (the d initial parameters; available at t = 0),
  ``baseline_all``;
* ``FTLE`` (at t*): ``ftle_i`` (frame-invariant Λ_i(t*)), ``ftle_all``;
* ``CLV`` (fixed-lag estimate with lag L = ``clv_lag`` steps; available at t* + L·η):
  ``clv_growth`` (growth rates of ``clv_vectors``), ``clv_angles`` (angles of all pairs within
  ``clv_vectors``), ``clv_all``;
* ``ginelli_bound``: ``ginelli_growth``, ``ginelli_angles``, ``ginelli_all`` from Ginelli's CLVs,
  which use the whole future: an UPPER BOUND, available only at the end of training
  (steps × η), never a prediction and never a candidate of "best available";
* ``combined``: ``baseline+ftle`` (at t*), ``baseline+clv`` and ``baseline+ftle+clv`` (at t* + L).

Best available by time τ (never chosen on the folds that score it). For each family F of
:data:`BEST_FAMILIES` and each τ in the sorted union of prediction times and t* + L·η, the
candidates are F's sets at the latest prediction time whose available time is ≤ τ. The best is
chosen by nested CV (:func:`weightdyn.classifier.nested_best`): inner stratified ``folds``-fold
CV on each outer training fold picks the set with the highest inner AUC; it is fitted on the
outer training fold and scores the outer test fold. The pseudo-predictor's out-of-fold scores
are summarised like a set's. All families at one τ are scored on the same runs U_τ (those with
finite values of every candidate at τ), so each indicator family's best is compared with the
baseline family's best by the paired DeLong test, repeat by repeat
(:func:`weightdyn.classifier.delong_paired_repeats`: Δ = difference of the two auc_mean, its
95 % CI from the mean paired variance, two-sided p). The family ``all`` (best of every candidate) feeds early
stopping. The nested part uses the same ``repeats`` outer repeats. Cost: 8000 runs × 8 times
× d = 9, 10 × 5 folds: ≈ 17 s (E_high only) / ≈ 33 s (both events) on one core. BLAS is
limited to one thread (its threads only add overhead to these small products and
oversubscribe a busy machine).

Computability rules (a set that breaks one is reported with ``computable=False`` and a
``reason``, never raised, never as NaN): at least one feature; runs with a non-finite feature
are dropped for that set (``n_dropped``); at least ``folds`` runs of each class; no feature
constant over the remaining runs or within a training fold.

Early stopping (figure 9): at each prediction time t* the out-of-fold P(E_high) of the nested
best of ALL families available by τ = t* (repeat-mean log-odds) decides: runs with p > threshold
are stopped at step n* = t*/η; runs without finite features at t* (diverged) count as stopped.
Chance (stopping a random fraction f): lost = f, saved = f (T − n*)/T. Best possible (stop
exactly the E_high runs): lost = 0, saved = frac_high (T − n*)/T.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.special import expit
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from .classifier import (
    FPR_GRID, cv_set_scores, delong_paired_repeats, nested_best, summarise_many, summarise_scores,
)
from .outcomes import EVENTS, MIDDLE, classify, outcome_events

#: median angle (rad) to Ginelli's CLV below which a fixed-lag CLV counts as converged: the CLV
#: features may only use CLVs below it at their lag (figure 8, summary.md)
CLV_CONVERGENCE_ANGLE = 0.05
#: families whose nested best is reported by availability time ("all" = best of all of them)
BEST_FAMILIES = ("baseline", "FTLE", "CLV", "combined", "all")
INDICATOR_FAMILIES = ("FTLE", "CLV", "combined")
#: probability thresholds of the early-stopping sweep
STOP_THRESHOLDS = np.linspace(0.0, 1.0, 101)

AUC_COLUMNS = ("activation", "initialization", "event", "kind", "family", "feature", "t",
               "available_time", "auc_mean", "auc_std", "auc_ci_low", "auc_ci_high",
               "single_auc", "n_positive", "n_negative", "n_dropped", "computable", "reason",
               "chosen", "delta_vs_baseline", "delta_ci_low", "delta_ci_high", "p_vs_baseline")


# --------------------------------------------------------------------------------------------
# outcome classes and events
# --------------------------------------------------------------------------------------------

def low_event_rule(final_loss, low: float, high: float, min_middle_fraction: float):
    """Whether E_low is reported: the middle class (finite, low ≤ c_f ≤ high) must hold at least
    ``min_middle_fraction`` of the runs. Returns (include, n_middle, note); ``note`` is '' when
    E_low is reported, else one sentence saying why not."""
    codes = classify(final_loss, low, high)
    n, n_mid = codes.size, int((codes == MIDDLE).sum())
    include = n > 0 and n_mid >= min_middle_fraction * n
    note = "" if include else (
        f"E_low is not reported: the middle class ({low:g} <= c_f <= {high:g}) holds {n_mid} of "
        f"{n} runs ({n_mid / max(n, 1):.2%}, below {min_middle_fraction:.0%}), so E_low is the "
        f"complement of E_high up to those runs.")
    return include, n_mid, note


# --------------------------------------------------------------------------------------------
# single feature sets (reference API)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CVResult:
    """Cross-validated naive Bayes scores of one feature set for one event.

    When ``computable`` is False, ``reason`` says why and every score field is None.
    ``repeat_auc[r]`` is the pooled out-of-fold AUC of repeat r; ``auc_mean``/``auc_std`` their
    mean and std; ``auc_ci_low/high`` the DeLong interval (module docstring). ``mean_tpr`` is
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


def _prepare(X, y, min_per_class: int, feature_names):
    """Apply the computability rules before CV; return (X kept, y kept, used, names, counts,
    reason or '')."""
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


def cross_validated_auc(X, y, folds: int = 5, seed: int = 0, feature_names=None,
                        repeats: int = 1) -> CVResult:
    """Gaussian naive Bayes on the feature set X (runs × features), repeated stratified k-fold
    CV (``repeats`` × ``folds``, random_state = seed + r), standardised on each training fold;
    scores are the posterior log-odds ln P(E|x) − ln P(¬E|x) (module docstring for the
    summary statistics). :func:`predict_combination` computes exactly this for every set."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    X, y, used, names, (n_pos, n_neg, n_drop), reason = _prepare(X, y, folds, feature_names)
    head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=n_drop, folds=folds,
                repeats=repeats)
    if reason:
        return CVResult(False, reason, **head)
    scores = cv_set_scores(X, y, np.ones((X.shape[1], 1)), folds, repeats, seed, names)
    if scores.bad[0]:
        return CVResult(False, scores.bad[0], **head)
    oof = scores.oof[:, :, 0]
    summary = summarise_scores(oof, y)
    from .classifier import delong_variance
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


# --------------------------------------------------------------------------------------------
# feature sets, features and availability
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureSet:
    """A feature set: ``family``, ``members`` (names in :func:`features_at`) and ``timing``:
    'zero' (known at t = 0), 't' (at t*), 'lag' (at t* + L·η), 'end' (end of training)."""

    name: str
    family: str
    members: tuple[str, ...]
    timing: str


def feature_sets(d: int, clv_vectors: Sequence[int] = (5, 6, 7, 8),
                 params: Sequence[str] | None = None) -> dict[str, FeatureSet]:
    """All feature sets for d parameters (= exponents); CLV sets use the 1-based CLV indices
    ``clv_vectors`` that are ≤ d (all pairs i < j among them for the angles); ``params`` names
    the d initial parameters (default '1' … 'd')."""
    vecs = sorted({int(i) for i in clv_vectors if 1 <= int(i) <= d})
    params = [str(p) for p in params] if params is not None else [str(i) for i in range(1, d + 1)]
    ftle = [f"ftle_{i}" for i in range(1, d + 1)]
    pairs = [f"{i}-{j}" for a, i in enumerate(vecs) for j in vecs[a + 1:]]
    growth = [f"clv_growth_{i}" for i in vecs]
    angles = [f"clv_angle_{p}" for p in pairs]
    g_growth = [f"ginelli_growth_{i}" for i in vecs]
    g_angles = [f"ginelli_angle_{p}" for p in pairs]
    theta0 = [f"theta0_{p}" for p in params]
    base = ["loss", "loss_slope", "gradient_norm"] + theta0
    out = [FeatureSet("loss", "baseline", ("loss",), "t"),
           FeatureSet("loss_slope", "baseline", ("loss_slope",), "t"),
           FeatureSet("gradient_norm", "baseline", ("gradient_norm",), "t"),
           FeatureSet("theta0", "baseline", tuple(theta0), "zero"),
           FeatureSet("baseline_all", "baseline", tuple(base), "t")]
    out += [FeatureSet(f, "FTLE", (f,), "t") for f in ftle]
    out += [FeatureSet("ftle_all", "FTLE", tuple(ftle), "t"),
            FeatureSet("clv_growth", "CLV", tuple(growth), "lag"),
            FeatureSet("clv_angles", "CLV", tuple(angles), "lag"),
            FeatureSet("clv_all", "CLV", tuple(growth + angles), "lag"),
            FeatureSet("ginelli_growth", "ginelli_bound", tuple(g_growth), "end"),
            FeatureSet("ginelli_angles", "ginelli_bound", tuple(g_angles), "end"),
            FeatureSet("ginelli_all", "ginelli_bound", tuple(g_growth + g_angles), "end"),
            FeatureSet("baseline+ftle", "combined", tuple(base + ftle), "t"),
            FeatureSet("baseline+clv", "combined", tuple(base + growth + angles), "lag"),
            FeatureSet("baseline+ftle+clv", "combined", tuple(base + ftle + growth + angles),
                       "lag")]
    return {fs.name: fs for fs in out}


def _values(G, name, **sel):
    da = G[name]
    for dim, value in sel.items():
        if dim in da.dims:
            da = da.sel({dim: value})
    return da


def _has(da, **sel) -> bool:
    """Whether every selected coordinate value exists in ``da`` (a missing lag gives no
    features instead of an error)."""
    return all(dim not in da.dims or value in set(da[dim].values.tolist())
               for dim, value in sel.items())


def features_at(gathered, t: float, lag: int, clv_vectors: Sequence[int] = (5, 6, 7, 8)
                ) -> dict[str, np.ndarray]:
    """Per-run features for prediction time t* = ``t`` (names as in :func:`feature_sets`).

    ``loss`` = ln C(t*), ``loss_slope`` = d ln C/dt before t*, ``gradient_norm`` = ln |∇C(t*)|,
    ``theta0_<param>``, ``ftle_<i>`` = Λ_i(t*), fixed-lag ``clv_growth_<i>``/``clv_angle_<i-j>``
    (lag ``lag`` steps) and Ginelli ``ginelli_growth_<i>``/``ginelli_angle_<i-j>`` at t*.
    Variables missing from the dataset give no features (their sets are not computable).
    """
    G = gathered
    vecs = [int(i) for i in clv_vectors]
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "loss_at" in G:
            out["loss"] = np.log(_values(G, "loss_at", prediction_time=t).values.astype(float))
        if "log_loss_slope_at" in G:
            out["loss_slope"] = _values(G, "log_loss_slope_at", prediction_time=t).values
        if "gradient_norm_at" in G:
            out["gradient_norm"] = np.log(
                _values(G, "gradient_norm_at", prediction_time=t).values.astype(float))
    if "theta0" in G:
        th = G["theta0"].transpose("network", "param")
        for k, p in enumerate(th["param"].values):
            out[f"theta0_{p}"] = th.values[:, k]
    if "ftle_at" in G:
        f = _values(G, "ftle_at", prediction_time=t).transpose("network", "exponent")
        for k, e in enumerate(f["exponent"].values):
            out[f"ftle_{int(e)}"] = f.values[:, k]
    for var, prefix, extra in (("clv_growth_lagged", "clv_growth", {"lag": lag}),
                               ("clv_growth_ginelli_at", "ginelli_growth", {})):
        if var in G and _has(G[var], **extra):
            g = _values(G, var, prediction_time=t, **extra).transpose("network", "exponent")
            for k, e in enumerate(g["exponent"].values):
                if int(e) in vecs:
                    out[f"{prefix}_{int(e)}"] = g.values[:, k]
    for var, prefix, extra in (("clv_angle_lagged", "clv_angle", {"lag": lag}),
                               ("clv_angle_ginelli_at", "ginelli_angle", {})):
        if var in G and _has(G[var], **extra):
            a = _values(G, var, prediction_time=t, **extra).transpose("network", "pair")
            for k, p in enumerate(a["pair"].values):
                i, j = (int(v) for v in str(p).split("-"))
                if i in vecs and j in vecs:
                    out[f"{prefix}_{p}"] = a.values[:, k]
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def available_time(fs: FeatureSet, t: float, lagged_time: float, end_time: float) -> float:
    """Flow time at which set ``fs`` evaluated for prediction time t is known."""
    return {"zero": 0.0, "t": t, "lag": lagged_time, "end": end_time}[fs.timing]


def _setting(G, cfg, key, section="training"):
    if key in G.attrs:
        return G.attrs[key]
    return cfg[section][key]


# --------------------------------------------------------------------------------------------
# the whole prediction of one (activation, initialization)
# --------------------------------------------------------------------------------------------

def _row(G, event, kind, family, feature, t, avail, **kw):
    row = dict.fromkeys(AUC_COLUMNS)
    row.update(activation=G.attrs["activation"], initialization=G.attrs["initialization"],
               event=event, kind=kind, family=family, feature=feature, t=float(t),
               available_time=float(avail))
    row.update(kw)
    return row


def _label(name, t):
    return f"{name}@{0.0 if name == 'theta0' else t:g}"


def predict_combination(gathered, cfg: dict):
    """Prediction of E_high (and E_low where the middle-class rule allows) for one
    (activation, initialization): every feature set at every prediction time, and the nested
    best of each family available by each time τ (module docstring).

    Returns ``(dataset, rows)``; ``rows`` are the auc.csv rows (:data:`AUC_COLUMNS`), with
    ``kind`` = 'set' or 'best_available'. Dataset variables (coords event, feature,
    prediction_time, fpr, best_family, tau, threshold):

    * set level: auc_mean, auc_std, auc_ci_low, auc_ci_high, single_auc, n_positive,
      n_negative, n_dropped (event, feature, prediction_time); roc_tpr (… , fpr);
      available_time (feature, prediction_time); family (feature);
    * best available: best_auc_mean, best_auc_std, best_auc_ci_low, best_auc_ci_high,
      best_chosen (str), best_chosen_fraction, best_delta, best_delta_ci_low,
      best_delta_ci_high, best_p, best_n_positive, best_n_negative, best_n_dropped
      (event, best_family, tau); best_roc_tpr (…, fpr);
    * early stopping: stop_compute_saved, stop_low_lost, stop_high_caught
      (prediction_time, threshold); stop_step, stop_best_saved, stop_chance_slope,
      stop_feature (prediction_time);
    * attrs: activation, initialization, headline_time, folds, repeats,
      cv_seed, clv_lag, clv_vectors, events, low, high, n_middle, e_low_note,
      ginelli_available_time, total_steps, learning_rate, early_stopping_predictor.
    """
    with threadpool_limits(limits=1):
        return _predict_combination(gathered, cfg)


def _predict_combination(gathered, cfg: dict):
    G = gathered
    pcfg = cfg["prediction"]
    folds, repeats, seed = int(pcfg["folds"]), int(pcfg["repeats"]), int(pcfg["cv_seed"])
    lag = int(pcfg["clv_lag"])
    clv_vectors = [int(i) for i in pcfg["clv_vectors"]]
    min_mid = float(pcfg["min_middle_fraction"])
    low, high = float(cfg["classes"]["low"]), float(cfg["classes"]["high"])
    eta = float(_setting(G, cfg, "learning_rate"))
    steps = int(_setting(G, cfg, "steps"))
    end_time = steps * eta
    times = sorted(float(t) for t in G["prediction_time"].values)
    d = int(G.sizes["exponent"])
    params = list(G["param"].values) if "param" in G.coords else None
    sets = feature_sets(d, clv_vectors, params)
    names = list(sets)
    final_loss = G["final_loss"].values
    ev = outcome_events(final_loss, low, high)
    include_low, n_middle, low_note = low_event_rule(final_loss, low, high, min_mid)
    events = ["high"] + (["low"] if include_low else [])
    feats = {t: features_at(G, t, lag, clv_vectors) for t in times}
    if "lagged_available_time" in G and _has(G["lagged_available_time"], lag=lag):
        lagged = {t: float(_values(G, "lagged_available_time", lag=lag, prediction_time=t))
                  for t in times}
    else:
        lagged = {t: t + lag * eta for t in times}
    avail = {n: {t: available_time(sets[n], t, lagged[t], end_time) for t in times}
             for n in names}

    E, S, T = len(events), len(names), len(times)
    set_vars = {k: np.full((E, S, T), np.nan) for k in (
        "auc_mean", "auc_std", "auc_ci_low", "auc_ci_high", "single_auc", "n_positive",
        "n_negative", "n_dropped")}
    roc = np.full((E, S, T, FPR_GRID.size), np.nan)
    rows = []

    # ---- every set at every prediction time ----
    for k, t in enumerate(times):
        F = feats[t]
        missing = {n: [m for m in sets[n].members if m not in F] for n in names}
        groups: dict[bytes, list[str]] = {}
        used_of = {}
        for n in names:
            if missing[n] or not sets[n].members:
                continue
            used = np.all([np.isfinite(F[m]) for m in sets[n].members], axis=0)
            used_of[n] = used
            groups.setdefault(used.tobytes(), []).append(n)
        results = {}  # (event, name) -> dict
        for key, members_of_group in groups.items():
            used = used_of[members_of_group[0]]
            cols = list(dict.fromkeys(m for n in members_of_group for m in sets[n].members))
            X = np.column_stack([F[c][used] for c in cols])
            M = np.zeros((len(cols), len(members_of_group)))
            for s, n in enumerate(members_of_group):
                M[[cols.index(m) for m in sets[n].members], s] = 1.0
            const = np.ptp(X, axis=0) == 0 if X.shape[0] else np.ones(len(cols), bool)
            for event in events:
                y = ev[event][used]
                n_pos, n_neg = int(y.sum()), int((~y).sum())
                head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=int((~used).sum()))
                if min(n_pos, n_neg) < folds:
                    for n in members_of_group:
                        results[event, n] = dict(head, computable=False, reason=(
                            f"too few runs per class: {n_pos} positive, {n_neg} negative "
                            f"(need {folds} of each)"))
                    continue
                sc = cv_set_scores(X, y, M, folds, repeats, seed, cols)
                mean, std, lo, hi, tpr = summarise_many(sc.oof, y)
                for s, n in enumerate(members_of_group):
                    bad = [c for c in sets[n].members if const[cols.index(c)]]
                    reason = f"feature {bad[0]} has no variance" if bad else sc.bad[s]
                    if reason:
                        results[event, n] = dict(head, computable=False, reason=reason)
                        continue
                    results[event, n] = dict(head, computable=True, reason="",
                                             auc_mean=mean[s], auc_std=std[s], auc_ci_low=lo[s],
                                             auc_ci_high=hi[s], tpr=tpr[s])
                    if len(sets[n].members) == 1:
                        x = F[sets[n].members[0]][used]
                        results[event, n]["single_auc"] = float(roc_auc_score(y, x))
        for e, event in enumerate(events):
            for j, n in enumerate(names):
                fs = sets[n]
                res = results.get((event, n))
                if res is None:
                    why = (f"missing features: {', '.join(missing[n][:3])}"
                           + (" …" if len(missing[n]) > 3 else "")) if missing[n] else "no features"
                    res = dict(computable=False, reason=why, n_positive=None, n_negative=None,
                               n_dropped=None)
                for v in set_vars:
                    if res.get(v) is not None:
                        set_vars[v][e, j, k] = res[v]
                if res.get("tpr") is not None:
                    roc[e, j, k] = res["tpr"]
                rows.append(_row(G, event, "set", fs.family, n, t, avail[n][t],
                                 **{c: res.get(c) for c in (
                                     "auc_mean", "auc_std", "auc_ci_low", "auc_ci_high",
                                     "single_auc", "n_positive", "n_negative", "n_dropped",
                                     "computable", "reason")}))

    # ---- best available by τ (nested) ----
    taus = sorted({round(t, 12) for t in times} | {round(v, 12) for v in lagged.values()})
    B, U = len(BEST_FAMILIES), len(taus)
    best_vars = {k: np.full((E, B, U), np.nan) for k in (
        "best_auc_mean", "best_auc_std", "best_auc_ci_low", "best_auc_ci_high",
        "best_chosen_fraction", "best_delta", "best_delta_ci_low", "best_delta_ci_high",
        "best_p", "best_n_positive", "best_n_negative", "best_n_dropped")}
    best_chosen = np.full((E, B, U), "", dtype=object)
    best_roc = np.full((E, B, U, FPR_GRID.size), np.nan)
    stop_scores = {}  # tau -> (p_high over all runs, label)
    for u, tau in enumerate(taus):
        cands = []  # (family, name, t_used)
        for n in names:
            fs = sets[n]
            if fs.family not in BEST_FAMILIES or any(m not in feats[times[0]]
                                                     for m in fs.members):
                continue
            ok = [t for t in times if avail[n][t] <= tau + 1e-12]
            if ok:
                cands.append((fs.family, n, times[0] if fs.timing == "zero" else max(ok)))
        cols = list(dict.fromkeys((m, t) for _, n, t in cands for m in sets[n].members))
        if cols:
            Xall = np.column_stack([feats[t][m] for m, t in cols])
            used = np.isfinite(Xall).all(axis=1)
            M = np.zeros((len(cols), len(cands)))
            for c, (_, n, t) in enumerate(cands):
                M[[cols.index((m, t)) for m in sets[n].members], c] = 1.0
        else:
            used = np.zeros(final_loss.size, dtype=bool)
        groups = {f: [c for c, cand in enumerate(cands) if cand[0] == f]
                  for f in BEST_FAMILIES if f != "all"}
        groups["all"] = list(range(len(cands)))
        for e, event in enumerate(events):
            y = ev[event][used]
            n_pos, n_neg, n_drop = int(y.sum()), int((~y).sum()), int((~used).sum())
            head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=n_drop)
            fam_res = {}
            if min(n_pos, n_neg) >= folds and cols:
                nb = nested_best(Xall[used], y, M, {f: g for f, g in groups.items() if g},
                                 folds, repeats, seed)
            else:
                nb = None
            for b, fam in enumerate(BEST_FAMILIES):
                res = dict(head, computable=False, reason="")
                if not groups[fam]:
                    res["reason"] = f"no {fam} set available by {tau:g}"
                elif nb is None:
                    res["reason"] = (f"too few runs per class: {n_pos} positive, {n_neg} "
                                     f"negative (need {folds} of each)")
                elif (nb.choice[fam] < 0).any():
                    res["reason"] = f"no {fam} candidate could be fitted in some fold"
                else:
                    oof = nb.oof[fam]
                    sm = summarise_scores(oof, y)
                    counts = Counter(int(c) for c in nb.choice[fam].ravel())
                    top, n_top = counts.most_common(1)[0]
                    _, cname, ct = cands[groups[fam][top]]
                    res.update(computable=True, auc_mean=sm.auc_mean, auc_std=sm.auc_std,
                               auc_ci_low=sm.auc_ci_low, auc_ci_high=sm.auc_ci_high,
                               tpr=sm.mean_tpr, oof=oof, score=oof.mean(axis=0),
                               chosen=f"{_label(cname, ct)} ({n_top}/{nb.choice[fam].size} "
                                      "folds)",
                               chosen_fraction=n_top / nb.choice[fam].size)
                fam_res[fam] = res
            base = fam_res["baseline"]
            for fam in INDICATOR_FAMILIES:
                res = fam_res[fam]
                if res["computable"] and base["computable"]:
                    pd_ = delong_paired_repeats(res["oof"], base["oof"], y)
                    res.update(delta=pd_.delta, delta_ci_low=pd_.ci_low,
                               delta_ci_high=pd_.ci_high, p=pd_.p_value)
            if event == "high" and fam_res["all"]["computable"]:
                p = np.ones(final_loss.size)
                p[used] = expit(fam_res["all"]["score"])
                stop_scores[tau] = (p, ~used, fam_res["all"]["chosen"])
            for b, fam in enumerate(BEST_FAMILIES):
                res = fam_res[fam]
                for src, dst in (("auc_mean", "best_auc_mean"), ("auc_std", "best_auc_std"),
                                 ("auc_ci_low", "best_auc_ci_low"),
                                 ("auc_ci_high", "best_auc_ci_high"),
                                 ("chosen_fraction", "best_chosen_fraction"),
                                 ("delta", "best_delta"), ("delta_ci_low", "best_delta_ci_low"),
                                 ("delta_ci_high", "best_delta_ci_high"), ("p", "best_p"),
                                 ("n_positive", "best_n_positive"),
                                 ("n_negative", "best_n_negative"),
                                 ("n_dropped", "best_n_dropped")):
                    if res.get(src) is not None:
                        best_vars[dst][e, b, u] = res[src]
                best_chosen[e, b, u] = res.get("chosen", "")
                if res.get("tpr") is not None:
                    best_roc[e, b, u] = res["tpr"]
                rows.append(_row(G, event, "best_available", fam, f"best_{fam}", tau, tau,
                                 **{c: res.get(c) for c in (
                                     "auc_mean", "auc_std", "auc_ci_low", "auc_ci_high",
                                     "n_positive", "n_negative", "n_dropped", "computable",
                                     "reason", "chosen")},
                                 delta_vs_baseline=res.get("delta"),
                                 delta_ci_low=res.get("delta_ci_low"),
                                 delta_ci_high=res.get("delta_ci_high"),
                                 p_vs_baseline=res.get("p")))

    # ---- early stopping with the nested best of all families available by t* ----
    stop = {key: np.full((T, STOP_THRESHOLDS.size), np.nan) for key in ("saved", "low", "high")}
    stop_step = np.array([int(round(t / eta)) for t in times])
    frac_high = float(ev["high"].mean())
    slope = (steps - stop_step) / steps
    stop_feature = []
    for k, t in enumerate(times):
        got = stop_scores.get(round(t, 12))
        stop_feature.append(got[2] if got else "")
        if got is None:
            continue
        curve = early_stopping_curve(got[0], ev["low"], ev["high"], int(stop_step[k]), steps,
                                     STOP_THRESHOLDS, always_stopped=got[1])
        stop["saved"][k] = curve.compute_saved
        if curve.low_stopped is not None:
            stop["low"][k] = curve.low_stopped
        if curve.high_caught is not None:
            stop["high"][k] = curve.high_caught

    ETF = ("event", "feature", "prediction_time")
    EBU = ("event", "best_family", "tau")
    one = {"units": "1"}
    data = {
        "auc_mean": (ETF, set_vars["auc_mean"], {"long_name": "mean over repeats of the pooled "
                                                 "out-of-fold ROC AUC (NaN: not computable)",
                                                 **one}),
        "auc_std": (ETF, set_vars["auc_std"], {"long_name": "std over repeats of the pooled "
                                               "AUC (CV instability, not an uncertainty)", **one}),
        "auc_ci_low": (ETF, set_vars["auc_ci_low"], {"long_name": "95 % DeLong interval, lower",
                                                     **one}),
        "auc_ci_high": (ETF, set_vars["auc_ci_high"], {"long_name": "95 % DeLong interval, "
                                                       "upper", **one}),
        "single_auc": (ETF, set_vars["single_auc"], {"long_name": "AUC of the raw feature "
                                                     "(single-member sets)", **one}),
        "n_positive": (ETF, set_vars["n_positive"], {"long_name": "runs in the event"}),
        "n_negative": (ETF, set_vars["n_negative"], {"long_name": "runs not in the event"}),
        "n_dropped": (ETF, set_vars["n_dropped"], {"long_name": "runs dropped (non-finite)"}),
        "roc_tpr": (ETF + ("fpr",), roc, {"long_name": "repeat-mean TPR of the pooled "
                                          "out-of-fold ROC", **one}),
        "available_time": (("feature", "prediction_time"),
                           np.array([[avail[n][t] for t in times] for n in names]),
                           {"long_name": "flow time at which the predictor is available"}),
        "family": ("feature", np.array([sets[n].family for n in names], dtype=object),
                   {"long_name": "feature family"}),
        "best_roc_tpr": (EBU + ("fpr",), best_roc, {"long_name": "repeat-mean TPR of the "
                                                    "nested best set's out-of-fold ROC", **one}),
        "best_chosen": (EBU, best_chosen, {"long_name": "most frequent nested choice "
                                           "(set@prediction time, folds)"}),
        "stop_compute_saved": (("prediction_time", "threshold"), stop["saved"],
                               {"long_name": "fraction of all training steps not run", **one}),
        "stop_low_lost": (("prediction_time", "threshold"), stop["low"],
                          {"long_name": "fraction of E_low runs stopped", **one}),
        "stop_high_caught": (("prediction_time", "threshold"), stop["high"],
                             {"long_name": "fraction of E_high runs stopped", **one}),
        "stop_step": ("prediction_time", stop_step, {"long_name": "step n* at which runs stop"}),
        "stop_best_saved": ("prediction_time", frac_high * slope,
                            {"long_name": "compute saved by stopping exactly the E_high runs "
                                          "(E_low lost: 0)", **one}),
        "stop_chance_slope": ("prediction_time", slope,
                              {"long_name": "(T - n*)/T: chance stopping of a fraction f "
                                            "saves f (T - n*)/T and loses f", **one}),
        "stop_feature": ("prediction_time", np.array(stop_feature, dtype=object),
                         {"long_name": "nested best of all families available by t* "
                                       "(most frequent choice)"}),
    }
    for k, v in best_vars.items():
        data[k] = (EBU, v, {"long_name": k.replace("_", " ")})
    ds = xr.Dataset(
        data,
        coords={"event": events, "feature": names, "prediction_time": times, "fpr": FPR_GRID,
                "best_family": list(BEST_FAMILIES), "tau": taus, "threshold": STOP_THRESHOLDS},
        attrs={"activation": G.attrs["activation"], "initialization": G.attrs["initialization"],
               "headline_time": float(pcfg.get("headline_time", times[0])), "folds": folds,
               "repeats": repeats, "cv_seed": seed,
               "clv_lag": lag, "clv_vectors": np.array(clv_vectors, dtype=int),
               "events": " ".join(events), "low": low, "high": high, "n_middle": n_middle,
               "e_low_note": low_note, "ginelli_available_time": end_time,
               "total_steps": steps, "learning_rate": eta,
               "early_stopping_predictor": "nested best of all families available by t*"},
    )
    ds["tau"].attrs["long_name"] = "availability time (flow time)"
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
                         thresholds, always_stopped=None) -> EarlyStopping:
    """Stop every run with p_high > threshold at step ``stop_step`` (the step t*/η at which the
    prediction is available, including any CLV lag).

    compute_saved = n_stopped (total_steps − stop_step) / (n_runs total_steps);
    low_stopped = #(stopped ∧ E_low) / #E_low; high_caught = #(stopped ∧ E_high) / #E_high.
    p_high must be finite: give runs without a prediction (e.g. dropped for non-finite
    features) an explicit value first, and mark them in ``always_stopped`` (bool mask) to count
    them as stopped at every threshold (runs that diverged before n* have failed already).
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

    forced = (np.zeros(p.shape, dtype=bool) if always_stopped is None
              else np.asarray(always_stopped, dtype=bool))

    def n_above(mask):
        values = p[mask & ~forced]
        return (values.size - np.searchsorted(np.sort(values), thr, side="right")
                + int((mask & forced).sum()))

    everyone = np.ones(p.shape, dtype=bool)

    def fraction(mask):
        return n_above(mask) / mask.sum() if mask.any() else None

    n_stopped = n_above(everyone)
    return EarlyStopping(
        thresholds=thr, n_stopped=n_stopped,
        compute_saved=n_stopped * (total_steps - stop_step) / (p.size * total_steps),
        low_stopped=fraction(is_low), high_caught=fraction(is_high))


def chance_saving(lost, stop_step: int, total_steps: int):
    """Compute saved by stopping a random fraction f = ``lost`` of the runs at ``stop_step``:
    the same fraction f of the E_low runs is lost, and f (T − n*)/T of the compute is saved."""
    return np.asarray(lost, dtype=float) * (total_steps - stop_step) / total_steps


def best_possible_saving(frac_high: float, stop_step: int, total_steps: int) -> float:
    """Compute saved by stopping exactly the E_high runs at ``stop_step`` (no E_low run lost)."""
    return float(frac_high) * (total_steps - stop_step) / total_steps
