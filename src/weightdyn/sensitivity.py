"""Sensitivity of the study's results to one configuration value (a sweep).

A sweep reruns the study at several values of one configuration key (e.g.
``training.learning_rate``). :func:`sweep_table` condenses every point to one row per
(value, activation, initialisation): the class fractions, the prediction of E_high at the
headline time by the nested best baseline and the nested best indicator, and the curvature at
the end of training (:func:`weightdyn.tables.curvature_table`); :func:`sweep_markdown` prints
it for the report and README, and :func:`weightdyn.figures.sweep_figure` plots it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .outcomes import CLASS_LABELS, HIGH, LOW
from .tables import EDGE_BAND, INDEFINITE, _truthy, classes_table, curvature_table

__all__ = ["SWEEP_COLUMNS", "SWEEP_GATHERED_VARIABLES", "sweep_markdown", "sweep_table"]

#: the variables of the gathered datasets that :func:`sweep_table` reads (and the attribute
#: ``learning_rate``)
SWEEP_GATHERED_VARIABLES = ("outcome", "diverged", "final_hessian_max", "final_hessian_min")

#: the event the sweep reports
_EVENT = "high"

#: (column prefix, best_available feature) of the predictors in the sweep table
_PREDICTORS = (("best_baseline", "best_baseline"), ("best_indicator", "best_FTLE"),
               ("best_clv", "best_CLV"))

#: columns of :func:`sweep_table`
SWEEP_COLUMNS = (
    "value", "activation", "initialization", "n", "frac_low", "frac_middle", "frac_high",
    "frac_diverged", "t",
    *(f"{prefix}_{q}" for prefix, _ in _PREDICTORS
      for q in ("auc", "ci_low", "ci_high", "chosen")),
    "indicator_delta", "indicator_delta_ci_low", "indicator_delta_ci_high", "indicator_p",
    "final_sharpness_median_low", "final_sharpness_median_high", "frac_high_at_edge",
    "frac_high_indefinite",
)


def _best_row(rows: pd.DataFrame, feature: str, t: float | None):
    """The computable ``feature`` row at time ``t`` (float tolerance), or None."""
    if t is None:
        return None
    r = rows[(rows["feature"] == feature)
             & np.isclose(rows["t"].astype(float), t, rtol=1e-9, atol=1e-12)]
    r = r[_truthy(r["computable"])]
    return None if r.empty else r.iloc[0]


def _latest(times: pd.Series, t_star: float) -> float | None:
    """The largest of ``times`` not after ``t_star`` (relative tolerance 1e-9), or None."""
    times = times.astype(float)
    before = times[times <= t_star * (1 + 1e-9)]
    return None if before.empty else float(before.max())


def _predictor_columns(rows: pd.DataFrame, t: float | None) -> dict:
    out = {}
    for prefix, feature in _PREDICTORS:
        r = _best_row(rows, feature, t)
        for q, col in (("auc", "auc_mean"), ("ci_low", "auc_ci_low"), ("ci_high", "auc_ci_high")):
            out[f"{prefix}_{q}"] = np.nan if r is None else float(r[col])
        chosen = None if r is None else r.get("chosen")
        out[f"{prefix}_chosen"] = chosen if isinstance(chosen, str) else ""
    r = _best_row(rows, "best_FTLE", t)
    for name, col in (("indicator_delta", "delta_vs_baseline"),
                      ("indicator_delta_ci_low", "delta_ci_low"),
                      ("indicator_delta_ci_high", "delta_ci_high"),
                      ("indicator_p", "p_vs_baseline")):
        out[name] = np.nan if r is None else float(r[col])
    return out


def _curvature_columns(curvature: pd.DataFrame, key) -> dict:
    c = curvature[(curvature["activation"] == key[0]) & (curvature["initialization"] == key[1])]
    c = c.set_index("class")

    def get(name, column):
        return float(c.loc[name, column]) if name in c.index else np.nan

    low, high = CLASS_LABELS[LOW], CLASS_LABELS[HIGH]
    return dict(final_sharpness_median_low=get(low, "sharpness_median"),
                final_sharpness_median_high=get(high, "sharpness_median"),
                frac_high_at_edge=get(high, "frac_at_edge"),
                frac_high_indefinite=get(high, "frac_indefinite"))


def sweep_table(points: Sequence[tuple[object, Mapping, pd.DataFrame]],
                t_star: float) -> pd.DataFrame:
    """One row per (value, activation, initialisation) of a sweep (columns
    :data:`SWEEP_COLUMNS`), in the order of ``points`` and then of each point's gathered mapping.

    ``points``: (swept value, gathered datasets {(activation, initialization): dataset},
    prediction rows of that point: the prediction CSVs concatenated). Event E_high only:

    * n, frac_low, frac_middle, frac_high, frac_diverged:
      :func:`weightdyn.tables.classes_table` (a learning rate at which the low-loss minimum is
      linearly unstable leaves runs between the thresholds: the middle class);
    * t: the latest availability time of the 'best_available' rows not after ``t_star`` (a
      point's own time grid may move t* earlier, e.g. 0.015 → 0.012 at large learning rates:
      :func:`weightdyn.plan.point_config`); NaN if there is none;
    * best_baseline_*, best_indicator_*: AUC [95 % CI] and chosen set of the nested best
      baseline and the nested best FTLE set at t. The indicator is the FTLE family because it
      is the only indicator family available at the headline time (CLV features need t* + L);
      best_clv_* is the nested best CLV set where it is available and computable at t (NaN
      otherwise). indicator_delta [ci_low, ci_high], indicator_p: the paired DeLong difference
      of the best FTLE set to the best baseline. Not computable: NaN AUC, empty chosen;
    * final_sharpness_median_low / _high: median η·λ_max at the end of training by class;
      frac_high_at_edge, frac_high_indefinite: fractions of the finite high-class runs at the
      edge of stability and with significant negative curvature
      (:func:`weightdyn.tables.curvature_table`).
    """
    rows = []
    for value, gathered, predictions in points:
        classes = classes_table(gathered).set_index(["activation", "initialization"])
        curvature = curvature_table(gathered)
        pred = predictions if predictions is not None else pd.DataFrame(
            columns=["activation", "initialization", "event", "kind", "feature", "t"])
        pred = pred[(pred["kind"] == "best_available") & (pred["event"] == _EVENT)]
        for key in gathered:
            c = classes.loc[key]
            mine = pred[(pred["activation"] == key[0]) & (pred["initialization"] == key[1])]
            t = _latest(mine["t"], float(t_star))
            rows.append(dict(value=value, activation=key[0], initialization=key[1],
                             n=int(c["n"]), frac_low=float(c["frac_low"]),
                             frac_middle=float(c["frac_middle"]),
                             frac_high=float(c["frac_high"]),
                             frac_diverged=float(c["frac_diverged"]),
                             t=np.nan if t is None else t, **_predictor_columns(mine, t),
                             **_curvature_columns(curvature, key)))
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def _value(v) -> str:
    """A swept value as written in tables and tick labels (numbers in %g)."""
    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        return f"{v:g}"
    return str(v)


def _num(v, fmt: str = ".3f") -> str:
    return "n/a" if pd.isna(v) else f"{v:{fmt}}"


def _auc(r, prefix: str) -> str:
    if pd.isna(r[f"{prefix}_auc"]):
        return "n/a"
    return f"{r[f'{prefix}_auc']:.3f} [{r[f'{prefix}_ci_low']:.3f}, {r[f'{prefix}_ci_high']:.3f}]"


def _delta(r) -> str:
    if pd.isna(r["indicator_delta"]):
        return "n/a"
    return (f"{r['indicator_delta']:+.3f} [{r['indicator_delta_ci_low']:+.3f}, "
            f"{r['indicator_delta_ci_high']:+.3f}]")


def sweep_markdown(table: pd.DataFrame, name: str, key: str) -> str:
    """A compact Markdown section of :func:`sweep_table` for sweep ``name`` over the
    configuration key ``key``: class fractions, AUC [95 % CI] of E_high at t of the best
    baseline and the best FTLE set and their difference, and the final sharpness by class."""
    lines = [f"## Sweep {name}: {key}", "",
             "E_high at t (the latest prediction time not after the headline time t*): AUC "
             "[95 % DeLong interval] of the nested best baseline and of the nested best FTLE set, "
             "Δ their "
             "paired difference [95 % CI]; η·λ_max: median sharpness at the end of training by "
             "class; at edge / indefinite: fractions of the high-class runs with |η·λ_max − 2| ≤ "
             f"{EDGE_BAND:g} / with λ_min < −{INDEFINITE:g}·|λ_max| (curvature.csv).", "",
             f"| {key} | activation | initialization | n | low | middle | high | diverged | t | "
             "baseline | FTLE | Δ FTLE | η·λ_max low | η·λ_max high | at edge | indefinite |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|"]
    for r in table.to_dict("records"):
        lines.append(
            f"| {_value(r['value'])} | {r['activation']} | {r['initialization']} | {r['n']} | "
            f"{_num(r['frac_low'])} | {_num(r['frac_middle'])} | "
            f"{_num(r['frac_high'])} | {_num(r['frac_diverged'])} | {_num(r['t'], 'g')} | "
            f"{_auc(r, 'best_baseline')} | {_auc(r, 'best_indicator')} | {_delta(r)} | "
            f"{_num(r['final_sharpness_median_low'], '.3g')} | "
            f"{_num(r['final_sharpness_median_high'], '.3g')} | "
            f"{_num(r['frac_high_at_edge'])} | {_num(r['frac_high_indefinite'])} |")
    return "\n".join(lines) + "\n"
