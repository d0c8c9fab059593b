"""Tests of weightdyn.prediction.classifier and .statistics: naive Bayes against scikit-learn,
DeLong against brute force, nested selection without leakage."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import GaussianNB

from weightdyn.prediction.classifier import (
    cv_set_scores, fold_fit, gnb_fit, gnb_joint_log_likelihood, gnb_log_odds, standardise,
    stratified_splits,
)
from weightdyn.prediction.nested import nested_best, nested_best_many
from weightdyn.prediction.statistics import (
    FPR_GRID, auc, delong_paired, delong_paired_repeats, delong_placements, delong_variance,
    midranks, roc_on_grid, summarise_scores,
)


def brute_placements(scores, y):
    """O(n²) DeLong placement values: V10_i = mean_j ψ(X_i, Y_j), V01_j = mean_i ψ(X_i, Y_j)."""
    x, z = scores[y], scores[~y]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def test_gnb_matches_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) * [1.0, 5.0, 0.1, 2.0] + [0, 3, -1, 10]
    y = rng.random(300) < 0.35
    X[y] += [0.5, -2.0, 0.1, 1.0]
    Xt = rng.normal(size=(50, 4)) * 3
    ours = gnb_fit(X, y)
    ref = GaussianNB().fit(X, y)
    np.testing.assert_allclose(gnb_joint_log_likelihood(ours, Xt),
                               ref.predict_joint_log_proba(Xt), rtol=0, atol=1e-10)
    jll = ref.predict_joint_log_proba(Xt)
    np.testing.assert_allclose(gnb_log_odds(ours, Xt), jll[:, 1] - jll[:, 0], atol=1e-10)
    assert ours.epsilon == pytest.approx(1e-9 * np.var(X, axis=0).max())


def test_fold_terms_sum_to_sklearn_on_standardised_sets():
    """The per-feature terms of any subset sum to GaussianNB's log-odds on that subset of the
    training-standardised features (the decomposition the fast CV relies on)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5)) * [1e-6, 1.0, 1e4, 3.0, 0.5] + [1.0, -2.0, 5e4, 0.0, 7.0]
    y = rng.random(400) < 0.3
    X[y] += [2e-6, 0.5, -3e3, 1.0, 0.0]
    X[~y, 4] = 7.0  # zero variance within one class
    Xt = X[:60] + rng.normal(size=(60, 5)) * X.std(axis=0)
    fit = fold_fit(X, y, Xt)
    terms = fit.terms()
    Z, Zt = standardise(X, Xt)
    for subset in ([0], [1, 2], [0, 2, 4], [0, 1, 2, 3, 4]):
        jll = GaussianNB().fit(Z[:, subset], y).predict_joint_log_proba(Zt[:, subset])
        np.testing.assert_allclose(fit.prior + terms[:, subset].sum(axis=1),
                                   jll[:, 1] - jll[:, 0], rtol=1e-10, atol=1e-8)
    np.testing.assert_array_equal(fit.constant, [False] * 5)


