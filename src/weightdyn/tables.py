"""The study's tables: class fractions, AUCs, and a short Markdown summary.

* ``classes.csv``: activation, initialization, n, frac_low, frac_middle, frac_high,
  frac_diverged (diverged runs are part of frac_high);
* ``auc.csv``: the rows of :func:`weightdyn.prediction.predict_combination` of every
  combination (columns :data:`weightdyn.prediction.AUC_COLUMNS`): ``kind`` = 'set' (every feature
  set at every prediction time, with its 95 % DeLong interval) and 'best_available' (the nested
  best of each family available by time τ = ``t`` = ``available_time``, with the paired DeLong
  comparison against the baseline family's best at the same τ); not computable: empty AUC;
* ``summary.md``: class fractions, and per combination and event the best-available table at
  the headline time and at the first time a CLV predictor is available. Every AUC has its
  interval; every "best" is the nested choice (never chosen on the folds that score it); the
  Ginelli sets are labelled as an upper bound;
* ``curvature.csv``: :func:`curvature_table`, the curvature of the cost at the end of training
  by class: sharpness η·λ_max(H) and the smallest Hessian eigenvalue λ_min(H), with the
  fractions of runs at and beyond the edge of stability (η·λ_max = 2, :data:`EDGE_BAND`), with
  significant negative curvature (:data:`INDEFINITE`) and with a (near-)flat direction
  (:data:`FLAT`); ``summary.md`` gets a short section from it when given.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .outcomes import CLASS_LABELS, EVENTS, HIGH, LOW, MIDDLE
from .prediction import AUC_COLUMNS, CLV_CONVERGENCE_ANGLE, INDICATOR_FAMILIES

__all__ = [
    "CURVATURE_COLUMNS", "EDGE_BAND", "FLAT", "GATHERED_VARIABLES", "INDEFINITE",
    "STABILITY_EDGE", "auc_table",
    "best_available", "classes_table", "clv_convergence_table", "curvature_table",
    "first_clv_time", "nearest", "stability_table", "summary_markdown",
]

#: the variables of the gathered datasets that the tables read
GATHERED_VARIABLES = ("outcome", "diverged", "valid", "lyapunov_exponent",
                      "clv_tangency_fraction", "clv_lag_error", "final_hessian_max",
                      "final_hessian_min")

#: the edge of linear stability of gradient descent: η·λ_max(H) = 2 (on the quadratic model the
#: step multiplies the λ_max component by 1 − ηλ_max, which grows in size once ηλ_max > 2)
STABILITY_EDGE = 2.0
#: half-width of the edge of stability: a run is *at the edge* when |η·λ_max − 2| ≤ EDGE_BAND
#: and *beyond* it when η·λ_max > 2 + EDGE_BAND (gradient descent on the quadratic model is
#: linearly stable only while η·λ_max < 2)
EDGE_BAND = 0.1
#: significant negative curvature: the Hessian is *indefinite* when λ_min < −INDEFINITE·|λ_max|
#: (a negative eigenvalue beyond the relative round-off scale of the largest one)
INDEFINITE = 1e-3
#: a (near-)flat direction without negative curvature: −INDEFINITE·|λ_max| ≤ λ_min ≤
#: FLAT·|λ_max| (the smallest eigenvalue is zero relative to the largest)
FLAT = 1e-3

#: columns of :func:`curvature_table`
CURVATURE_COLUMNS = (
    "activation", "initialization", "class", "n", "n_finite", "sharpness_median",
    "sharpness_q10", "sharpness_q90", "lambda_min_median", "lambda_min_q10", "lambda_min_q90",
    "lambda_max_median", "frac_at_edge", "frac_beyond_edge", "frac_indefinite", "frac_flat",
)


def classes_table(gathered: Mapping[tuple[str, str], object]) -> pd.DataFrame:
    """Class fractions of each combination from its gathered dataset (``outcome`` = LOW, MIDDLE
    or HIGH of weightdyn.outcomes; ``diverged`` = 1 for a diverged run)."""
    rows = []
    for (act, init), G in gathered.items():
        outcome = G["outcome"].values
        rows.append(dict(activation=act, initialization=init, n=int(outcome.size),
                         frac_low=float(np.mean(outcome == LOW)),
                         frac_middle=float(np.mean(outcome == MIDDLE)),
                         frac_high=float(np.mean(outcome == HIGH)),
                         frac_diverged=float(np.mean(G["diverged"].values == 1))))
    return pd.DataFrame(rows)


def clv_convergence_table(gathered: Mapping[tuple[str, str], object]) -> pd.DataFrame:
    """Per combination and lag L: for every CLV i (columns ``clv_<i>``) the median over valid
    networks of the angle (rad) between the fixed-lag estimate and Ginelli's CLV, at the worst
    prediction time (the maximum over t* of the median): the data behind the choice of
    ``prediction.clv_lag`` (figure 8 shows one t*)."""
    rows = []
    for (act, init), G in gathered.items():
        median = G["clv_lag_error"].where(G["valid"] == 1).median("network")
        worst = median.max("prediction_time")
        for lag in G["lag"].values:
            rows.append(dict(activation=act, initialization=init, lag=int(lag),
                             **{f"clv_{int(i)}": float(worst.sel(lag=lag, exponent=i))
                                for i in G["exponent"].values}))
    return pd.DataFrame(rows)


def stability_table(gathered: Mapping[tuple[str, str], object], vectors) -> pd.DataFrame:
    """Per combination and outcome class (valid runs of the low and high classes): the median
    and quartiles of the whole-run Λ_1, the fraction of runs with Λ_1 > 0 and with Λ_1 > 0.5
    (beyond the round-off spread of the tanh high-loss runs, docs/conditioning.md), and the
    mean tangency frequency of the CLV pairs among ``vectors`` (paper claim 1)."""
    rows = []
    for (act, init), G in gathered.items():
        lam1 = G["lyapunov_exponent"].sel(exponent=1).values
        pairs = [p for p in G["pair"].values
                 if all(int(k) in set(vectors) for k in str(p).split("-"))]
        tangency = G["clv_tangency_fraction"].sel(pair=pairs).mean("pair").values
        for code in (LOW, HIGH):
            m = (G["outcome"].values == code) & (G["valid"].values == 1)
            if not m.any():
                continue
            q = np.quantile(lam1[m], [0.25, 0.5, 0.75])
            rows.append(dict(activation=act, initialization=init, outcome=CLASS_LABELS[code],
                             n=int(m.sum()),
                             lyapunov_1_q25=q[0], lyapunov_1_median=q[1], lyapunov_1_q75=q[2],
                             frac_lyapunov_1_positive=float(np.mean(lam1[m] > 0)),
                             frac_lyapunov_1_above_0_5=float(np.mean(lam1[m] > 0.5)),
                             tangency_frequency=float(np.nanmean(tangency[m]))))
    return pd.DataFrame(rows)


def _curvature_row(lam_max: np.ndarray, lam_min: np.ndarray, eta: float) -> dict:
    """The statistics of :func:`curvature_table` of one class (final eigenvalues of its runs)."""
    ok = np.isfinite(lam_max) & np.isfinite(lam_min)
    row = dict(n=int(lam_max.size), n_finite=int(ok.sum()))
    lmax, lmin = lam_max[ok], lam_min[ok]
    if not ok.any():
        return row | {c: np.nan for c in CURVATURE_COLUMNS[5:]}
    sharp = eta * lmax
    scale = np.abs(lmax)
    q = np.quantile(sharp, [0.5, 0.1, 0.9])
    qmin = np.quantile(lmin, [0.5, 0.1, 0.9])
    indefinite = lmin < -INDEFINITE * scale
    return row | dict(
        sharpness_median=q[0], sharpness_q10=q[1], sharpness_q90=q[2],
        lambda_min_median=qmin[0], lambda_min_q10=qmin[1], lambda_min_q90=qmin[2],
        lambda_max_median=float(np.median(lmax)),
        frac_at_edge=float(np.mean(np.abs(sharp - STABILITY_EDGE) <= EDGE_BAND)),
        frac_beyond_edge=float(np.mean(sharp > STABILITY_EDGE + EDGE_BAND)),
        frac_indefinite=float(np.mean(indefinite)),
        frac_flat=float(np.mean(~indefinite & (lmin <= FLAT * scale))))


def curvature_table(gathered: Mapping[tuple[str, str], object]) -> pd.DataFrame:
    """Curvature of the cost at the end of training, per combination and outcome class (low
    and high always, middle only if it has runs; columns :data:`CURVATURE_COLUMNS`).

    From ``final_hessian_max`` / ``final_hessian_min`` (λ_max, λ_min of the Hessian H of C at
    the last step) and ``G.attrs['learning_rate']`` η: n runs of the class, n_finite of them
    with both final eigenvalues finite (diverged runs count in n only); over those, the median
    and 10 % / 90 % quantiles of the sharpness η·λ_max and of λ_min, the median λ_max, and the
    fractions at the edge of stability (|η·λ_max − 2| ≤ :data:`EDGE_BAND`), beyond it
    (η·λ_max > 2 + EDGE_BAND), with significant negative curvature (λ_min <
    −:data:`INDEFINITE`·|λ_max|) and with a (near-)flat direction and no significant negative
    curvature (−INDEFINITE·|λ_max| ≤ λ_min ≤ :data:`FLAT`·|λ_max|). NaN where n_finite = 0."""
    rows = []
    for (act, init), G in gathered.items():
        eta = float(G.attrs["learning_rate"])
        outcome = np.asarray(G["outcome"].values)
        lam_max = np.asarray(G["final_hessian_max"].values, dtype=float)
        lam_min = np.asarray(G["final_hessian_min"].values, dtype=float)
        for code in (LOW, MIDDLE, HIGH):
            m = outcome == code
            if code == MIDDLE and not m.any():
                continue
            rows.append(dict(activation=act, initialization=init, **{"class": CLASS_LABELS[code]},
                             **_curvature_row(lam_max[m], lam_min[m], eta)))
    return pd.DataFrame(rows, columns=list(CURVATURE_COLUMNS))


def auc_table(frames) -> pd.DataFrame:
    """All combinations' AUC rows in one table (columns AUC_COLUMNS; absent columns empty)."""
    return pd.concat(list(frames), ignore_index=True).reindex(columns=list(AUC_COLUMNS))


