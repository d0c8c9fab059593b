"""weightdyn.tables on small hand-made inputs and on real prediction rows."""

import copy

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from weightdyn.prediction import AUC_COLUMNS, predict_combination
from weightdyn.tables import (
    GATHERED_VARIABLES, auc_table, best_available, classes_table, clv_convergence_table,
    curvature_table, first_clv_time, nearest, stability_table, summary_markdown,
)


def gathered(outcome, diverged):
    return xr.Dataset({"outcome": ("network", np.array(outcome, dtype=np.int8)),
                       "diverged": ("network", np.array(diverged, dtype=np.int8))})


def best_rows(act, init, event="high"):
    """Hand-made best-available rows at τ = 0.015 and 0.025 (CLV first at 0.025)."""
    rows = []
    for tau in (0.015, 0.025):
        for family, auc in (("baseline", 0.70), ("FTLE", 0.75), ("CLV", 0.80),
                            ("combined", 0.85), ("all", 0.85)):
            ok = not (family == "CLV" and tau < 0.02)
            delta = family in ("FTLE", "CLV", "combined") and ok
            rows.append(dict(activation=act, initialization=init, event=event,
                             kind="best_available", family=family, feature=f"best_{family}",
                             t=tau, available_time=tau, auc_mean=auc if ok else None,
                             auc_std=0.01 if ok else None,
                             auc_ci_low=auc - 0.02 if ok else None,
                             auc_ci_high=auc + 0.02 if ok else None, n_positive=10,
                             n_negative=30, n_dropped=0, computable=ok,
                             reason="" if ok else "no CLV set available by 0.015",
                             chosen=f"x@{tau:g} (5/5 folds)" if ok else None,
                             delta_vs_baseline=auc - 0.70 if delta else None,
                             delta_ci_low=auc - 0.75 if delta else None,
                             delta_ci_high=auc - 0.65 if delta else None,
                             p_vs_baseline=0.01 if delta else None))
    rows.append(dict(activation=act, initialization=init, event=event, kind="set",
                     family="ginelli_bound", feature="ginelli_all", t=0.015,
                     available_time=3.0, auc_mean=0.95, auc_std=0.01, auc_ci_low=0.93,
                     auc_ci_high=0.97, n_positive=10, n_negative=30, n_dropped=0,
                     computable=True, reason=""))
    return pd.DataFrame(rows).reindex(columns=AUC_COLUMNS)


def test_classes_table_counts_diverged_runs_as_high():
    table = classes_table({("tanh", "uniform"): gathered([0, 0, 1, 2], [0, 0, 0, 1])})
    row = table.iloc[0]
    assert (row.n, row.frac_low, row.frac_middle, row.frac_high, row.frac_diverged) == \
        (4, 0.5, 0.25, 0.25, 0.25)


def test_best_available_and_summary(tmp_path):
    auc = auc_table([best_rows("tanh", "uniform"), best_rows("relu", "normal")])
    assert list(auc.columns) == list(AUC_COLUMNS)
    auc.to_csv(tmp_path / "auc.csv", index=False)          # round trip as the workflow does
    auc = pd.read_csv(tmp_path / "auc.csv")
    assert len(best_available(auc, 0.015)) == 2 * 5
    assert first_clv_time(auc) == pytest.approx(0.025)
    assert nearest(auc.t, 0.0149) == pytest.approx(0.015)
    classes = classes_table({("tanh", "uniform"): gathered([0] * 99 + [2], [0] * 100),
                             ("relu", "normal"): gathered([2, 2], [0, 1])})
    text = summary_markdown(classes, auc, 0.015)
    assert "| relu | normal | 2 | 0.000 | 0.000 | 1.000 | 0.500 |" in text
    # headline τ and first CLV τ rows, every AUC with its interval, deltas with CI and p
    assert "| tanh | uniform | high | 0.015 | 0.700 [0.680, 0.720] x@0.015 (5/5 folds) |" in text
    assert "0.750 [0.730, 0.770] x@0.015 (5/5 folds); Δ +0.050 [+0.000, +0.100], p = 0.01" in text
    assert "| tanh | uniform | high | 0.025 |" in text
    assert "upper bound, uses the future" in text
    # E_low omitted: one sentence with the middle-class count
    assert "tanh, uniform: E_low is not reported, because the middle class holds 0 of 100" in text
    assert "nan" not in text.lower()


def test_summary_from_real_prediction_rows(config):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_prediction import prediction_config, synthetic_gathered

    cfg = prediction_config(copy.deepcopy(config), repeats=1)
    G = synthetic_gathered(n=300)
    _, rows = predict_combination(G, cfg)
    auc = auc_table([pd.DataFrame(rows, columns=AUC_COLUMNS)])
    text = summary_markdown(classes_table({("tanh", "uniform"): G}), auc, 0.015)
    lines = [line for line in text.splitlines()
             if line.startswith("| tanh | uniform | ") and "[" in line]
    assert {line.split(" | ")[2] for line in lines} == {"high", "low"}
    assert all(line.count("[") >= 4 for line in lines)       # baseline, FTLE, combined, Ginelli
    assert "nan" not in text.lower()