def test_fold_fit_of_a_column_does_not_depend_on_the_other_columns():
    """What lets many candidate lists share one fit per fold (nested_best_many): the numbers
    of a feature are the same, to the last bit, beside any other two or more columns."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 7)) * rng.lognormal(0, 3, 7) + rng.normal(0, 50, 7)
    y = rng.random(500) < 0.3
    train, test = np.arange(400), np.arange(400, 500)
    wide = fold_fit(X[train], y[train], X[test])
    for cols in ([0, 1], [6, 2, 4], list(range(7))):
        narrow = fold_fit(X[train][:, cols], y[train], X[test][:, cols])
        np.testing.assert_array_equal(narrow.terms(), wide.terms(cols))
        assert narrow.prior == wide.prior


def test_splits_are_remembered_read_only_copies_of_sklearn():
    y = np.random.default_rng(3).random(200) < 0.3
    ref = list(StratifiedKFold(5, shuffle=True, random_state=7).split(np.zeros((200, 1)), y))
    for splits in (stratified_splits(y, 5, 7), stratified_splits(y.astype(int), 5, 7)):
        for (train, test), (rtrain, rtest) in zip(splits, ref, strict=True):
            np.testing.assert_array_equal(train, rtrain)
            np.testing.assert_array_equal(test, rtest)
            assert not train.flags.writeable and not test.flags.writeable


def test_midranks_and_auc_with_ties():
    a = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 0.0])
    np.testing.assert_array_equal(midranks(a), [5.0, 2.0, 5.0, 3.0, 5.0, 1.0])
    rng = np.random.default_rng(2)
    s = rng.integers(0, 5, size=(200, 3)).astype(float)
    y = rng.random(200) < 0.4
    np.testing.assert_allclose(auc(s, y), [roc_auc_score(y, s[:, k]) for k in range(3)],
                               atol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_delong_placements_match_brute_force(ties):
    rng = np.random.default_rng(3)
    n = 250
    y = rng.random(n) < 0.3
    s = rng.normal(size=n) + y
    if ties:
        s = np.round(s, 1)
    v10, v01, a = delong_placements(s, y)
    b10, b01 = brute_placements(s, y)
    np.testing.assert_allclose(v10[:, 0], b10, atol=1e-12)
    np.testing.assert_allclose(v01[:, 0], b01, atol=1e-12)
    assert a[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    auc_, var = delong_variance(s, y)
    m, k = y.sum(), (~y).sum()
    assert var == pytest.approx(np.var(b10, ddof=1) / m + np.var(b01, ddof=1) / k, rel=1e-10)


def test_delong_variance_is_calibrated():
    """Over many replicates the DeLong SE matches the spread of the AUC (within 15 %)."""
    rng = np.random.default_rng(4)
    aucs, ses = [], []
    for _ in range(300):
        y = rng.random(300) < 0.4
        s = rng.normal(size=300) + 0.8 * y
        a, v = delong_variance(s, y)
        aucs.append(a)
        ses.append(np.sqrt(v))
    assert np.std(aucs) == pytest.approx(np.mean(ses), rel=0.15)


def test_paired_delong():
    rng = np.random.default_rng(5)
    y = rng.random(1000) < 0.4
    s = rng.normal(size=1000) + 0.5 * y
    same = delong_paired(s, s, y)
    assert same.delta == 0 and same.se == 0 and same.p_value == 1.0
    better = delong_paired(s + 2.0 * y, s, y)
    assert better.delta > 0.1 and better.p_value < 1e-8
    assert better.ci_low > 0 and better.ci_low < better.delta < better.ci_high
    # a noisy copy: the difference is small and not significant, its CI covers 0
    noisy = delong_paired(s + rng.normal(scale=0.05, size=1000), s, y)
    assert abs(noisy.delta) < 0.01 and noisy.p_value > 0.01
    assert noisy.ci_low < 0 < noisy.ci_high
    # the test is calibrated under the null: two independent equally good scores
    ps = []
    for _ in range(200):
        yy = rng.random(300) < 0.5
        a = rng.normal(size=300) + 0.7 * yy
        b = rng.normal(size=300) + 0.7 * yy
        ps.append(delong_paired(a, b, yy).p_value)
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.10


def test_paired_delong_over_repeats_is_the_difference_of_the_mean_aucs():
    rng = np.random.default_rng(8)
    y = rng.random(600) < 0.3
    a = rng.normal(size=(4, 600)) + 1.0 * y            # four CV repeats of two predictors
    b = rng.normal(size=(4, 600)) + 0.6 * y
    res = delong_paired_repeats(a, b, y)
    mean_a = np.mean([auc(r, y) for r in a])
    mean_b = np.mean([auc(r, y) for r in b])
    assert res.delta == pytest.approx(mean_a - mean_b, abs=1e-12)
    per_repeat = [delong_paired(ra, rb, y) for ra, rb in zip(a, b)]
    assert res.se == pytest.approx(np.sqrt(np.mean([t.se ** 2 for t in per_repeat])))
    assert res.ci_low < res.delta < res.ci_high and res.p_value < 0.01
    one = delong_paired_repeats(a[:1], b[:1], y)                   # one repeat: plain DeLong
    assert one.delta == pytest.approx(per_repeat[0].delta) and one.se == per_repeat[0].se
    with pytest.raises(ValueError, match="shapes differ"):
        delong_paired_repeats(a, b[:2], y)


def test_roc_on_grid_matches_sklearn():
    rng = np.random.default_rng(6)
    y = rng.random(500) < 0.3
    s = np.round(rng.normal(size=500) + y, 1)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(roc_on_grid(s, y), np.interp(FPR_GRID, fpr, tpr), atol=1e-12)


def test_cv_set_scores_equal_sklearn_per_fold():
    """The fast CV equals a loop of StandardScaler-on-train + GaussianNB per fold and set."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 3)) * [1, 10, 0.1]
    y = rng.random(200) < 0.4
    X[y, 0] += 1.0
    M = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=float)
    sc = cv_set_scores(X, y, M, folds=4, repeats=2, seed=3)
    assert sc.bad == ["", "", ""]
    for r in range(2):
        for train, test in stratified_splits(y, 4, 3 + r):
            for s, cols in enumerate(([0], [1], [0, 1, 2])):
                Z, Zt = standardise(X[train][:, cols], X[test][:, cols])
                jll = GaussianNB().fit(Z, y[train]).predict_joint_log_proba(Zt)
                np.testing.assert_allclose(sc.oof[r, test, s], jll[:, 1] - jll[:, 0],
                                           rtol=1e-9, atol=1e-8)


