"""Tests of weightdyn.prediction on synthetic features with known answers."""

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import norm

from weightdyn.outcomes import CLASS_LABELS, HIGH, LOW, MIDDLE, classify, outcome_events
from weightdyn.prediction import (
    AUC_COLUMNS, BEST_FAMILIES, best_possible_saving, chance_saving, cross_validated_auc,
    early_stopping_curve, feature_matrix, feature_sets, features_at, low_event_rule,
    predict_combination, single_feature_auc,
)

# The mean of k fold AUCs from models fitted on overlapping training sets spreads more than
# one AUC on n independent runs: 300 null replicates (n = 2000, 1 and 3 features) gave
# 1.3–1.5 × the Mann–Whitney standard error. CV tolerances below use this factor.
CV_SPREAD = 1.5


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def null_sigma(n_pos, n_neg):
    """Standard error of the AUC of a score independent of the label."""
    return np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))


def hanley_mcneil_sigma(auc, n_pos, n_neg):
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return np.sqrt((auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2)
                    + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg))


# --- outcome classes ---------------------------------------------------------------------

def test_classify_and_events_with_non_finite_losses():
    c_f = np.array([0.5, 3.999, 4.0, 50.0, 100.0, 100.5, np.inf, np.nan, -np.inf])
    codes = classify(c_f)
    assert codes.tolist() == [LOW, LOW, MIDDLE, MIDDLE, MIDDLE, HIGH, HIGH, HIGH, HIGH]
    assert [CLASS_LABELS[c] for c in codes[:3]] == ["low", "low", "middle"]
    events = outcome_events(c_f)
    np.testing.assert_array_equal(events["low"], codes == LOW)
    np.testing.assert_array_equal(events["high"], codes == HIGH)


def test_classify_custom_thresholds():
    assert classify([1.0, 2.0, 3.0], low=1.5, high=2.5).tolist() == [LOW, MIDDLE, HIGH]


@pytest.mark.parametrize("low, high", [(100.0, 4.0), (4.0, 4.0), (np.nan, 100.0)])
def test_threshold_ordering_is_rejected(low, high):
    with pytest.raises(ValueError, match=r"low=.*high="):
        classify([1.0], low=low, high=high)
    with pytest.raises(ValueError, match="low < high"):
        outcome_events([1.0], low=low, high=high)


# --- cross-validated and single-feature AUC ----------------------------------------------

def test_separable_classes_give_auc_one(no_warnings):
    rng = np.random.default_rng(0)
    y = np.arange(400) % 3 == 0
    x = np.where(y, 5.0, 0.0) + rng.uniform(size=y.size)
    cv = cross_validated_auc(np.c_[x, rng.normal(size=y.size)], y)
    assert cv.computable and cv.reason == ""
    assert cv.auc_mean == 1.0 and cv.auc_std == 0.0
    np.testing.assert_array_equal(cv.repeat_auc, np.ones(1))
    assert cv.auc_ci_high == 1.0
    np.testing.assert_array_equal(cv.mean_tpr, np.ones_like(cv.fpr))
    assert (cv.n_positive, cv.n_negative, cv.n_dropped) == (134, 266, 0)
    single = single_feature_auc(x, y)
    assert single.auc == 1.0 and single.auc_oriented == 1.0
    reversed_ = single_feature_auc(-x, y)
    assert reversed_.auc == 0.0 and reversed_.auc_oriented == 1.0


def test_identical_distributions_give_auc_one_half(no_warnings):
    rng = np.random.default_rng(1)
    n = 2000
    X = rng.normal(size=(n, 3))
    y = rng.random(n) < 0.3
    sigma = null_sigma(y.sum(), (~y).sum())
    cv = cross_validated_auc(X, y)
    assert abs(cv.auc_mean - 0.5) < 4 * CV_SPREAD * sigma
    assert abs(single_feature_auc(X[:, 0], y).auc - 0.5) < 4 * sigma


