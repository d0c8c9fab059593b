"""The prediction study of one (activation, initialization): every feature set at every
prediction time, the nested best of each family available by each time τ, early stopping, and
the auc.csv rows and the prediction dataset (docs/methods.md §3 "Prediction", "Baselines",
"Fair comparisons"; §5 figures 6, 7, 9).

Outcome events (:mod:`weightdyn.outcomes`; thresholds configurable):

* ``E_high = {c_f > high or c_f not finite}``  (failed runs; always reported),
* ``E_low  = {c_f < low}``                     (reported only where the middle class
  low ≤ c_f ≤ high holds at least ``min_middle_fraction`` of the runs, :func:`low_event_rule`;
  otherwise E_low is the complement of E_high up to a handful of runs and is omitted, with a
  note).

Each event is predicted from each feature set (:mod:`.features`) by Gaussian naive Bayes,
standardised inside each training fold, scored by repeated stratified k-fold CV
(``repeats`` × ``folds``, random_state = cv_seed + r; :mod:`.classifier`). Per set, event and
prediction time t*: ``auc_mean``, ``auc_std``, ``auc_ci_low/high`` (DeLong, :mod:`.statistics`)
and ``single_auc`` (AUC of the raw feature used as a score; single-member sets; model-free).
Sets that break a computability rule (:mod:`.features`) are reported with ``computable=False``
and a ``reason``.

Best available by time τ (:mod:`.best_available`): the nested best set of each family of
:data:`.best_available.BEST_FAMILIES` available by τ, never chosen on the folds that score it,
with the paired DeLong comparison of each family of :data:`.best_available.INDICATOR_FAMILIES`
against the baseline family's best on the same runs. The family ``all`` (best of every
candidate) feeds early stopping (:mod:`.early_stopping`).

Cost: 8000 runs × 8 times × d = 9, 10 × 5 folds: ≈ 6 s (E_high only) / ≈ 13 s (both events) on
one core. BLAS is limited to one thread (its threads only add overhead to these small products
and oversubscribe a busy machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from ..outcomes import EVENTS, MIDDLE, classify, outcome_events
from .best_available import BEST_FAMILIES, BestAvailable, best_available
from .classifier import cv_set_scores
from .early_stopping import STOP_THRESHOLDS, StoppingSweep, stopping_sweep
from .features import (
    FeatureSet, available_time, feature_sets, features_at, lagged_times, missing_features,
    no_variance, too_few_runs,
)
from .statistics import FPR_GRID, summarise_many

__all__ = ["AUC_COLUMNS", "INPUT_VARIABLES", "low_event_rule", "predict_combination"]

#: the variables of a gathered file that :func:`predict_combination` reads (the outcome and
#: the sources of every feature)
INPUT_VARIABLES = ("final_loss", "loss_at", "log_loss_slope_at", "gradient_norm_at", "theta0",
                   "ftle_at", "clv_growth_lagged", "clv_angle_lagged", "lagged_available_time",
                   "clv_growth_ginelli_at", "clv_angle_ginelli_at")

#: columns of auc.csv (the rows of :func:`predict_combination`)
AUC_COLUMNS = ("activation", "initialization", "event", "kind", "family", "feature", "t",
               "available_time", "auc_mean", "auc_std", "auc_ci_low", "auc_ci_high",
               "single_auc", "n_positive", "n_negative", "n_dropped", "computable", "reason",
               "chosen", "delta_vs_baseline", "delta_ci_low", "delta_ci_high", "p_vs_baseline")

_SET_VARS = ("auc_mean", "auc_std", "auc_ci_low", "auc_ci_high", "single_auc", "n_positive",
             "n_negative", "n_dropped")
_SET_ROW = _SET_VARS + ("computable", "reason")
_BEST_ROW = ("auc_mean", "auc_std", "auc_ci_low", "auc_ci_high", "n_positive", "n_negative",
             "n_dropped", "computable", "reason", "chosen")


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


def predict_combination(gathered, cfg: dict):
    """Prediction of E_high (and E_low where the middle-class rule allows) for one
    (activation, initialization): every feature set at every prediction time, and the nested
    best of each family available by each time τ (module docstring).

    ``cfg`` needs the sections ``prediction`` and ``classes`` (the full configuration or a
    slice of it); the learning rate and steps come from the gathered attributes, else from
    ``cfg["training"]``.

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
        study = _Study.build(gathered, cfg)
        sets, rows = _score_sets(study)
        best = best_available(study.sets, study.feats, study.times, study.avail, study.lagged,
                              study.events, study.ev, study.folds, study.repeats, study.seed)
        rows += [_row(study.G, event, "best_available", fam, f"best_{fam}", tau, tau,
                      **{c: res.get(c) for c in _BEST_ROW},
                      delta_vs_baseline=res.get("delta"), delta_ci_low=res.get("delta_ci_low"),
                      delta_ci_high=res.get("delta_ci_high"), p_vs_baseline=res.get("p"))
                 for event, fam, tau, res in best.results]
        sweep = stopping_sweep(best.stop_scores, study.times, study.ev["low"], study.ev["high"],
                               study.eta, study.steps)
        return _dataset(study, sets, best, sweep), rows