def test_summary_interval_and_std():
    rng = np.random.default_rng(8)
    y = rng.random(400) < 0.5
    oof = np.stack([rng.normal(size=400) + y for _ in range(3)])
    sm = summarise_scores(oof, y)
    aucs = [roc_auc_score(y, o) for o in oof]
    assert sm.auc_mean == pytest.approx(np.mean(aucs)) and sm.auc_std == pytest.approx(np.std(aucs))
    var = np.mean([delong_variance(o, y)[1] for o in oof])
    assert sm.auc_ci_high - sm.auc_mean == pytest.approx(1.959963984540054 * np.sqrt(var))
    assert abs(np.trapezoid(sm.mean_tpr, FPR_GRID) - sm.auc_mean) < 0.01


def _nested_problem(seed=9, n=300):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    X = rng.normal(size=(n, 3))
    X[:, 1] += 1.0 * y          # candidate 1 informative
    M = np.eye(3)
    return X, y, M


def test_nested_choice_uses_training_folds_only():
    """Changing the features of the runs in outer test fold k (here: making candidate 2 perfect
    on them) must not change the choice made for fold k, nor its test scores' model."""
    X, y, M = _nested_problem()
    groups = {"g": [0, 1, 2]}
    ref = nested_best(X, y, M, groups, folds=5, repeats=2, seed=0)
    assert (ref.choice["g"] == 1).mean() > 0.8
    for r in range(2):
        for k, (train, test) in enumerate(ref.splits[r]):
            X2 = X.copy()
            X2[test, 2] = 50.0 * y[test]            # leak: perfect only on the scored runs
            X2[test, 0] = np.linspace(-3, 3, test.size)
            alt = nested_best(X2, y, M, groups, folds=5, repeats=2, seed=0)
            assert alt.choice["g"][r, k] == ref.choice["g"][r, k]
            np.testing.assert_array_equal(alt.splits[r][k][0], train)
            chosen = ref.choice["g"][r, k]
            if chosen == 1:  # its feature is unchanged and its model never saw fold k
                np.testing.assert_allclose(alt.oof["g"][r, test], ref.oof["g"][r, test])