@pytest.mark.parametrize("d", [0.5, 1.0, 2.0])
def test_two_gaussians_match_analytic_auc(d, no_warnings):
    """N(0,1) vs N(d,1): the optimal score x has AUC = Φ(d/√2)."""
    rng = np.random.default_rng(2)
    y = rng.random(4000) < 0.5
    x = rng.normal(size=y.size) + d * y
    expected = norm.cdf(d / np.sqrt(2))
    sigma = hanley_mcneil_sigma(expected, y.sum(), (~y).sum())
    cv = cross_validated_auc(x[:, None], y)
    assert abs(cv.auc_mean - expected) < 4 * CV_SPREAD * sigma
    assert abs(single_feature_auc(x, y).auc - expected) < 4 * sigma
    # the mean ROC curve integrates to about the mean AUC
    assert abs(np.trapezoid(cv.mean_tpr, cv.fpr) - cv.auc_mean) < 0.01


def test_out_of_fold_predictions_and_determinism():
    rng = np.random.default_rng(3)
    y = rng.random(500) < 0.4
    X = rng.normal(size=(500, 2)) + y[:, None]
    a, b = cross_validated_auc(X, y, seed=7), cross_validated_auc(X, y, seed=7)
    np.testing.assert_array_equal(a.oof_proba, b.oof_proba)
    assert a.auc_mean == b.auc_mean
    assert cross_validated_auc(X, y, seed=8).auc_mean != a.auc_mean
    assert a.oof_proba.shape == (500,) and np.all((a.oof_proba >= 0) & (a.oof_proba <= 1))
    np.testing.assert_allclose(a.oof_proba, 1 / (1 + np.exp(-a.oof_log_odds)))
    assert a.oof_proba[y].mean() > a.oof_proba[~y].mean()


def test_scale_of_a_feature_does_not_matter(no_warnings):
    rng = np.random.default_rng(4)
    y = rng.random(1000) < 0.5
    X = np.c_[rng.normal(size=1000) + 0.8 * y, rng.normal(size=1000)]
    scaled = X * [1e-8, 1e8]
    assert cross_validated_auc(scaled, y).auc_mean == pytest.approx(
        cross_validated_auc(X, y).auc_mean, abs=1e-12)


def test_constant_feature_is_not_computable(no_warnings):
    rng = np.random.default_rng(5)
    y = np.arange(100) % 2 == 0
    X = np.c_[rng.normal(size=100), np.full(100, 3.0)]
    cv = cross_validated_auc(X, y, feature_names=["ftle_1", "ftle_2"])
    assert not cv.computable and "ftle_2" in cv.reason and "no variance" in cv.reason
    assert cv.auc_mean is None and cv.auc_std is None and cv.oof_proba is None
    single = single_feature_auc(X[:, 1], y, name="ftle_2")
    assert not single.computable and "ftle_2" in single.reason and single.auc is None


def test_feature_constant_in_a_training_fold_is_not_computable(no_warnings):
    y = np.arange(1000) % 2 == 0
    x = np.zeros(1000)
    x[3] = 1.0
    cv = cross_validated_auc(x[:, None], y)
    assert not cv.computable and "training fold" in cv.reason


def test_zero_variance_within_one_class_is_fine(no_warnings):
    rng = np.random.default_rng(6)
    y = rng.random(1000) < 0.5
    X = np.c_[np.where(y, rng.normal(size=1000), 0.0), rng.normal(size=1000)]
    cv = cross_validated_auc(X, y)
    assert cv.computable and cv.auc_mean > 0.99
    assert np.isfinite(cv.oof_log_odds).all() and np.isfinite(cv.mean_tpr).all()


