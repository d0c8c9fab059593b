"""The study's tables: class fractions, AUCs, and a short Markdown summary of both.

* ``classes.csv``: activation, initialization, n, frac_low, frac_middle, frac_high,
  frac_diverged (diverged runs are part of frac_high);
* ``auc.csv``: the rows of :func:`weightdyn.prediction.predict_combination` of every
  combination (columns :data:`weightdyn.prediction.AUC_COLUMNS`; not computable: empty AUC);
* ``summary.md``: both, condensed to the best FTLE and the best CLV predictor of each event at
  the headline prediction time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .prediction import AUC_COLUMNS, EVENTS


def classes_table(gathered: Mapping[tuple[str, str], object]) -> pd.DataFrame:
    """Class fractions of each combination from its gathered dataset (outcome 0/1/2)."""
    rows = []
    for (act, init), G in gathered.items():
        outcome = G["outcome"].values
        rows.append(dict(activation=act, initialization=init, n=int(outcome.size),
                         frac_low=float(np.mean(outcome == 0)),
                         frac_middle=float(np.mean(outcome == 1)),
                         frac_high=float(np.mean(outcome == 2)),
                         frac_diverged=float(np.mean(G["diverged"].values == 1))))
    return pd.DataFrame(rows)


def auc_table(frames) -> pd.DataFrame:
    """All combinations' AUC rows in one table (columns AUC_COLUMNS)."""
    return pd.concat(list(frames), ignore_index=True)[list(AUC_COLUMNS)]


def best_predictors(auc: pd.DataFrame, t: float) -> pd.DataFrame:
    """Per combination and event, the computable FTLE and CLV feature set with the highest
    mean AUC at prediction time ``t``."""
    at = auc[np.isclose(auc["t"], t) & auc["computable"] & auc["family"].isin(["FTLE", "CLV"])]
    best = at.loc[at.groupby(["activation", "initialization", "event", "family"],
                             sort=False)["auc_mean"].idxmax()]
    return best[["activation", "initialization", "event", "family", "feature", "auc_mean",
                 "auc_std", "available_time", "n_positive", "n_negative"]]


def summary_markdown(classes: pd.DataFrame, auc: pd.DataFrame, t: float) -> str:
    """Markdown summary: class fractions and the best predictors at the headline time ``t``."""
    lines = ["# weightdyn: summary of the results", "",
             "## Outcome classes (fractions of the runs)", "",
             "| activation | initialization | n | low | middle | high | diverged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in classes.itertuples():
        lines.append(f"| {r.activation} | {r.initialization} | {r.n} | {r.frac_low:.3f} | "
                     f"{r.frac_middle:.3f} | {r.frac_high:.3f} | {r.frac_diverged:.3f} |")
    lines += ["", f"## Best predictors at t* = {t:g} (cross-validated AUC, mean ± std)", "",
              "CLV predictors use the fixed-lag estimate and are available only at t* + L "
              "(column 'available at').", "",
              "| activation | initialization | event | family | feature set | AUC | "
              "available at | n+ / n− |", "|---|---|---|---|---|---|---:|---|"]
    best = best_predictors(auc, t)
    for event in EVENTS:
        for r in best[best["event"] == event].itertuples():
            lines.append(f"| {r.activation} | {r.initialization} | {event} | {r.family} | "
                         f"{r.feature} | {r.auc_mean:.3f} ± {r.auc_std:.3f} | "
                         f"{r.available_time:g} | {r.n_positive} / {r.n_negative} |")
    return "\n".join(lines) + "\n"
