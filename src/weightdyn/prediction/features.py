"""Features of a training run known early in training, grouped in feature sets, and when each
set is available (docs/methods.md §3 "Prediction", "Baselines", "Fair comparisons").

Feature families (d = number of parameters = number of exponents):

* ``baseline`` (at t*): ``loss`` (ln C(t*)), ``loss_slope`` (d ln C/dt before t*),
  ``gradient_norm`` (ln |∇C(t*)|), ``theta0`` (the d initial parameters; available at t = 0),
  ``baseline_all``;
* ``FTLE`` (at t*): ``ftle_i`` (frame-invariant Λ_i(t*)), ``ftle_all``;
* ``CLV`` (fixed-lag estimate with lag L = ``clv_lag`` steps; available at t* + L·η):
  ``clv_growth`` (growth rates of ``clv_vectors``), ``clv_angles`` (angles of all pairs within
  ``clv_vectors``), ``clv_all``; only CLVs whose fixed-lag estimate has converged at lag L
  (median angle to Ginelli's CLV below :data:`CLV_CONVERGENCE_ANGLE`) should be used;
* ``ginelli_bound``: ``ginelli_growth``, ``ginelli_angles``, ``ginelli_all`` from Ginelli's CLVs,
  which use the whole future: an UPPER BOUND, available only at the end of training
  (steps × η), never a prediction and never a candidate of "best available";
* ``combined``: ``baseline+ftle`` (at t*), ``baseline+clv`` and ``baseline+ftle+clv`` (at t* + L).

Availability (:func:`available_time`): a set evaluated for prediction time t* is known at
0 ('zero'), t* ('t'), t* + L·η or the gathered ``lagged_available_time`` ('lag'), or
steps × η ('end').

Computability rules (a set that breaks one is reported with ``computable=False`` and a
``reason``, never raised, never as NaN): at least one feature; runs with a non-finite feature
are dropped for that set (``n_dropped``); at least ``folds`` runs of each class; no feature
constant over the remaining runs or within a training fold. :func:`computability` applies the
rules to one feature matrix; :func:`too_few_runs` and :func:`no_variance` word the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "CLV_CONVERGENCE_ANGLE", "Computability", "FeatureSet", "available_time", "computability",
    "feature_matrix", "feature_sets", "features_at", "lagged_times", "missing_features",
    "no_variance", "too_few_runs",
]

#: median angle (rad) to Ginelli's CLV below which a fixed-lag CLV counts as converged: the CLV
#: features may only use CLVs below it at their lag (figure 8, summary.md)
CLV_CONVERGENCE_ANGLE = 0.05


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


def lagged_times(gathered, times: Sequence[float], lag: int, eta: float) -> dict[float, float]:
    """Flow time at which the fixed-lag CLV features of each prediction time t are known: the
    gathered ``lagged_available_time`` at lag ``lag`` if present, else t + lag·η."""
    G = gathered
    if "lagged_available_time" in G and _has(G["lagged_available_time"], lag=lag):
        return {t: float(_values(G, "lagged_available_time", lag=lag, prediction_time=t))
                for t in times}
    return {t: t + lag * eta for t in times}


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
# computability rules
# --------------------------------------------------------------------------------------------

def too_few_runs(n_positive: int, n_negative: int, need: int) -> str:
    """Reason of a set or best-available predictor with fewer than ``need`` runs in a class."""
    return (f"too few runs per class: {n_positive} positive, {n_negative} negative "
            f"(need {need} of each)")


def no_variance(name: str) -> str:
    """Reason of a set with feature ``name`` constant over the runs it is scored on."""
    return f"feature {name} has no variance"


def missing_features(missing: Sequence[str]) -> str:
    """Reason of a set whose members ``missing`` are absent from the features ('' if none)."""
    if not missing:
        return "no features"
    return f"missing features: {', '.join(missing[:3])}" + (" …" if len(missing) > 3 else "")


class Computability(NamedTuple):
    """Result of :func:`computability`: the kept rows of X and y, the mask ``used`` of kept runs,
    the feature ``names``, ``counts`` = (n_positive, n_negative, n_dropped) and ``reason``
    ('' if the rules hold)."""

    X: np.ndarray
    y: np.ndarray
    used: np.ndarray
    names: list
    counts: tuple
    reason: str


def computability(X, y, min_per_class: int, feature_names=None) -> Computability:
    """Apply the computability rules (module docstring) to the feature matrix X (runs ×
    features) and binary labels y, with ``min_per_class`` runs needed in each class."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (runs × features), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with {X.shape[0]} entries, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must be binary (bool or 0/1)")
    y = y.astype(bool)
    names = (list(feature_names) if feature_names is not None
             else [f"#{j}" for j in range(X.shape[1])])
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} feature names for {X.shape[1]} features")
    used = np.isfinite(X).all(axis=1)
    X, yk = X[used], y[used]
    counts = (int(yk.sum()), int((~yk).sum()), int((~used).sum()))
    if X.shape[1] == 0:
        reason = "no features"
    elif min(counts[:2]) < min_per_class:
        reason = too_few_runs(counts[0], counts[1], min_per_class)
    else:
        constant = np.ptp(X, axis=0) == 0
        reason = no_variance(names[int(np.argmax(constant))]) if constant.any() else ""
    return Computability(X, yk, used, names, counts, reason)