def test_too_few_members_of_a_class(no_warnings):
    rng = np.random.default_rng(7)
    y = np.zeros(200, dtype=bool)
    y[:4] = True
    X = rng.normal(size=(200, 2))
    cv = cross_validated_auc(X, y, folds=5)
    assert not cv.computable and "too few" in cv.reason
    assert (cv.n_positive, cv.n_negative) == (4, 196)
    assert cross_validated_auc(X, y, folds=4).computable
    assert not single_feature_auc(X[:, 0], y, min_per_class=5).computable
    assert not cross_validated_auc(X, np.zeros(200, dtype=bool)).computable


def test_no_features_is_not_computable():
    cv = cross_validated_auc(np.empty((50, 0)), np.arange(50) % 2 == 0)
    assert not cv.computable and cv.reason == "no features"


def test_non_finite_feature_rows_are_dropped(no_warnings):
    rng = np.random.default_rng(8)
    y = rng.random(300) < 0.5
    X = rng.normal(size=(300, 2)) + y[:, None]
    X[:7, 0] = np.nan
    X[7:10, 1] = np.inf
    cv = cross_validated_auc(X, y)
    assert cv.computable and cv.n_dropped == 10
    assert cv.n_positive + cv.n_negative == 290
    assert np.isnan(cv.oof_proba[:10]).all() and np.isfinite(cv.oof_proba[10:]).all()
    np.testing.assert_array_equal(cv.used, np.arange(300) >= 10)
    assert cv.auc_mean == cross_validated_auc(X[10:], y[10:]).auc_mean
    assert single_feature_auc(X[:, 0], y).n_dropped == 7


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="2-D"):
        cross_validated_auc(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="entries"):
        cross_validated_auc(np.zeros((10, 1)), np.zeros(9))
    with pytest.raises(ValueError, match="binary"):
        cross_validated_auc(np.zeros((3, 1)), [0, 1, 2])
    with pytest.raises(ValueError, match="folds"):
        cross_validated_auc(np.zeros((10, 1)), np.zeros(10), folds=1)


# --- feature sets and the AUC table ------------------------------------------------------

def test_feature_matrix_assembly():
    features = {"a": np.arange(4.0), "b": np.ones(4), "c": -np.arange(4.0)}
    mats = {name: feature_matrix(features, members)
            for name, members in {"a": ["a"], "ac": ["a", "c"], "none": []}.items()}
    np.testing.assert_array_equal(mats["ac"], np.c_[np.arange(4.0), -np.arange(4.0)])
    assert mats["a"].shape == (4, 1) and mats["none"].shape == (4, 0)
    with pytest.raises(KeyError, match="zzz"):
        feature_matrix(features, ["a", "zzz"])
    with pytest.raises(ValueError, match="equal length"):
        feature_matrix({"a": np.zeros(3), "b": np.zeros(4)}, ["a"])


def test_repeats_give_std_and_interval(no_warnings):
    rng = np.random.default_rng(11)
    y = rng.random(600) < 0.4
    X = rng.normal(size=(600, 2)) + 0.7 * y[:, None]
    cv = cross_validated_auc(X, y, repeats=4)
    assert cv.repeat_auc.shape == (4,) and cv.auc_std > 0
    assert cv.auc_std == pytest.approx(cv.repeat_auc.std())
    assert cv.auc_ci_low < cv.auc_mean < cv.auc_ci_high
    # the interval is about the DeLong/Hanley–McNeil width, not the repeat spread
    sigma = hanley_mcneil_sigma(cv.auc_mean, y.sum(), (~y).sum())
    assert (cv.auc_ci_high - cv.auc_ci_low) / (2 * 1.96) == pytest.approx(sigma, rel=0.2)


# --- the whole prediction of one combination ---------------------------------------------

ETA, STEPS = 1e-3, 3000