# --------------------------------------------------------------------------------------------
# settings, events and features of one combination
# --------------------------------------------------------------------------------------------

def _setting(G, cfg, key, section="training"):
    if key in G.attrs:
        return G.attrs[key]
    return cfg[section][key]


@dataclass
class _Study:
    """Settings, events, feature sets and per-run features of one combination."""

    G: xr.Dataset
    headline_time: float
    folds: int
    repeats: int
    seed: int
    lag: int
    clv_vectors: list
    low: float
    high: float
    eta: float
    steps: int
    end_time: float
    times: list
    sets: dict[str, FeatureSet]
    names: list
    final_loss: np.ndarray
    ev: dict
    events: list
    n_middle: int
    low_note: str
    feats: dict
    lagged: dict
    avail: dict

    @classmethod
    def build(cls, G, cfg: dict) -> _Study:
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
        final_loss = G["final_loss"].values
        include_low, n_middle, low_note = low_event_rule(final_loss, low, high, min_mid)
        lagged = lagged_times(G, times, lag, eta)
        return cls(
            G=G, headline_time=float(pcfg.get("headline_time", times[0])), folds=folds,
            repeats=repeats, seed=seed, lag=lag, clv_vectors=clv_vectors, low=low, high=high,
            eta=eta, steps=steps, end_time=end_time, times=times, sets=sets, names=list(sets),
            final_loss=final_loss, ev=outcome_events(final_loss, low, high),
            events=[e for e in EVENTS if include_low or e != "low"], n_middle=n_middle,
            low_note=low_note, feats={t: features_at(G, t, lag, clv_vectors) for t in times},
            lagged=lagged,
            avail={n: {t: available_time(sets[n], t, lagged[t], end_time) for t in times}
                   for n in sets})


def _row(G, event, kind, family, feature, t, avail, **kw):
    row = dict.fromkeys(AUC_COLUMNS)
    row.update(activation=G.attrs["activation"], initialization=G.attrs["initialization"],
               event=event, kind=kind, family=family, feature=feature, t=float(t),
               available_time=float(avail))
    row.update(kw)
    return row



# --------------------------------------------------------------------------------------------
# every set at every prediction time
# --------------------------------------------------------------------------------------------

def _score_sets(S: _Study):
    """Set-level arrays {variable: (event, feature, prediction_time)} plus 'roc_tpr', and rows.

    Sets with the same runs (the same finite-feature mask) are scored together in one CV."""
    from sklearn.metrics import roc_auc_score

    events, names, sets, folds = S.events, S.names, S.sets, S.folds
    E, N, T = len(events), len(names), len(S.times)
    out = {k: np.full((E, N, T), np.nan) for k in _SET_VARS}
    out["roc_tpr"] = np.full((E, N, T, FPR_GRID.size), np.nan)
    rows = []
    for k, t in enumerate(S.times):
        F = S.feats[t]
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
        for members_of_group in groups.values():
            used = used_of[members_of_group[0]]
            cols = list(dict.fromkeys(m for n in members_of_group for m in sets[n].members))
            X = np.column_stack([F[c][used] for c in cols])
            M = np.zeros((len(cols), len(members_of_group)))
            for s, n in enumerate(members_of_group):
                M[[cols.index(m) for m in sets[n].members], s] = 1.0
            const = np.ptp(X, axis=0) == 0 if X.shape[0] else np.ones(len(cols), bool)
            for event in events:
                y = S.ev[event][used]
                n_pos, n_neg = int(y.sum()), int((~y).sum())
                head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=int((~used).sum()))
                if min(n_pos, n_neg) < folds:
                    for n in members_of_group:
                        results[event, n] = dict(head, computable=False,
                                                 reason=too_few_runs(n_pos, n_neg, folds))
                    continue
                sc = cv_set_scores(X, y, M, folds, S.repeats, S.seed, cols)
                mean, std, lo, hi, tpr = summarise_many(sc.oof, y)
                for s, n in enumerate(members_of_group):
                    bad = [c for c in sets[n].members if const[cols.index(c)]]
                    reason = no_variance(bad[0]) if bad else sc.bad[s]
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
                res = results.get((event, n))
                if res is None:
                    res = dict(computable=False, reason=missing_features(missing[n]),
                               n_positive=None, n_negative=None, n_dropped=None)
                for v in _SET_VARS:
                    if res.get(v) is not None:
                        out[v][e, j, k] = res[v]
                if res.get("tpr") is not None:
                    out["roc_tpr"][e, j, k] = res["tpr"]
                rows.append(_row(S.G, event, "set", sets[n].family, n, t, S.avail[n][t],
                                 **{c: res.get(c) for c in _SET_ROW}))
    return out, rows


