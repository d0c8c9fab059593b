"""The curvature at the end of training (weightdyn.tables.curvature_table, its summary section)
and figure 10 (weightdyn.figures.curvature), on hand-made gathered datasets."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from weightdyn import figures
from weightdyn.figures.curvature import MAX_SCATTER_POINTS
from weightdyn.outcomes import HIGH, LOW, MIDDLE
from weightdyn.prediction import AUC_COLUMNS
from weightdyn.tables import (CURVATURE_COLUMNS, EDGE_BAND, FLAT, INDEFINITE, classes_table,
                              curvature_table, summary_markdown)

pytestmark = pytest.mark.filterwarnings("error")

ETA = 0.5  # exact in binary: sharpness = λ_max / 2


def curvature_gathered(outcome, lam_max, lam_min, eta=ETA, steps=4, activation="tanh",
                       initialization="uniform"):
    """A gathered dataset with given final eigenvalues; the series ``hessian_max/min`` ramp from
    1 to the final values over ``steps`` + 1 steps (NaN throughout where the final one is)."""
    outcome = np.asarray(outcome, dtype=np.int8)
    lam_max, lam_min = np.asarray(lam_max, float), np.asarray(lam_min, float)
    ramp = np.linspace(0.0, 1.0, steps + 1)[None, :]
    step = np.arange(steps + 1) * 10
    return xr.Dataset(
        {"outcome": ("network", outcome),
         "diverged": ("network", (~np.isfinite(lam_max)).astype(np.int8)),
         "final_loss": ("network", np.where(outcome == HIGH, 300.0, 1.0)),
         "hessian_max": (("network", "step"), 1 + (lam_max[:, None] - 1) * ramp),
         "hessian_min": (("network", "step"), 1 + (lam_min[:, None] - 1) * ramp),
         "final_hessian_max": ("network", lam_max),
         "final_hessian_min": ("network", lam_min)},
        coords={"network": np.arange(outcome.size), "step": step,
                "t": ("step", np.round(step * eta, 12))},
        attrs={"activation": activation, "initialization": initialization,
               "learning_rate": eta, "steps": int(step[-1])})


#: low: sharpness 1, 1.95, 2.05, 2.5, 4 (two at the edge, two beyond); λ_min: two indefinite,
#: two flat (−1e-6 and 1e-3 ≤ FLAT·λ_max), one positive-definite
KNOWN = dict(
    outcome=[LOW] * 5 + [HIGH] * 4,
    lam_max=[2.0, 3.9, 4.1, 5.0, 8.0] + [6.0, np.nan, np.nan, 1.0],
    lam_min=[-1.0, -1e-6, 1e-3, 0.5, -0.2] + [-3.0, np.nan, np.nan, np.nan],
)


def test_constants():
    assert (EDGE_BAND, INDEFINITE, FLAT) == (0.1, 1e-3, 1e-3)


def test_curvature_table_known_eigenvalues():
    table = curvature_table({("tanh", "uniform"): curvature_gathered(**KNOWN)})
    assert list(table.columns) == list(CURVATURE_COLUMNS)
    assert list(table["class"]) == ["low", "high"]            # no middle runs: no middle row
    low, high = (table.set_index("class").loc[c] for c in ("low", "high"))
    assert (low.n, low.n_finite) == (5, 5)
    assert low.sharpness_median == pytest.approx(2.05)
    assert low.sharpness_q10 == pytest.approx(1.0 + 0.4 * 0.95)   # linear interpolation
    assert low.sharpness_q90 == pytest.approx(2.5 + 0.6 * 1.5)
    assert low.lambda_max_median == pytest.approx(4.1)
    assert low.lambda_min_median == pytest.approx(-1e-6)
    assert low.lambda_min_q10 == pytest.approx(-1.0 + 0.4 * 0.8)
    assert (low.frac_at_edge, low.frac_beyond_edge) == (0.4, 0.4)
    assert (low.frac_indefinite, low.frac_flat) == (0.4, 0.4)
    # high: two diverged runs and one with λ_min NaN count in n only
    assert (high.n, high.n_finite) == (4, 1)
    assert high.sharpness_median == 3.0 and high.frac_beyond_edge == 1.0
    assert high.frac_indefinite == 1.0 and high.frac_flat == 0.0


def test_curvature_table_empty_class_and_middle_row():
    G = curvature_gathered([LOW, LOW, MIDDLE], [1.0, 2.0, 3.0], [0.1, 0.2, -0.3],
                           activation="relu")
    table = curvature_table({("relu", "uniform"): G, ("tanh", "uniform"): curvature_gathered(
        **KNOWN)})
    assert list(zip(table.activation, table["class"])) == [
        ("relu", "low"), ("relu", "middle"), ("relu", "high"), ("tanh", "low"), ("tanh", "high")]
    empty = table.iloc[2]
    assert (empty.n, empty.n_finite) == (0, 0)
    assert empty[list(CURVATURE_COLUMNS[5:])].isna().all()
    assert table.iloc[1].frac_indefinite == 1.0


def test_summary_curvature_section():
    G = curvature_gathered(**KNOWN)
    data = {("tanh", "uniform"): G,
            ("relu", "normal"): curvature_gathered([LOW, LOW], [1.0, 2.0], [0.1, 0.2])}
    classes = classes_table(data)
    auc = pd.DataFrame(columns=AUC_COLUMNS)
    plain = summary_markdown(classes, auc, 0.015)
    assert summary_markdown(classes, auc, 0.015, curvature=None) == plain
    text = summary_markdown(classes, auc, 0.015, curvature=curvature_table(data))
    assert text.startswith(plain.rstrip("\n"))
    assert "## Curvature at the end of training" in text
    assert "| tanh | uniform | low | 5 | 5 | 2.05 [1.38, 3.4] | -1e-06 [-0.68, 0.3] | 0.400 | " \
           "0.400 | 0.400 | 0.400 |" in text
    assert "| relu | normal | high | 0 | 0 | n/a | n/a | n/a | n/a | n/a | n/a |" in text
    assert "nan" not in text.lower()


# --------------------------------------------------------------------------------------------
# figure 10
# --------------------------------------------------------------------------------------------

def random_gathered(activation, initialization, n=300, seed=0, empty_high=False, steps=20):
    rng = np.random.default_rng(seed)
    p = [0.7, 0.3, 0.0] if empty_high else [0.5, 0.2, 0.3]
    outcome = rng.choice([LOW, MIDDLE, HIGH], size=n, p=p)
    lam_max = np.where(outcome == HIGH, 3.5, 0.3) * rng.lognormal(0, 0.3, n) / 1e-3
    lam_min = np.where(outcome == LOW, rng.uniform(-0.5, 5, n), -10 ** rng.uniform(-3, 1.6, n))
    diverged = (outcome == HIGH) & (rng.random(n) < 0.2)
    lam_max[diverged] = lam_min[diverged] = np.nan
    return curvature_gathered(outcome, lam_max, lam_min, eta=1e-3, steps=steps,
                              activation=activation, initialization=initialization)


COMBINATIONS = [("tanh", "uniform"), ("tanh", "normal"), ("relu", "uniform")]


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [
        t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_curvature_figure():
    G = {key: random_gathered(*key, seed=s, empty_high=key == ("relu", "uniform"))
         for s, key in enumerate(COMBINATIONS)}
    fig = figures.curvature(G)
    assert len(fig.axes) == 2 * len(COMBINATIONS)
    fig.canvas.draw()
    assert 6.5 <= fig.get_size_inches()[0] <= 7.5
    texts = _texts(fig)
    assert texts.count("no high class") == 1
    assert any("stability edge" in t for t in texts)
    top, bottom = fig.axes[0], fig.axes[len(COMBINATIONS)]
    assert top.get_xscale() == "symlog" and top.get_yscale() == "log"
    assert bottom.get_xscale() == "symlog" and top.get_xlim()[0] == 0.0
    lo, hi = bottom.get_ylim()
    assert lo < 2.0 < hi                                             # the edge is in view
    assert all(c.get_rasterized() for c in bottom.collections)
    assert [line.get_ydata()[0] for line in bottom.lines if line.get_linestyle() == "--"] == [2.0]


def test_curvature_figure_subsamples_and_degenerate_inputs():
    big = random_gathered("tanh", "uniform", n=6000, steps=2)
    fig = figures.curvature({("tanh", "uniform"): big})
    points = [len(c.get_offsets()) for c in fig.axes[1].collections]
    assert max(points) == MAX_SCATTER_POINTS                    # low class: ~3000 finite runs
    # all diverged (NaN), and a dataset without the t coordinate (flow time from step·η)
    nan = curvature_gathered([HIGH, HIGH], [np.nan] * 2, [np.nan] * 2)
    no_t = random_gathered("relu", "normal", n=20).drop_vars("t")
    fig = figures.curvature({("tanh", "uniform"): nan, ("relu", "normal"): no_t})
    fig.canvas.draw()
    assert _texts(fig).count("no finite curvature") == 2


def test_curvature_figure_registered_and_saved_deterministically(tmp_path):
    assert figures.FIGURES["fig10_curvature"] == (figures.curvature, "gathered")
    needed = {"outcome", "hessian_max", "final_hessian_max", "final_hessian_min"}
    assert needed <= set(figures.GATHERED_VARIABLES)
    G = {key: random_gathered(*key, n=100)[list(needed)] for key in COMBINATIONS[:2]}
    a = figures.save(figures.curvature(G), tmp_path / "a" / "fig10_curvature")
    b = figures.save(figures.curvature(G), tmp_path / "b" / "fig10_curvature")
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()