def test_nested_equals_manual_selection():
    """The nested choice equals the argmax of the inner CV AUC computed on the training runs."""
    X, y, M = _nested_problem(seed=10)
    res = nested_best(X, y, M, {"all": [0, 1, 2], "pair": [0, 2]}, folds=5, repeats=1, seed=4,
                      inner_seed=11)
    for k, (train, test) in enumerate(res.splits[0]):
        inner = cv_set_scores(X[train], y[train], M, folds=5, repeats=1, seed=11)
        inner_auc = auc(inner.oof[0], y[train])
        assert res.choice["all"][0, k] == int(np.argmax(inner_auc))
        assert [0, 2][res.choice["pair"][0, k]] == [0, 2][int(np.argmax(inner_auc[[0, 2]]))]
        best = int(np.argmax(inner_auc))
        Z, Zt = standardise(X[train][:, [best]], X[test][:, [best]])
        jll = GaussianNB().fit(Z, y[train]).predict_joint_log_proba(Zt)
        np.testing.assert_allclose(res.oof["all"][0, test], jll[:, 1] - jll[:, 0], atol=1e-8)


def test_nested_many_equals_nested_best_of_each_problem():
    """Several candidate lists over overlapping columns, fitted once per fold: exactly (to the
    last bit) the result of nested_best on each list's own columns, single columns included."""
    rng = np.random.default_rng(13)
    n = 300
    y = rng.random(n) < 0.35
    X = rng.normal(size=(n, 6)) + np.outer(y, [0.2, 1.0, 0.0, 0.5, 0.8, 0.1])
    X[:, 3] = np.round(X[:, 3], 1)  # ties
    problems = [([0, 1, 2], np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1.0]]),
                 {"a": [0, 1], "all": [0, 1, 2]}),
                ([2, 4], np.eye(2), {"g": [0, 1]}),
                ([5], np.ones((1, 1)), {"single": [0]}),
                (slice(None), np.eye(6), {"every": list(range(6)), "odd": [1, 3, 5]})]
    many = nested_best_many(X, y, problems, folds=4, repeats=2, seed=5)
    for (cols, M, groups), res in zip(problems, many, strict=True):
        ref = nested_best(np.ascontiguousarray(X[:, cols]), y, M, groups, folds=4, repeats=2,
                          seed=5)
        for g in groups:
            np.testing.assert_array_equal(res.choice[g], ref.choice[g])
            np.testing.assert_array_equal(res.oof[g], ref.oof[g])
    # a single-column X under a two-feature candidate (the same feature twice)
    (res,) = nested_best_many(X[:, :1], y, [([0, 0], np.ones((2, 1)), {"g": [0]})], folds=4,
                              repeats=1, seed=5)
    ref = nested_best(X[:, [0, 0]], y, np.ones((2, 1)), {"g": [0]}, folds=4, repeats=1, seed=5)
    np.testing.assert_array_equal(res.oof["g"], ref.oof["g"])


def test_nested_selection_is_not_optimistic():
    """Among many useless candidates, choosing the best on the scoring folds is optimistic;
    the nested pseudo-predictor stays near 0.5."""
    rng = np.random.default_rng(12)
    n, c = 200, 30
    y = rng.random(n) < 0.5
    X = rng.normal(size=(n, c))
    M = np.eye(c)
    res = nested_best(X, y, M, {"g": list(range(c))}, folds=5, repeats=3, seed=0)
    nested = summarise_scores(res.oof["g"], y).auc_mean
    plain = cv_set_scores(X, y, M, folds=5, repeats=3, seed=0)
    naive = max(summarise_scores(plain.oof[:, :, s], y).auc_mean for s in range(c))
    assert naive > 0.55 and abs(nested - 0.5) < 0.07 and nested < naive
