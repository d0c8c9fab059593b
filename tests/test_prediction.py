"""Tests of weightdyn.prediction on synthetic features with known answers."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from weightdyn.prediction import (
    AUC_COLUMNS, CLASS_LABELS, HIGH, LOW, MIDDLE, classify, cross_validated_auc,
    early_stopping_curve, feature_matrix, feature_sets, outcome_events,
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
    np.testing.assert_array_equal(cv.fold_auc, np.ones(5))
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


def synthetic_gathered(n=400, d=9, seed=9):
    """A gathered dataset (weightdyn.gather format, the fields prediction reads) in which Λ_1
    tracks ln c_f, every CLV growth rate is noise and the angle of pair 1-2 is constant."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    final_loss = np.exp(rng.uniform(0, 6, size=n))
    final_loss[:5] = np.inf
    log_loss = np.log(np.where(np.isfinite(final_loss), final_loss, 1e3))
    times, lags = [0.005, 0.015], [5, 10]
    pairs = [f"{i}-{j}" for i in range(1, d + 1) for j in range(i + 1, d + 1)]
    ftle = rng.normal(size=(n, len(times), d))
    ftle[:, :, 0] += log_loss[:, None]
    ftle[:5] = np.nan                                       # diverged before t*
    angle = rng.uniform(0, 1.5, size=(n, len(lags), len(times), len(pairs)))
    angle[..., 0] = 0.7
    growth = rng.normal(size=(n, len(lags), len(times), d))
    angle[:5], growth[:5] = np.nan, np.nan
    return xr.Dataset(
        {"final_loss": ("network", final_loss),
         "ftle_at": (("network", "prediction_time", "exponent"), ftle),
         "clv_angle_lagged": (("network", "lag", "prediction_time", "pair"), angle),
         "clv_growth_lagged": (("network", "lag", "prediction_time", "exponent"), growth),
         "lagged_available_time": (("lag", "prediction_time"),
                                   np.add.outer(np.array(lags) * 1e-3, times))},
        coords={"network": np.arange(n), "prediction_time": times, "exponent": np.arange(1, d + 1),
                "lag": lags, "pair": pairs},
        attrs={"activation": "tanh", "initialization": "uniform"})


def test_predict_combination(no_warnings, default_config):
    G = synthetic_gathered()
    P, rows = predict_combination(G, default_config)
    assert len(rows) == 2 * 2 * len(feature_sets(9))
    assert all(set(r) == set(AUC_COLUMNS) for r in rows)
    df = pd.DataFrame(rows, columns=AUC_COLUMNS)
    ok = df[df.computable]
    assert not ok[["auc_mean", "auc_std", "t", "available_time", "n_positive",
                   "n_negative"]].isna().any().any()
    assert (df.n_dropped == 5).all()                        # the runs diverged before t*
    bad = df[~df.computable]
    assert set(bad.feature) == {"clv_angles", "combined"}   # contain the constant angle 1-2
    assert bad.reason.str.contains("clv_angle_1-2").all() and bad.auc_mean.isna().all()
    assert df[df.feature == "ftle_all"].single_auc.isna().all()
    assert not ok[ok.feature == "ftle_1"].single_auc.isna().any()
    best = ok[ok.event == "high"].sort_values("auc_mean").iloc[-1]
    assert best.family == "FTLE" and best.auc_mean > 0.8
    # CLV predictors are available only at t* + L (L = prediction.clv_lag = 10 steps)
    np.testing.assert_allclose(P.available_time.sel(feature="clv_growth"), [0.015, 0.025])
    np.testing.assert_allclose(P.available_time.sel(feature="ftle_1"), [0.005, 0.015])
    assert np.isnan(P.auc_mean.sel(feature="clv_angles")).all()
    assert np.isfinite(P.roc_tpr.sel(event="high", feature="ftle_1")).all()
    # early stopping with the best E_high predictor: monotone in the threshold
    saved = P.stop_compute_saved.values
    assert np.isfinite(saved).all() and (np.diff(saved, axis=1) <= 0).all()
    assert list(P.stop_feature.values) != ["", ""]

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


def test_early_stopping_edge_cases():
    res = early_stopping_curve([0.2, 0.8], [False, False], [True, False], 10, 100, [0.5])
    assert res.low_stopped is None and res.high_caught.tolist() == [0.0]
    with pytest.raises(ValueError, match="non-finite"):
        early_stopping_curve([np.nan, 0.5], [True, False], [False, True], 10, 100, [0.5])
    with pytest.raises(ValueError, match="stop_step"):
        early_stopping_curve([0.5], [True], [False], 200, 100, [0.5])