# --------------------------------------------------------------------------------------------
# the prediction dataset
# --------------------------------------------------------------------------------------------

def _dataset(S: _Study, sets: dict, best: BestAvailable, sweep: StoppingSweep
             ) -> xr.Dataset:
    """The prediction dataset (variables and attributes in :func:`predict_combination`)."""
    ETF = ("event", "feature", "prediction_time")
    EBU = ("event", "best_family", "tau")
    PT = ("prediction_time", "threshold")
    one = {"units": "1"}
    data = {
        "auc_mean": (ETF, sets["auc_mean"], {"long_name": "mean over repeats of the pooled "
                                             "out-of-fold ROC AUC (NaN: not computable)", **one}),
        "auc_std": (ETF, sets["auc_std"], {"long_name": "std over repeats of the pooled "
                                           "AUC (CV instability, not an uncertainty)", **one}),
        "auc_ci_low": (ETF, sets["auc_ci_low"], {"long_name": "95 % DeLong interval, lower",
                                                 **one}),
        "auc_ci_high": (ETF, sets["auc_ci_high"], {"long_name": "95 % DeLong interval, "
                                                   "upper", **one}),
        "single_auc": (ETF, sets["single_auc"], {"long_name": "AUC of the raw feature "
                                                 "(single-member sets)", **one}),
        "n_positive": (ETF, sets["n_positive"], {"long_name": "runs in the event"}),
        "n_negative": (ETF, sets["n_negative"], {"long_name": "runs not in the event"}),
        "n_dropped": (ETF, sets["n_dropped"], {"long_name": "runs dropped (non-finite)"}),
        "roc_tpr": (ETF + ("fpr",), sets["roc_tpr"], {"long_name": "repeat-mean TPR of the "
                                                      "pooled out-of-fold ROC", **one}),
        "available_time": (("feature", "prediction_time"),
                           np.array([[S.avail[n][t] for t in S.times] for n in S.names]),
                           {"long_name": "flow time at which the predictor is available"}),
        "family": ("feature", np.array([S.sets[n].family for n in S.names], dtype=object),
                   {"long_name": "feature family"}),
        "best_roc_tpr": (EBU + ("fpr",), best.roc_tpr, {
            "long_name": "repeat-mean TPR of the nested best set's out-of-fold ROC", **one}),
        "best_chosen": (EBU, best.chosen, {"long_name": "most frequent nested choice "
                                                   "(set@prediction time, folds)"}),
        "stop_compute_saved": (PT, sweep.compute_saved,
                               {"long_name": "fraction of all training steps not run", **one}),
        "stop_low_lost": (PT, sweep.low_lost,
                          {"long_name": "fraction of E_low runs stopped", **one}),
        "stop_high_caught": (PT, sweep.high_caught,
                             {"long_name": "fraction of E_high runs stopped", **one}),
        "stop_step": ("prediction_time", sweep.stop_step,
                      {"long_name": "step n* at which runs stop"}),
        "stop_best_saved": ("prediction_time", sweep.best_saved,
                            {"long_name": "compute saved by stopping exactly the E_high runs "
                                          "(E_low lost: 0)", **one}),
        "stop_chance_slope": ("prediction_time", sweep.chance_slope,
                              {"long_name": "(T - n*)/T: chance stopping of a fraction f "
                                            "saves f (T - n*)/T and loses f", **one}),
        "stop_feature": ("prediction_time", np.array(sweep.predictor, dtype=object),
                         {"long_name": "nested best of all families available by t* "
                                       "(most frequent choice)"}),
    }
    for k, v in best.arrays.items():
        data[k] = (EBU, v, {"long_name": k.replace("_", " ")})
    G = S.G
    ds = xr.Dataset(
        data,
        coords={"event": S.events, "feature": S.names, "prediction_time": S.times,
                "fpr": FPR_GRID, "best_family": list(BEST_FAMILIES), "tau": best.taus,
                "threshold": STOP_THRESHOLDS},
        attrs={"activation": G.attrs["activation"], "initialization": G.attrs["initialization"],
               "headline_time": S.headline_time, "folds": S.folds, "repeats": S.repeats,
               "cv_seed": S.seed, "clv_lag": S.lag,
               "clv_vectors": np.array(S.clv_vectors, dtype=int),
               "events": " ".join(S.events), "low": S.low, "high": S.high,
               "n_middle": S.n_middle, "e_low_note": S.low_note,
               "ginelli_available_time": S.end_time, "total_steps": S.steps,
               "learning_rate": S.eta,
               "early_stopping_predictor": "nested best of all families available by t*"},
    )
    ds["tau"].attrs["long_name"] = "availability time (flow time)"
    return ds