def test_clv_convergence_table_and_summary_section():
    """Per lag, the median (over valid networks) angle of each fixed-lag CLV to Ginelli's at
    the worst prediction time; the summary marks the features' lag and judges their CLVs."""
    err = np.zeros((4, 2, 2, 3))                        # network, lag, prediction_time, exponent
    err[:, 1, 0, :] = [[0.01, 0.2, 0.0], [0.03, 0.4, 0.0], [0.02, 0.3, 0.0], [9.0, 9.0, 9.0]]
    err[:, 1, 1, :] = 0.001
    err[:, 0, :, :] = 1.0
    G = xr.Dataset(
        {"clv_lag_error": (("network", "lag", "prediction_time", "exponent"), err),
         "valid": ("network", [1, 1, 1, 0])},
        coords={"lag": [10, 300], "prediction_time": [0.015, 0.1], "exponent": [1, 2, 3]})
    table = clv_convergence_table({("tanh", "normal"): G})
    assert list(table.columns) == ["activation", "initialization", "lag", "clv_1", "clv_2",
                                   "clv_3"]
    np.testing.assert_allclose(table[["clv_1", "clv_2", "clv_3"]].values,
                               [[1.0, 1.0, 1.0], [0.02, 0.3, 0.001]])   # worst t*, valid only
    classes = classes_table({("tanh", "normal"): gathered([0, 2, 2, 0], [0, 0, 0, 0])})
    empty = pd.DataFrame(columns=AUC_COLUMNS)
    text = summary_markdown(classes, empty, 0.015, convergence=table, lag=300, clv_vectors=[1, 3])
    assert "CLVs 1, 3 at L = 300 steps" in text
    assert "| tanh | normal | 300* | 0.020 | 0.300 | 0.001 | yes |" in text
    assert "| tanh | normal | 10 | 1.000 | 1.000 | 1.000 | no |" in text
    text = summary_markdown(classes, empty, 0.015, convergence=table, lag=300, clv_vectors=[2])
    assert "| tanh | normal | 300* | 0.020 | 0.300 | 0.001 | no |" in text


def test_stability_table_by_class():
    """Whole-run Λ_1 and tangency frequency of the chosen CLV pairs, per class (valid runs)."""
    lam = np.zeros((5, 3))
    lam[:, 0] = [-1.0, -3.0, 0.2, 0.9, 5.0]
    tang = np.zeros((5, 3))                               # pairs 1-2, 1-3, 2-3
    tang[:, 2] = [0.0, 0.0, 0.1, 0.3, 0.9]
    G = xr.Dataset(
        {"lyapunov_exponent": (("network", "exponent"), lam),
         "clv_tangency_fraction": (("network", "pair"), tang),
         "outcome": ("network", [0, 0, 2, 2, 2]), "valid": ("network", [1, 1, 1, 1, 0])},
        coords={"exponent": [1, 2, 3], "pair": ["1-2", "1-3", "2-3"]})
    table = stability_table({("tanh", "normal"): G}, [2, 3]).set_index("outcome")
    assert table.loc["low", "n"] == 2 and table.loc["high", "n"] == 2      # invalid run left out
    assert table.loc["low", "lyapunov_1_median"] == -2.0
    assert table.loc["high", "lyapunov_1_median"] == pytest.approx(0.55)
    assert table.loc["high", "frac_lyapunov_1_positive"] == 1.0
    assert table.loc["high", "frac_lyapunov_1_above_0_5"] == 0.5
    assert table.loc["high", "tangency_frequency"] == pytest.approx(0.2)   # pair 2-3 only
    text = summary_markdown(classes_table({("tanh", "normal"): G.assign(
        diverged=("network", [0] * 5))}), pd.DataFrame(columns=AUC_COLUMNS), 0.015,
        stability=stability_table({("tanh", "normal"): G}, [2, 3]))
    assert "| tanh | normal | high | 2 | +0.550 [+0.375, +0.725] | 1.000 | 0.500 | 0.2000 |" in text


def test_tables_read_only_their_gathered_variables():
    """The tables script reads only GATHERED_VARIABLES of each gathered file: enough for every
    gathered table."""
    rng = np.random.default_rng(0)
    G = xr.Dataset(
        {"outcome": ("network", np.array([0, 2, 0, 2], dtype=np.int8)),
         "diverged": ("network", np.array([0, 0, 0, 1], dtype=np.int8)),
         "valid": ("network", np.array([1, 1, 1, 0], dtype=np.int8)),
         "lyapunov_exponent": (("network", "exponent"), rng.normal(size=(4, 3))),
         "clv_tangency_fraction": (("network", "pair"), rng.random((4, 3))),
         "clv_lag_error": (("network", "lag", "prediction_time", "exponent"),
                           rng.random((4, 2, 2, 3))),
         "final_hessian_max": ("network", [10.0, 2000.0, 5.0, np.nan]),
         "final_hessian_min": ("network", [0.5, -3.0, 1e-5, np.nan])},
        coords={"exponent": [1, 2, 3], "pair": ["1-2", "1-3", "2-3"], "lag": [10, 300],
                "prediction_time": [0.015, 0.1]}, attrs={"learning_rate": 1e-3})
    assert set(G.data_vars) == set(GATHERED_VARIABLES)
    data = {("tanh", "normal"): G}
    assert len(classes_table(data)) == 1
    assert len(clv_convergence_table(data)) == 2
    assert set(stability_table(data, [2, 3])["outcome"]) == {"low", "high"}
    assert list(curvature_table(data)["n_finite"]) == [2, 1]
