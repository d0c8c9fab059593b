"""The sweep table (weightdyn.sensitivity) and the sweep figure
(weightdyn.figures.sweep_figure), on hand-made points."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_curvature_summary import curvature_gathered  # noqa: E402
from weightdyn import figures
from weightdyn.outcomes import HIGH, LOW, MIDDLE
from weightdyn.prediction import AUC_COLUMNS
from weightdyn.sensitivity import (SWEEP_COLUMNS, SWEEP_GATHERED_VARIABLES, sweep_markdown,
                                   sweep_table)

pytestmark = pytest.mark.filterwarnings("error")

T_STAR = 0.015
COMBINATIONS = [("tanh", "uniform"), ("relu", "normal")]


def prediction_rows(act, init, times, auc=0.7, clv_from=None, computable=True):
    """best_available rows of both events at ``times``: baseline AUC ``auc`` + 0.01·k at the
    k-th time, FTLE 0.05 above it; CLV computable from ``clv_from`` on; E_low 0.2 lower."""
    rows = []
    for event, shift in (("high", 0.0), ("low", -0.2)):
        for k, t in enumerate(times):
            base = auc + 0.01 * k + shift
            for family, value in (("baseline", base), ("FTLE", base + 0.05),
                                  ("CLV", base + 0.1), ("combined", base), ("all", base)):
                ok = computable and (family != "CLV" or (clv_from is not None and t >= clv_from))
                delta = ok and family in ("FTLE", "CLV", "combined")
                rows.append(dict(
                    activation=act, initialization=init, event=event, kind="best_available",
                    family=family, feature=f"best_{family}", t=t, available_time=t,
                    auc_mean=value if ok else np.nan, auc_std=0.01,
                    auc_ci_low=value - 0.03 if ok else np.nan,
                    auc_ci_high=value + 0.02 if ok else np.nan, single_auc=np.nan,
                    n_positive=10, n_negative=20, n_dropped=0, computable=ok,
                    reason="" if ok else "not available", chosen=f"{family}@{t:g}" if ok else "",
                    delta_vs_baseline=value - base if delta else np.nan,
                    delta_ci_low=value - base - 0.01 if delta else np.nan,
                    delta_ci_high=value - base + 0.01 if delta else np.nan,
                    p_vs_baseline=0.04 if delta else np.nan))
        # a feature-set row at the headline time: never used by the sweep
        rows.append(dict(activation=act, initialization=init, event=event, kind="set",
                         family="FTLE", feature="ftle_1", t=T_STAR, auc_mean=0.99,
                         computable=True))
    return pd.DataFrame(rows).reindex(columns=AUC_COLUMNS)


def point(value, times, seed=0, computable=True, clv_from=None, edge=0.0):
    """(value, gathered, predictions) of one sweep point: 4 low, 1 middle, 3 high runs (one
    diverged); the high runs' sharpness is 1.5 + ``edge``, 2 + ``edge`` and NaN."""
    gathered, frames = {}, []
    for k, (act, init) in enumerate(COMBINATIONS):
        lam_max = np.array([0.2, 0.4, 0.6, 0.8, 1.0, 3.0 + 2 * edge, 4.0 + 2 * edge, np.nan])
        lam_min = np.array([0.1, 0.1, 0.1, 0.1, 0.1, -1.0, 1e-4, np.nan])
        gathered[act, init] = curvature_gathered([LOW] * 4 + [MIDDLE] + [HIGH] * 3, lam_max,
                                                 lam_min, activation=act, initialization=init)
        frames.append(prediction_rows(act, init, times, auc=0.6 + 0.1 * k + 0.01 * seed,
                                      computable=computable, clv_from=clv_from))
    return value, gathered, pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def points():
    return [point(0.001, [0.005, 0.01, 0.015, 0.025], clv_from=0.015),
            point(0.004, [0.004, 0.012, 0.02, 0.04], seed=1, edge=0.05),
            point(0.016, [0.016, 0.032], seed=2, computable=False, edge=1.0)]


