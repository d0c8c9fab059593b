"""weightdyn.tables on small hand-made inputs."""

import numpy as np
import pandas as pd
import xarray as xr

from weightdyn.prediction import AUC_COLUMNS
from weightdyn.tables import auc_table, best_predictors, classes_table, summary_markdown


def gathered(outcome, diverged):
    return xr.Dataset({"outcome": ("network", np.array(outcome, dtype=np.int8)),
                       "diverged": ("network", np.array(diverged, dtype=np.int8))})


def auc_rows(act, init):
    rows = []
    for event in ("low", "high"):
        for feature, family, auc in (("ftle_1", "FTLE", 0.7), ("ftle_all", "FTLE", 0.8),
                                     ("clv_growth", "CLV", 0.9), ("clv_angles", "CLV", None)):
            rows.append(dict(activation=act, initialization=init, event=event, feature=feature,
                             family=family, t=0.015, available_time=0.015, auc_mean=auc,
                             auc_std=None if auc is None else 0.01, single_auc=None,
                             n_positive=10, n_negative=30, n_dropped=0,
                             computable=auc is not None, reason="" if auc else "no variance"))
    return pd.DataFrame(rows, columns=AUC_COLUMNS)


def test_classes_table_counts_diverged_runs_as_high():
    table = classes_table({("tanh", "uniform"): gathered([0, 0, 1, 2], [0, 0, 0, 1])})
    row = table.iloc[0]
    assert (row.n, row.frac_low, row.frac_middle, row.frac_high, row.frac_diverged) == \
        (4, 0.5, 0.25, 0.25, 0.25)


def test_best_predictors_and_summary():
    auc = auc_table([auc_rows("tanh", "uniform"), auc_rows("relu", "normal")])
    assert list(auc.columns) == list(AUC_COLUMNS) and len(auc) == 16
    best = best_predictors(auc, 0.015)
    assert len(best) == 2 * 2 * 2                       # combinations × events × families
    assert set(best[best.family == "FTLE"].feature) == {"ftle_all"}
    assert set(best[best.family == "CLV"].feature) == {"clv_growth"}
    classes = classes_table({("tanh", "uniform"): gathered([0, 2], [0, 0]),
                             ("relu", "normal"): gathered([2, 2], [0, 1])})
    text = summary_markdown(classes, auc, 0.015)
    assert "| relu | normal | 2 | 0.000 | 0.000 | 1.000 | 0.500 |" in text
    assert "| tanh | uniform | high | CLV | clv_growth | 0.900 ± 0.010 | 0.015 | 10 / 30 |" in text
    assert "nan" not in text.lower()