def synthetic_gathered(n=400, d=9, times=(0.005, 0.015), lags=(5, 10), seed=9, n_middle=None,
                       n_diverged=5, fail_fraction=0.3, clv=True, activation="tanh",
                       initialization="uniform"):
    """A gathered dataset (the variables of weightdyn.gather that prediction reads). E_high is
    visible in ln C(t*), the ln C slope, Λ_1, the lagged growth rate of CLV 5 and (strongly)
    the Ginelli growth rate of CLV 5; the angle of pair 5-6 is constant; the first
    ``n_diverged`` runs diverged before the first t* (NaN features, c_f = inf)."""
    rng = np.random.default_rng(seed)
    fail = rng.random(n) < fail_fraction
    final_loss = np.where(fail, np.exp(rng.uniform(5, 7, n)), np.exp(rng.uniform(-23, -20, n)))
    n_middle = max(1, n // 50) if n_middle is None else n_middle
    final_loss[n_diverged:n_diverged + n_middle] = 50.0
    final_loss[:n_diverged] = np.inf
    z = (~np.isfinite(final_loss) | (final_loss > 100)).astype(float)
    T, L = len(times), len(lags)
    pairs = [f"{i}-{j}" for i in range(1, d + 1) for j in range(i + 1, d + 1)]
    ftle = rng.normal(size=(n, T, d))
    ftle[:, :, 0] += z[:, None]
    loss_at = np.exp(rng.normal(size=(n, T)) + 0.8 * z[:, None])
    slope = rng.normal(size=(n, T)) + 0.5 * z[:, None]
    grad = np.exp(rng.normal(size=(n, T)))
    ang = rng.uniform(0, 1.5, size=(n, L, T, len(pairs)))
    ang[..., pairs.index("5-6")] = 0.7
    gro = rng.normal(size=(n, L, T, d))
    gro[..., 4] += 1.2 * z[:, None, None]
    gang = rng.uniform(0, 1.5, size=(n, T, len(pairs)))
    ggro = rng.normal(size=(n, T, d))
    ggro[..., 4] += 3.0 * z[:, None]
    for a in (ftle, loss_at, slope, grad, ang, gro, gang, ggro):
        a[:n_diverged] = np.nan
    outcome = np.where(final_loss < 4, 0, np.where(final_loss <= 100, 1, 2)).astype(np.int8)
    data = {
        "final_loss": ("network", final_loss),
        "outcome": ("network", outcome),
        "diverged": ("network", (~np.isfinite(final_loss)).astype(np.int8)),
        "valid": ("network", np.ones(n, np.int8)),
        "ftle_at": (("network", "prediction_time", "exponent"), ftle),
        "loss_at": (("network", "prediction_time"), loss_at),
        "log_loss_slope_at": (("network", "prediction_time"), slope),
        "gradient_norm_at": (("network", "prediction_time"), grad),
        "theta0": (("network", "param"), rng.normal(size=(n, d))),
        "lagged_available_time": (("lag", "prediction_time"),
                                  np.add.outer(np.array(lags) * ETA, np.array(times))),
    }
    if clv:
        data.update({
            "clv_angle_lagged": (("network", "lag", "prediction_time", "pair"), ang),
            "clv_growth_lagged": (("network", "lag", "prediction_time", "exponent"), gro),
            "clv_lag_error": (("network", "lag", "prediction_time", "exponent"),
                              np.abs(rng.normal(size=(n, L, T, d)))
                              / np.array(lags)[None, :, None, None]),
            "clv_angle_ginelli_at": (("network", "prediction_time", "pair"), gang),
            "clv_growth_ginelli_at": (("network", "prediction_time", "exponent"), ggro),
        })
    return xr.Dataset(
        data,
        coords={"network": np.arange(n), "prediction_time": list(times),
                "exponent": np.arange(1, d + 1), "lag": list(lags), "pair": pairs,
                "param": [f"w{k}" for k in range(d)]},
        attrs={"activation": activation, "initialization": initialization,
               "learning_rate": ETA, "steps": STEPS, "low": 4.0, "high": 100.0})


def prediction_config(config, **overrides):
    config["prediction"].update(dict(folds=5, repeats=2, cv_seed=0, clv_lag=10,
                                     clv_vectors=[5, 6, 7, 8], min_middle_fraction=0.01,
                                     headline_time=0.015), **overrides)
    config["classes"].update(low=4.0, high=100.0)
    return config


@pytest.fixture(scope="module")
def predicted():
    import copy

    import yaml
    from conftest import ROOT

    with open(ROOT / "config.yaml") as fh:
        cfg = prediction_config(yaml.safe_load(fh))
    G = synthetic_gathered()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P, rows = predict_combination(G, copy.deepcopy(cfg))
    return G, cfg, P, pd.DataFrame(rows, columns=AUC_COLUMNS)


def test_feature_sets_and_features():
    sets = feature_sets(9)
    fam = {n: s.family for n, s in sets.items()}
    assert {f for f in fam.values()} == {"baseline", "FTLE", "CLV", "ginelli_bound", "combined"}
    assert sets["clv_angles"].members == tuple(f"clv_angle_{p}" for p in
                                               ("5-6", "5-7", "5-8", "6-7", "6-8", "7-8"))
    assert sets["clv_growth"].members == tuple(f"clv_growth_{i}" for i in (5, 6, 7, 8))
    assert len(sets["theta0"].members) == 9 and sets["theta0"].timing == "zero"
    assert set(sets["baseline+ftle+clv"].members) == (set(sets["baseline_all"].members)
                                                      | set(sets["ftle_all"].members)
                                                      | set(sets["clv_all"].members))
    # d = 6: only the CLVs that exist
    assert feature_sets(6)["clv_growth"].members == ("clv_growth_5", "clv_growth_6")
    G = synthetic_gathered(n=50)
    F = features_at(G, 0.015, 10)
    np.testing.assert_allclose(F["loss"][5:], np.log(G.loss_at.sel(prediction_time=0.015)[5:]))
    assert "clv_angle_1-2" not in F and "clv_angle_5-6" in F and "ginelli_growth_8" in F
    assert features_at(G, 0.015, 999).keys().isdisjoint({"clv_growth_5", "clv_angle_5-6"})


def test_low_event_rule():
    c = np.r_[np.full(95, 1e-9), np.full(4, 1e3), [50.0]]
    include, n_mid, note = low_event_rule(c, 4.0, 100.0, 0.01)
    assert include and n_mid == 1 and note == ""
    include, n_mid, note = low_event_rule(np.r_[c, np.full(100, 1e-9)], 4.0, 100.0, 0.01)
    assert not include and n_mid == 1
    assert "1 of 200 runs" in note and "complement" in note


def test_predict_combination_rows_and_availability(predicted):
    G, cfg, P, df = predicted
    d = 9
    sets = feature_sets(d)
    assert list(df.columns) == list(AUC_COLUMNS)
    assert set(df.kind) == {"set", "best_available"}
    set_rows = df[df.kind == "set"]
    assert len(set_rows) == 2 * len(sets) * 2                    # events × sets × times
    ok = set_rows[set_rows.computable]
    assert (ok.n_dropped[ok.feature != "theta0"] == 5).all()     # diverged before t*
    assert (ok.n_dropped[ok.feature == "theta0"] == 0).all()     # θ0 is known for every run
    # availability: θ0 at 0, baseline and FTLE at t*, CLV at t* + L, Ginelli at the end
    at = set_rows[(set_rows.event == "high")].set_index(["feature", "t"]).available_time
    assert at["theta0", 0.015] == 0.0 and at["loss", 0.015] == 0.015
    assert at["ftle_all", 0.005] == 0.005 and at["baseline+ftle", 0.005] == 0.005
    assert at["clv_growth", 0.005] == pytest.approx(0.015)
    assert at["baseline+clv", 0.015] == pytest.approx(0.025)
    assert at["ginelli_all", 0.005] == pytest.approx(STEPS * ETA)
    np.testing.assert_allclose(P.available_time.sel(feature="clv_all"), [0.015, 0.025])
    # constant angle 5-6 makes every set containing it not computable, with the reason
    bad = set_rows[~set_rows.computable]
    assert set(bad.feature) == {"clv_angles", "clv_all", "baseline+clv", "baseline+ftle+clv"}
    assert bad.reason.str.contains("clv_angle_5-6").all() and bad.auc_mean.isna().all()
    ok = set_rows[set_rows.computable]
    assert not ok[["auc_mean", "auc_std", "auc_ci_low", "auc_ci_high"]].isna().any().any()
    assert ((ok.auc_ci_low <= ok.auc_mean) & (ok.auc_mean <= ok.auc_ci_high)).all()
    assert ok[ok.feature == "ftle_all"].single_auc.isna().all()
    assert not ok[ok.feature == "ftle_1"].single_auc.isna().any()
    # informative features are found, the Ginelli bound is the strongest
    high = ok[(ok.event == "high") & (ok.t == 0.015)].set_index("feature").auc_mean
    assert high["ftle_1"] > 0.65 > high["ftle_9"] and high["ginelli_growth"] > 0.9
    assert P.attrs["events"] == "high low" and P.attrs["e_low_note"] == ""


def test_set_scores_equal_cross_validated_auc(predicted):
    """predict_combination's grouped fast CV gives exactly the single-set reference."""
    G, cfg, P, df = predicted
    F = features_at(G, 0.015, 10)
    events = outcome_events(G.final_loss.values)
    for name in ("ftle_all", "baseline_all", "clv_growth", "theta0"):
        X = feature_matrix(F, feature_sets(9, params=G.param.values)[name].members)
        cv = cross_validated_auc(X, events["high"], folds=5, seed=0, repeats=2)
        row = df[(df.kind == "set") & (df.event == "high") & (df.feature == name)
                 & (df.t == 0.015)].iloc[0]
        assert row.auc_mean == pytest.approx(cv.auc_mean, abs=1e-12)
        assert row.auc_ci_low == pytest.approx(cv.auc_ci_low, abs=1e-12)
        assert row.n_dropped == cv.n_dropped
        np.testing.assert_allclose(P.roc_tpr.sel(event="high", feature=name,
                                                 prediction_time=0.015), cv.mean_tpr)


def test_best_available_rows(predicted):
    G, cfg, P, df = predicted
    best = df[df.kind == "best_available"]
    taus = sorted(set(best.t))
    assert taus == pytest.approx([0.005, 0.015, 0.025])          # t* and t* + L, merged
    assert set(best.family) == set(BEST_FAMILIES)
    assert (best.t == best.available_time).all()
    high = best[best.event == "high"].set_index(["family", "t"])
    # nothing CLV-based exists before the first t* + L
    assert not high.loc[("CLV", 0.005), "computable"]
    assert "no CLV set available" in high.loc[("CLV", 0.005), "reason"]
    assert high.loc[("CLV", 0.015), "computable"]
    for (family, tau), r in high[high.computable].iterrows():
        assert r.auc_ci_low <= r.auc_mean <= r.auc_ci_high
        name, when = r.chosen.split(" (")[0].split("@")
        fs = feature_sets(9)[name]
        assert not name.startswith("ginelli")                   # never a candidate
        avail = {"zero": 0.0, "t": float(when), "lag": float(when) + 10 * ETA}[fs.timing]
        assert avail <= tau + 1e-12                               # known by τ
        if family != "all":
            assert fs.family == family
        if family in ("FTLE", "CLV", "combined") and high.loc[("baseline", tau), "computable"]:
            assert r.delta_ci_low <= r.delta_vs_baseline <= r.delta_ci_high
            assert 0 <= r.p_vs_baseline <= 1
        else:
            assert np.isnan(r.delta_vs_baseline)
    # the baseline family's best sees ln C and the slope: clearly better than chance
    assert high.loc[("baseline", 0.015), "auc_ci_low"] > 0.6
    # the dataset holds the same numbers
    b = P.best_auc_mean.sel(event="high", best_family="FTLE", tau=0.015)
    assert float(b) == pytest.approx(high.loc[("FTLE", 0.015), "auc_mean"])
    assert np.isfinite(P.best_roc_tpr.sel(event="high", best_family="FTLE", tau=0.015)).all()


def test_early_stopping_in_prediction(predicted):
    G, cfg, P, df = predicted
    saved = P.stop_compute_saved.values
    assert np.isfinite(saved).all() and (np.diff(saved, axis=1) <= 0).all()
    np.testing.assert_array_equal(P.stop_step, [5, 15])
    frac_high = float(outcome_events(G.final_loss.values)["high"].mean())
    np.testing.assert_allclose(P.stop_best_saved, frac_high * (STEPS - np.array([5, 15])) / STEPS)
    np.testing.assert_allclose(P.stop_chance_slope, (STEPS - np.array([5, 15])) / STEPS)
    # threshold 0: every run stopped; diverged runs count as stopped at every threshold
    assert saved[0, 0] == pytest.approx((STEPS - 5) / STEPS)
    n_high = outcome_events(G.final_loss.values)["high"].sum()
    assert P.stop_high_caught.values.min() >= 5 / n_high - 1e-12
    assert all(s for s in P.stop_feature.values)


def test_chance_and_best_possible_lines():
    f = np.array([0.0, 0.25, 1.0])
    np.testing.assert_allclose(chance_saving(f, 100, 1000), f * 0.9)
    assert best_possible_saving(0.3, 100, 1000) == pytest.approx(0.27)
    # a random p_high reproduces the chance line on average
    rng = np.random.default_rng(0)
    n = 20000
    is_high = rng.random(n) < 0.3
    curve = early_stopping_curve(rng.random(n), ~is_high, is_high, 100, 1000, [0.2, 0.5, 0.8])
    np.testing.assert_allclose(curve.compute_saved, chance_saving(curve.low_stopped, 100, 1000),
                               atol=0.01)
    perfect = early_stopping_curve(is_high.astype(float), ~is_high, is_high, 100, 1000, [0.5])
    assert perfect.low_stopped[0] == 0
    assert perfect.compute_saved[0] == pytest.approx(best_possible_saving(is_high.mean(), 100, 1000))


def test_low_event_omitted_and_robustness(config):
    """Bimodal losses: E_low omitted with a note; a headline time off the grid, a lag that was
    not computed and missing CLV variables do not crash."""
    cfg = prediction_config(config, headline_time=0.0123, clv_lag=999, repeats=1)
    G = synthetic_gathered(n=300, n_middle=1, clv=False)
    P, rows = predict_combination(G, cfg)
    df = pd.DataFrame(rows, columns=AUC_COLUMNS)
    assert set(df.event) == {"high"} and list(P.event.values) == ["high"]
    assert "1 of 300 runs" in P.attrs["e_low_note"]
    clv = df[df.family == "CLV"]
    assert (~clv.computable).all()
    assert clv.reason.str.contains("missing features|no CLV set available").all()
    assert df[(df.kind == "best_available") & (df.family == "FTLE")].computable.all()
    assert P.attrs["headline_time"] == 0.0123


def test_too_few_events_is_not_computable(config):
    cfg = prediction_config(config, repeats=1)
    G = synthetic_gathered(n=200, n_diverged=0, fail_fraction=0.0, n_middle=3)
    P, rows = predict_combination(G, cfg)
    df = pd.DataFrame(rows, columns=AUC_COLUMNS)
    high = df[df.event == "high"]
    assert not high.computable.any()
    assert high.reason.str.contains("too few|no CLV set available").all()
    assert np.isnan(P.stop_compute_saved).all()


def test_early_stopping_hand_computed():
    p_high = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.55])
    is_low = np.array([False, True, True, False, True, False])
    is_high = np.array([True, False, False, True, False, False])
    res = early_stopping_curve(p_high, is_low, is_high, stop_step=15, total_steps=3000,
                               thresholds=[0.0, 0.5, 0.65, 0.9, 1.0])
    # stopped sets: all 6; {0.9,0.6,0.7,0.55}; {0.9,0.7}; {} (0.9 is not > 0.9); {}
    np.testing.assert_array_equal(res.n_stopped, [6, 4, 2, 0, 0])
    np.testing.assert_allclose(res.compute_saved,
                               np.array([6, 4, 2, 0, 0]) * (3000 - 15) / (6 * 3000))
    np.testing.assert_allclose(res.low_stopped, [1.0, 1 / 3, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(res.high_caught, [1.0, 1.0, 1.0, 0.0, 0.0])


def test_early_stopping_always_stopped_runs():
    res = early_stopping_curve([0.9, 1.0, 0.2, 0.1], [False, False, True, True],
                               [True, True, False, False], 10, 100, [0.5, 1.0],
                               always_stopped=[False, True, False, False])
    np.testing.assert_array_equal(res.n_stopped, [2, 1])      # run 1 is stopped even at p > 1
    np.testing.assert_allclose(res.high_caught, [1.0, 0.5])


def test_early_stopping_edge_cases():
    res = early_stopping_curve([0.2, 0.8], [False, False], [True, False], 10, 100, [0.5])
    assert res.low_stopped is None and res.high_caught.tolist() == [0.0]
    with pytest.raises(ValueError, match="non-finite"):
        early_stopping_curve([np.nan, 0.5], [True, False], [False, True], 10, 100, [0.5])
    with pytest.raises(ValueError, match="stop_step"):
        early_stopping_curve([0.5], [True], [False], 200, 100, [0.5])


# --- package layout (issue 12) -----------------------------------------------------------

def test_package_public_api_and_module_size():
    import importlib
    import pathlib

    import weightdyn.prediction as wp

    for name in wp.__all__:
        assert hasattr(wp, name), name
    for module in ("best_available", "classifier", "early_stopping", "features", "nested",
                   "statistics", "study"):
        mod = importlib.import_module(f"weightdyn.prediction.{module}")
        assert mod.__doc__ and mod.__all__, module
        for name in mod.__all__:
            assert hasattr(mod, name), f"{module}.{name}"
        assert len(pathlib.Path(mod.__file__).read_text().splitlines()) <= 400, module


@pytest.mark.parametrize("module, allowed", [("weightdyn.prediction", set()),
                                             ("weightdyn.tables", set()),
                                             ("weightdyn.figures", {"matplotlib"})])
def test_jobs_import_only_what_they_use(module, allowed):
    """The prediction package loads scikit-learn and SciPy only when it predicts: the tables
    and figures jobs, which need its constants, do not pay for them."""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1] / 'src')!r}); "
            f"import {module}; print(sorted({{m.split('.')[0] for m in sys.modules}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    heavy = {"sklearn", "scipy", "matplotlib", "numba"}
    assert heavy & set(ast.literal_eval(out)) == allowed


def test_predict_combination_with_a_config_slice(predicted):
    """The predict rule may pass only the prediction and classes sections (learning rate and
    steps from the gathered attributes): same dataset and rows as with the whole config."""
    G, cfg, P, auc = predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P2, rows = predict_combination(
            G, {"prediction": dict(cfg["prediction"]), "classes": dict(cfg["classes"])})
    xr.testing.assert_identical(P2, P)
    pd.testing.assert_frame_equal(pd.DataFrame(rows, columns=AUC_COLUMNS), auc)


def test_prediction_dataset_units_are_udunits(predicted):
    """CF units: only the dimensionless "1" (no "1/t" or "steps")."""
    _, _, P, _ = predicted
    units = {v: P[v].attrs["units"] for v in P.variables if "units" in P[v].attrs}
    assert units and set(units.values()) == {"1"}