def test_sweep_table_rows_and_latest_time_not_after_t_star(points):
    table = sweep_table(points, T_STAR)
    assert list(table.columns) == list(SWEEP_COLUMNS)
    assert list(zip(table.value, table.activation, table.initialization)) == [
        (v, a, i) for v in (0.001, 0.004, 0.016) for a, i in COMBINATIONS]
    # the latest best_available time of each point's grid not after t* (none for 0.016 …)
    np.testing.assert_allclose(table.t, [0.015, 0.015, 0.012, 0.012, np.nan, np.nan])
    first = table.iloc[0]
    assert (first.n, first.frac_low, first.frac_middle, first.frac_high) == (8, 0.5, 0.125, 0.375)
    assert first.frac_diverged == 0.125
    # E_high (not E_low) at t: the third time of the first grid
    assert first.best_baseline_auc == pytest.approx(0.62)
    assert (first.best_baseline_ci_low, first.best_baseline_ci_high) == pytest.approx((0.59, 0.64))
    assert first.best_baseline_chosen == "baseline@0.015"
    assert first.best_indicator_auc == pytest.approx(0.67)
    assert first.best_indicator_chosen == "FTLE@0.015"
    assert (first.indicator_delta, first.indicator_delta_ci_low,
            first.indicator_delta_ci_high) == pytest.approx((0.05, 0.04, 0.06))
    assert first.indicator_p == 0.04
    assert first.best_clv_auc == pytest.approx(0.72)
    second = table.iloc[3]                               # value 0.004, relu: t = 0.012 (k = 1)
    assert second.best_baseline_auc == pytest.approx(0.7 + 0.01 + 0.01)
    assert np.isnan(second.best_clv_auc) and second.best_clv_chosen == ""
    # curvature: sharpness η·λ_max = λ_max / 2 of the finite high runs (1.5 + edge, 2 + edge)
    assert first.final_sharpness_median_low == pytest.approx(0.25)
    assert first.final_sharpness_median_high == pytest.approx(1.75)
    assert (first.frac_high_at_edge, first.frac_high_indefinite) == (0.5, 0.5)
    assert table.iloc[2].frac_high_at_edge == 0.5                # 2.05 is at the edge, 1.55 not
    last = table.iloc[-1]                                          # nothing computable
    assert np.isnan(last[["best_baseline_auc", "best_indicator_auc", "indicator_delta"]]
                    .astype(float)).all()
    assert last.best_baseline_chosen == "" and last.frac_high_at_edge == 0.0


def test_sweep_table_reads_only_its_gathered_variables(points):
    subset = [(v, {key: G[list(SWEEP_GATHERED_VARIABLES)] for key, G in gathered.items()}, p)
              for v, gathered, p in points]
    pd.testing.assert_frame_equal(sweep_table(subset, T_STAR), sweep_table(points, T_STAR))


def test_sweep_table_without_prediction_rows():
    value, gathered, predictions = point(2, [0.01])
    table = sweep_table([(value, gathered, predictions.iloc[:0])], T_STAR)
    assert len(table) == 2 and table.t.isna().all() and table.best_baseline_auc.isna().all()


def test_sweep_markdown(points):
    text = sweep_markdown(sweep_table(points, T_STAR), "lr", "training.learning_rate")
    assert text.startswith("## Sweep lr: training.learning_rate\n")
    assert "| 0.001 | tanh | uniform | 8 | 0.500 | 0.125 | 0.375 | 0.125 | 0.015 | " \
           "0.620 [0.590, 0.640] | " \
           "0.670 [0.640, 0.690] | +0.050 [+0.040, +0.060] | 0.25 | 1.75 | 0.500 | 0.500 |" in text
    assert "| 0.016 | relu | normal | 8 | 0.500 | 0.125 | 0.375 | 0.125 | n/a | n/a | n/a | n/a |" \
        in text
    assert "nan" not in text.lower()
    assert len([line for line in text.splitlines() if line.startswith("| 0.0")]) == 6


def test_sweep_figure(points, tmp_path):
    table = sweep_table(points, T_STAR)
    fig = figures.sweep_figure(table, "lr", "training.learning_rate")
    assert len(fig.axes) == 3 * 2                      # rows = quantities, columns = activations
    fig.canvas.draw()
    assert 6.5 <= fig.get_size_inches()[0] <= 7.5
    ax = fig.axes[4]                                   # bottom left (rows share x)
    assert ax.get_xscale() == "log"                    # 0.001 … 0.016: a factor 16
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.004", "0.016"]
    assert "training.learning_rate" in fig.axes[-1].get_xlabel()
    assert "training.learning_rate" in fig.get_suptitle()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"tanh, uniform", "relu, normal", "(b) best baseline"} <= set(legend)
    # two fresh figures (a draw runs the layout engine, which is not idempotent to the bit)
    a, b = (figures.save(figures.sweep_figure(table, "lr", "training.learning_rate"),
                         tmp_path / sub / "sweep") for sub in "ab")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()


def test_sweep_figure_one_value_linear_and_not_computable(points):
    one = sweep_table([point(4, [0.01, 0.02], computable=False)], T_STAR)
    fig = figures.sweep_figure(one, "hidden", "network.hidden")
    fig.canvas.draw()
    ax = fig.axes[4]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4"]
    notes = [t.get_text() for a in fig.axes for t in a.texts]
    assert notes.count("AUC not computable") == 2
    # two values a factor 2 apart: linear, ticks at the values
    two = sweep_table([point(1, [0.015]), point(2, [0.015])], T_STAR)
    fig = figures.sweep_figure(two, "x", "network.hidden")
    fig.canvas.draw()
    assert fig.axes[4].get_xscale() == "linear"
    assert [t.get_text() for t in fig.axes[4].get_xticklabels()] == ["1", "2"]
    with pytest.raises(ValueError):
        figures.sweep_figure(one.iloc[:0], "x", "y")