def _truthy(values) -> np.ndarray:
    return np.asarray([str(v).strip().lower() in ("true", "1", "1.0") for v in values])


def nearest(values, target: float) -> float | None:
    """The value closest to ``target`` (None if there is none)."""
    v = np.unique(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    return None if not v.size else float(v[int(np.argmin(np.abs(v - target)))])


def best_available(auc: pd.DataFrame, tau: float) -> pd.DataFrame:
    """The 'best_available' rows at availability time τ (float tolerance)."""
    best = auc[auc["kind"] == "best_available"]
    return best[np.isclose(best["t"].astype(float), tau, rtol=1e-9, atol=1e-12)]


def first_clv_time(auc: pd.DataFrame, event: str = "high") -> float | None:
    """First τ at which the nested best CLV predictor of ``event`` is computable."""
    b = auc[(auc["kind"] == "best_available") & (auc["family"] == "CLV")
            & (auc["event"] == event)]
    b = b[_truthy(b["computable"])]
    return None if b.empty else float(b["t"].astype(float).min())


def _ci(r) -> str:
    if not _truthy([r["computable"]])[0] or pd.isna(r["auc_mean"]):
        return "n/a"
    return f"{r['auc_mean']:.3f} [{r['auc_ci_low']:.3f}, {r['auc_ci_high']:.3f}]"


def _cell(r, with_delta: bool) -> str:
    text = _ci(r)
    if text == "n/a":
        return text
    chosen = r.get("chosen")
    if isinstance(chosen, str) and chosen:
        text += f" {chosen}"
    if with_delta and pd.notna(r.get("delta_vs_baseline")):
        text += (f"; Δ {r['delta_vs_baseline']:+.3f} [{r['delta_ci_low']:+.3f}, "
                 f"{r['delta_ci_high']:+.3f}], p = {r['p_vs_baseline']:.2g}")
    return text


def _ginelli_cell(sets: pd.DataFrame, tau: float) -> str:
    g = sets[(sets["feature"] == "ginelli_all") & (sets["t"].astype(float) <= tau + 1e-12)]
    if g.empty:
        return "n/a"
    r = g.loc[g["t"].astype(float).idxmax()]
    return f"{_ci(r)} (ginelli_all at t* = {float(r['t']):g}; upper bound, uses the future)"


def summary_markdown(classes: pd.DataFrame, auc: pd.DataFrame, t: float,
                     min_middle_fraction: float = 0.01,
                     convergence: pd.DataFrame | None = None, lag: int | None = None,
                     stability: pd.DataFrame | None = None, clv_vectors=None,
                     curvature: pd.DataFrame | None = None) -> str:
    """Markdown summary: class fractions; per combination and event the nested best of each
    family available by τ = the headline time ``t`` (the nearest τ present) and by the first
    τ at which a CLV predictor is available, each AUC with its 95 % DeLong interval, the
    paired DeLong difference to the baseline family's best, and the Ginelli upper bound; and,
    given ``convergence`` (:func:`clv_convergence_table`), the convergence of the fixed-lag
    CLVs at every lag, marking the features' lag ``lag`` and vectors ``clv_vectors``; given
    ``stability`` (:func:`stability_table`), the whole-run stability by class; given
    ``curvature`` (:func:`curvature_table`), the curvature at the end of training by class."""
    lines = ["# weightdyn: summary of the results", "",
             "## Outcome classes (fractions of the runs)", "",
             "| activation | initialization | n | low | middle | high | diverged |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in classes.itertuples():
        lines.append(f"| {r.activation} | {r.initialization} | {r.n} | {r.frac_low:.3f} | "
                     f"{r.frac_middle:.3f} | {r.frac_high:.3f} | {r.frac_diverged:.3f} |")
    lines += ["", "## Best predictor available by time τ (nested cross-validation)", "",
              "AUC: mean over CV repeats of the pooled out-of-fold AUC [95 % DeLong interval]. "
              "The best set of each family is chosen by inner cross-validation on each outer "
              "training fold (never on the folds that score it); the set named is the most "
              "frequent choice (folds in which it was chosen). Δ: paired DeLong difference to "
              "the baseline family's best at the same τ on the same runs [95 % CI], p two-sided. "
              "CLV predictors use the fixed-lag estimate and are available only at t* + L. "
              "The Ginelli column is an upper bound, not a prediction: Ginelli CLVs use the "
              "whole future of the run.", "",
              "| activation | initialization | event | τ | baseline | FTLE | CLV | combined | "
              "Ginelli bound |", "|---|---|---|---:|---|---|---|---|---|"]
    notes = []
    for c in classes.itertuples():
        mine = auc[(auc["activation"] == c.activation) & (auc["initialization"] == c.initialization)]
        for event in EVENTS:
            ev = mine[mine["event"] == event]
            if ev.empty:
                if event == "low":
                    n_mid = int(round(c.frac_middle * c.n))
                    notes.append(
                        f"{c.activation}, {c.initialization}: E_low is not reported, because the "
                        f"middle class holds {n_mid} of {c.n} runs ({c.frac_middle:.2%}, below "
                        f"{min_middle_fraction:.0%}), so E_low is the complement of E_high up "
                        "to those runs.")
                continue
            best_rows = ev[ev["kind"] == "best_available"]
            if best_rows.empty:
                continue
            taus = []
            head = nearest(best_rows["t"], t)
            if head is not None:
                taus.append(head)
            clv = first_clv_time(ev, event)
            if clv is not None and (head is None or not np.isclose(clv, head)):
                taus.append(clv)
            sets = ev[ev["kind"] == "set"]
            for tau in taus:
                at = best_available(ev, tau).set_index("family")
                cells = []
                for fam in ("baseline",) + tuple(INDICATOR_FAMILIES):
                    cells.append(_cell(at.loc[fam], fam != "baseline") if fam in at.index
                                 else "n/a")
                lines.append(f"| {c.activation} | {c.initialization} | {event} | {tau:g} | "
                             + " | ".join(cells) + f" | {_ginelli_cell(sets, tau)} |")
    if notes:
        lines += [""] + [f"* {n}" for n in notes]
    if stability is not None and not stability.empty:
        lines += ["", "## Whole-run stability by class", "",
                  "Λ_1 = (1/T) ln σ_1 of the whole run's tangent propagator (frame-invariant), "
                  "median [quartiles]; tangency frequency: mean over runs and over the pairs of "
                  "the CLVs the CLV features use of the fraction of converged times with angle "
                  "below the tangency threshold. The sign of Λ_1 is not determined by float64 "
                  "arithmetic for most high-loss tanh runs (docs/conditioning.md).", "",
                  "| activation | initialization | class | n | Λ_1 | Λ_1 > 0 | Λ_1 > 0.5 | "
                  "tangency frequency |", "|---|---|---|---:|---|---:|---:|---:|"]
        for r in stability.itertuples(index=False):
            lines.append(f"| {r.activation} | {r.initialization} | {r.outcome} | {r.n} | "
                         f"{r.lyapunov_1_median:+.3f} [{r.lyapunov_1_q25:+.3f}, "
                         f"{r.lyapunov_1_q75:+.3f}] | {r.frac_lyapunov_1_positive:.3f} | "
                         f"{r.frac_lyapunov_1_above_0_5:.3f} | {r.tangency_frequency:.4f} |")
    if curvature is not None and not curvature.empty:
        lines += _curvature_section(curvature)
    if convergence is not None and not convergence.empty:
        vec = [c for c in convergence.columns if c.startswith("clv_")]
        used = [f"clv_{i}" for i in (clv_vectors or [])]
        lines += ["", "## Convergence of the fixed-lag CLV estimate", "",
                  "Median over valid networks of the angle (rad) between the fixed-lag estimate "
                  "with lag L (steps) and Ginelli's CLV, at the worst prediction time; converged: "
                  f"below {CLV_CONVERGENCE_ANGLE} rad. The CLV features use CLVs "
                  f"{', '.join(u[4:] for u in used) or '—'} at L = {lag} steps (marked *).", "",
                  "| activation | initialization | L | " + " | ".join(
                      f"CLV {c[4:]}" for c in vec) + " | features converged |",
                  "|---|---|---:|" + "---:|" * len(vec) + "---|"]
        for r in convergence.itertuples(index=False):
            row = r._asdict()
            ok = all(row[u] < CLV_CONVERGENCE_ANGLE for u in used if u in row)
            mark = "*" if lag is not None and r.lag == lag else ""
            lines.append(f"| {r.activation} | {r.initialization} | {r.lag}{mark} | "
                         + " | ".join(f"{row[c]:.3f}" for c in vec)
                         + f" | {'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


def _quantiles_cell(median, q10, q90, fmt: str) -> str:
    if pd.isna(median):
        return "n/a"
    return f"{median:{fmt}} [{q10:{fmt}}, {q90:{fmt}}]"


def _curvature_section(curvature: pd.DataFrame) -> list[str]:
    """The summary's lines of :func:`curvature_table`."""
    lines = ["", "## Curvature at the end of training", "",
             "λ_min, λ_max: smallest and largest eigenvalue of the Hessian H of C at the last "
             "step; η·λ_max: the sharpness (gradient descent is linearly stable only while "
             "η·λ_max < 2). Median [10 %, 90 % quantiles] over the runs with finite values "
             "(diverged runs count in n only); fractions of those runs. At "
             f"edge: |η·λ_max − 2| ≤ {EDGE_BAND:g}; beyond: η·λ_max > {2 + EDGE_BAND:g}; "
             f"indefinite: λ_min < −{INDEFINITE:g}·|λ_max|; flat: λ_min within "
             f"[−{INDEFINITE:g}, {FLAT:g}]·|λ_max|.", "",
             "| activation | initialization | class | n | finite | η·λ_max | λ_min | at edge | "
             "beyond edge | indefinite | flat |",
             "|---|---|---|---:|---:|---|---|---:|---:|---:|---:|"]

    def frac(v) -> str:
        return "n/a" if pd.isna(v) else f"{v:.3f}"

    for r in curvature.to_dict("records"):
        lines.append(
            f"| {r['activation']} | {r['initialization']} | {r['class']} | {r['n']} | "
            f"{r['n_finite']} | "
            + _quantiles_cell(r["sharpness_median"], r["sharpness_q10"], r["sharpness_q90"], ".3g")
            + " | "
            + _quantiles_cell(r["lambda_min_median"], r["lambda_min_q10"], r["lambda_min_q90"],
                              ".3g")
            + f" | {frac(r['frac_at_edge'])} | {frac(r['frac_beyond_edge'])} | "
            f"{frac(r['frac_indefinite'])} | {frac(r['frac_flat'])} |")
    return lines
